"""Scoring raw sentences with a checkpoint: the same instance rules, vocabularies and type
filter as in training, so predictions are consistent with what the model learned.

Pure Python + torch (no Ray): the MLflow pyfunc model and the batch-prediction replicas use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from relext_ray.corpus.records import Sentence
from relext_ray.data.arrays import SplitArrays
from relext_ray.instances.features import StackedFeatures, stack_features
from relext_ray.model.decision import decide_np
from relext_ray.training.checkpoint import Checkpoint, load_checkpoint
from relext_ray.training.evaluate import decision_matrix
from relext_ray.training.metrics import confusion_matrix

PAIR_FIELDS = [
    ("sentence_id", pa.string()),
    ("head", pa.int32()), ("head_start", pa.int32()), ("head_end", pa.int32()),
    ("head_type", pa.string()), ("head_text", pa.string()),
    ("tail", pa.int32()), ("tail_start", pa.int32()), ("tail_end", pa.int32()),
    ("tail_type", pa.string()), ("tail_text", pa.string()),
    ("relation", pa.string()), ("score", pa.float32()),
]


def prediction_schema(labels: list[str], all_scores: bool) -> pa.Schema:
    """One row per scored pair; ``scores`` holds every class's score when asked for."""
    fields = list(PAIR_FIELDS)
    if all_scores:
        fields.append(("scores", pa.struct([(name, pa.float32()) for name in labels[1:]])))
    return pa.schema(fields)


def sentences_to_arrays(sentences: list[Sentence], ckpt: Checkpoint
                        ) -> tuple[SplitArrays, StackedFeatures]:
    """Instances of ``sentences`` as model arrays, and the stacked features they came from
    (pairs, gold labels, and how many pairs the type filter removed: those are not scored)."""
    st = stack_features(sentences, ckpt.meta["mode"], ckpt.type_filter, ckpt.vocabs,
                        ckpt.config.data.lowercase)
    return SplitArrays.from_features(st), st


@dataclass
class Scored:
    """A batch of sentences after the model: the output table and what to account for."""

    table: pa.Table
    pairs_filtered: int
    filtered_positives: int
    confusion: np.ndarray  # gold × predicted (see ``metrics.confusion_matrix``)

    @staticmethod
    def concat(parts: list[Scored], schema: pa.Schema, n_labels: int) -> Scored:
        """Several batches' results as one (an empty list: nothing scored)."""
        confusion = np.zeros((n_labels + 1, n_labels), dtype=np.int64)
        for p in parts:
            confusion += p.confusion
        table = pa.concat_tables([p.table.cast(schema) for p in parts]) if parts \
            else schema.empty_table()
        return Scored(table, sum(p.pairs_filtered for p in parts),
                      sum(p.filtered_positives for p in parts), confusion)


@dataclass
class Predictor:
    """A checkpoint ready to score sentences: the same instance rules, vocabularies and type
    filter as in training, the decision rule at the model's theta (or one given)."""

    checkpoint: Checkpoint
    device: torch.device

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """The checkpoint in ``directory`` (``training.checkpoint``), on ``device``."""
        dev = torch.device(device)
        return cls(load_checkpoint(directory, dev), dev)

    @property
    def labels(self) -> list[str]:
        return self.checkpoint.meta["labels"]

    @property
    def joiner(self) -> str:
        """Mention text: characters of a character-level (brat) model join without spaces."""
        return "" if self.checkpoint.config.data.corpus == "brat" else " "

    def default_theta(self) -> float:
        return float(self.checkpoint.meta["theta"])

    def score(self, sentences: list[Sentence], theta: float | None = None,
              all_scores: bool = False) -> Scored:
        """Score every pair of ``sentences`` that the type filter keeps.

        Args:
            sentences: Sentences with their entity mentions (gold relations, if any, are
                counted in the confusion matrix).
            theta: The decision threshold (default: the model's).
            all_scores: Add every class's score to each row.

        Returns:
            The rows (``prediction_schema``) as an Arrow table, the pairs the type filter
            removed, and the gold × predicted confusion matrix.
        """
        theta = self.default_theta() if theta is None else theta
        ck = self.checkpoint
        arrays, st = sentences_to_arrays(sentences, ck)
        n_labels = len(self.labels)
        schema = prediction_schema(self.labels, all_scores)
        if not st.instances:
            return Scored(schema.empty_table(), st.filtered, st.filtered_positives,
                          np.zeros((n_labels + 1, n_labels), dtype=np.int64))
        matrix = decision_matrix(ck.model, ck.config, arrays, ck.meta["max_distance"],
                                 self.device)
        pred, top = decide_np(matrix, theta)
        c = st.pairs
        j = self.joiner
        columns: dict[str, Any] = {
            "sentence_id": c["sentence_id"],
            "head": c["e1"], "head_start": c["e1_start"], "head_end": c["e1_end"],
            "head_type": c["e1_type"],
            "head_text": [j.join(s.tokens[s.entities[i.e1].start:s.entities[i.e1].end])
                          for s, i in st.instances],
            "tail": c["e2"], "tail_start": c["e2_start"], "tail_end": c["e2_end"],
            "tail_type": c["e2_type"],
            "tail_text": [j.join(s.tokens[s.entities[i.e2].start:s.entities[i.e2].end])
                          for s, i in st.instances],
            "relation": pa.array(np.asarray(self.labels, dtype=object)[pred]),
            "score": top.astype(np.float32),
        }
        if all_scores:
            columns["scores"] = pa.StructArray.from_arrays(
                [pa.array(matrix[:, k].astype(np.float32)) for k in range(matrix.shape[1])],
                fields=list(schema.field("scores").type))
        table = pa.Table.from_pydict(columns, schema=schema)
        return Scored(table, st.filtered, st.filtered_positives,
                      confusion_matrix(arrays.labels, pred, n_labels))

    def predict(self, sentences: list[Sentence], theta: float | None = None,
                all_scores: bool = False) -> tuple[list[dict[str, Any]], int]:
        """One row per scored entity pair, and the number of pairs the type filter removed."""
        scored = self.score(sentences, theta, all_scores)
        return scored.table.to_pylist(), scored.pairs_filtered
