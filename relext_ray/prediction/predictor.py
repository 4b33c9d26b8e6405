"""Scoring raw sentences with a checkpoint: the same instance rules, vocabularies and type
filter as in training, so predictions are consistent with what the model learned.

Pure Python + torch (no Ray): the MLflow pyfunc model and the batch-prediction replicas use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from relext_ray.corpus.records import Entity, Sentence
from relext_ray.corpus.text import Tokenization
from relext_ray.data.arrays import SplitArrays
from relext_ray.errors import RelextError
from relext_ray.instances.features import StackedFeatures, stack_features
from relext_ray.model.decision import decide_np
from relext_ray.training.checkpoint import Checkpoint, load_checkpoint
from relext_ray.training.evaluate import decision_matrix
from relext_ray.training.metrics import confusion_matrix
from relext_ray.training.tagging import tag_sentences

NO_TAGGER = ("records without entity mentions (raw text) need a model trained with an entity "
             "tagger (tagger.enabled: true); this one has none: give the mentions")

PAIR_FIELDS = [
    ("sentence_id", pa.string()),
    ("head", pa.int32()), ("head_start", pa.int32()), ("head_end", pa.int32()),
    ("head_type", pa.string()), ("head_text", pa.string()),
    ("tail", pa.int32()), ("tail_start", pa.int32()), ("tail_end", pa.int32()),
    ("tail_type", pa.string()), ("tail_text", pa.string()),
    ("relation", pa.string()), ("score", pa.float32()),
    # raw text only (else null): the mentions' characters in the source, the tagger's scores
    ("head_char_start", pa.int32()), ("head_char_end", pa.int32()),
    ("tail_char_start", pa.int32()), ("tail_char_end", pa.int32()),
    ("head_tagger_score", pa.float32()), ("tail_tagger_score", pa.float32()),
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
                counted in the confusion matrix), or untagged ones (``tag`` finds theirs).
            theta: The decision threshold (default: the model's).
            all_scores: Add every class's score to each row.

        Returns:
            The rows (``prediction_schema``) as an Arrow table, the pairs the type filter
            removed, and the gold × predicted confusion matrix.
        """
        theta = self.default_theta() if theta is None else theta
        ck = self.checkpoint
        arrays, st = sentences_to_arrays(self.tag(sentences), ck)
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
        for side, key in (("head", "e1"), ("tail", "e2")):
            spans = [s.char_span(s.entities[getattr(i, key)].start,
                                 s.entities[getattr(i, key)].end) for s, i in st.instances]
            columns[f"{side}_char_start"] = pa.array([sp[0] if sp else None for sp in spans],
                                                     pa.int32())
            columns[f"{side}_char_end"] = pa.array([sp[1] if sp else None for sp in spans],
                                                   pa.int32())
            columns[f"{side}_tagger_score"] = pa.array(
                [s.entities[getattr(i, key)].score for s, i in st.instances], pa.float32())
        if all_scores:
            columns["scores"] = pa.StructArray.from_arrays(
                [pa.array(matrix[:, k].astype(np.float32)) for k in range(matrix.shape[1])],
                fields=list(schema.field("scores").type))
        table = pa.Table.from_pydict(columns, schema=schema)
        return Scored(table, st.filtered, st.filtered_positives,
                      confusion_matrix(arrays.labels, pred, n_labels))

    @property
    def tokenization(self) -> Tokenization:
        """How raw text is cut into this model's tokens: characters for a brat (Chinese)
        model, words otherwise."""
        return "characters" if self.checkpoint.config.data.corpus == "brat" else "words"

    def tag(self, sentences: list[Sentence]) -> list[Sentence]:
        """``sentences`` with the mentions the model's tagger finds in the untagged ones (the
        others unchanged).

        Raises:
            RelextError: An untagged sentence and a model trained without a tagger.
        """
        todo = [k for k, s in enumerate(sentences) if s.untagged]
        if not todo:
            return sentences
        tagger = self.checkpoint.tagger
        if tagger is None:
            raise RelextError(NO_TAGGER)
        found = tag_sentences(tagger.model, tagger.vocab, [sentences[k].tokens for k in todo],
                              self.device)
        out = list(sentences)
        for k, mentions in zip(todo, found, strict=True):
            out[k] = replace(sentences[k], untagged=False, tagged=True, entities=tuple(
                Entity(m.start, m.end, m.type, round(m.score, 6)) for m in mentions))
        return out

    def predict(self, sentences: list[Sentence], theta: float | None = None,
                all_scores: bool = False) -> tuple[list[dict[str, Any]], int]:
        """One row per scored entity pair, and the number of pairs the type filter removed."""
        scored = self.score(sentences, theta, all_scores)
        return scored.table.to_pylist(), scored.pairs_filtered
