"""Every option the configs and commands offer, named once.

The configs' ``Literal`` types and the commands' ``choices`` are built from these tuples; the
implementations (corpus readers, encoders, loss variants) are looked up by these names, and a
test checks that each name has one.
"""

from __future__ import annotations

from typing import Literal

CORPORA = ("conll04", "brat", "jsonl")  # corpus readers (relext_ray.corpus)
MODES = ("unordered", "ordered")  # instance extraction (relext_ray.instances.pairs)
ENCODERS = ("cnn", "pcnn", "bigru")  # sentence encoders (relext_ray.model.encoders)
LOSS_VARIANTS = ("ranking", "ce", "ce_ranking")  # classification losses (relext_ray.model.losses)
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")  # search-space value types
SCHEDULERS = ("asha", "none")  # trial schedulers of the search
ALGORITHMS = ("tpe", "random")  # Optuna samplers of the search
# what a search selects: the relation model, or the entity tagger (relext_ray.search.trainable)
SEARCH_TASKS = ("relation", "tagger")
OPTIMIZERS = ("rmsprop", "adam", "adamw")  # training optimizers (relext_ray.training.optimizers)
# the learning rate over a run: constant, or decayed to 0 by its last epoch (same module)
LR_SCHEDULES = ("constant", "linear", "cosine")
# what early stopping selects the epoch on: dev F1 at the config's theta, or at the best theta
SELECTIONS = ("dev_f1", "dev_calibrated_f1")
# what the relation model trains on: train (dev selects the epoch), or train and dev together
# for a fixed number of epochs (a final model once the settings are chosen)
FIT_SPLITS = ("train", "train+dev")
# Batch prediction: input files by suffix, and the formats of its output.
INPUT_SUFFIXES = {".jsonl": "jsonl", ".json": "conll04", ".txt": "brat"}
# predict's --format values: the corpora, and raw text (a .txt without .ann beside it)
INPUT_FORMATS = ("brat", "conll04", "jsonl", "text")
OUTPUT_FORMATS = ("parquet", "jsonl")
# predict --entities: the records' own mentions, or the tagger's for every record
ENTITY_SOURCES = ("given", "tagger")

Corpus = Literal[CORPORA]  # type: ignore[valid-type]
Mode = Literal[MODES]  # type: ignore[valid-type]
Encoder = Literal[ENCODERS]  # type: ignore[valid-type]
LossVariant = Literal[LOSS_VARIANTS]  # type: ignore[valid-type]
DistributionType = Literal[DISTRIBUTIONS]  # type: ignore[valid-type]
SchedulerType = Literal[SCHEDULERS]  # type: ignore[valid-type]
Algorithm = Literal[ALGORITHMS]  # type: ignore[valid-type]
SearchTask = Literal[SEARCH_TASKS]  # type: ignore[valid-type]
Optimizer = Literal[OPTIMIZERS]  # type: ignore[valid-type]
LrSchedule = Literal[LR_SCHEDULES]  # type: ignore[valid-type]
Selection = Literal[SELECTIONS]  # type: ignore[valid-type]
FitSplits = Literal[FIT_SPLITS]  # type: ignore[valid-type]
