"""The preparation in one process, without Ray: the same readers, vocabularies, type filter and
features as the Ray Data pipeline, straight into memory.

For what needs a corpus's arrays quickly and nothing on disk: encoder tests on real batches,
speed benchmarks, notebooks. Corpora of any size go through ``data.pipeline.prepare``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from relext_ray.config import PrepareConfig
from relext_ray.corpus.brat import DEFAULT_OPTIONS, BratOptions
from relext_ray.corpus.records import Sentence
from relext_ray.corpus.sources import discover, file_units, read_unit
from relext_ray.data.arrays import SplitArrays
from relext_ray.instances.features import stack_features
from relext_ray.instances.pairs import TypeFilter, relation_type_combos
from relext_ray.instances.vocab import Vocabularies, label_vocab, tag_vocab, token_vocab
from relext_ray.registry import Mode


def brat_options(cfg: PrepareConfig) -> BratOptions:
    """How the brat reader splits and filters, from the prepare config."""
    return BratOptions(terminators=cfg.terminators, wrap_width=cfg.wrap_width,
                       ignore_relation_types=frozenset(cfg.ignore_relation_types))


def read_split(corpus: str, data_dir: str | Path, split: str,
               brat: BratOptions = DEFAULT_OPTIONS, documents: int | None = None
               ) -> list[Sentence]:
    """The sentences of one split (the first ``documents`` files' worth for brat, if given)."""
    paths = discover(corpus, data_dir).get(split, [])
    if documents is not None:
        paths = paths[:documents]
    return [s for path in paths for unit in file_units(split, corpus, path, 1 << 30)
            for s in read_unit(unit, brat).sentences]


@dataclass
class LocalData:
    """A corpus prepared in memory: what ``PreparedData`` holds, without the files."""

    vocabs: Vocabularies
    type_filter: TypeFilter
    splits: dict[str, SplitArrays]


def prepare_local(corpus: str, data_dir: str | Path, mode: Mode,
                  splits: tuple[str, ...] = ("train", "dev", "test"),
                  brat: BratOptions = DEFAULT_OPTIONS, min_freq: int = 1,
                  lowercase: bool = False) -> LocalData:
    """Vocabularies and type filter from the training split, then the arrays of ``splits``."""
    train = read_split(corpus, data_dir, "train", brat)
    tokens = Counter(t.lower() if lowercase else t for s in train for t in s.tokens)
    vocabs = Vocabularies(
        tokens=token_vocab(tokens, min_freq=min_freq),
        tags=tag_vocab({e.type for s in train for e in s.entities}),
        labels=label_vocab({r.type for s in train for r in s.relations}),
    )
    type_filter = TypeFilter(mode, frozenset(relation_type_combos(train, mode)))
    out = {}
    for split in splits:
        sentences = train if split == "train" else read_split(corpus, data_dir, split, brat)
        if sentences:
            out[split] = SplitArrays.from_features(
                stack_features(sentences, mode, type_filter, vocabs, lowercase))
    return LocalData(vocabs, type_filter, out)
