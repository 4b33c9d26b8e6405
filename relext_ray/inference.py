"""Scoring raw sentences with a checkpoint: the same instance rules, vocabularies and type
filter as in training, so predictions are consistent with what the model learned.

Pure Python + torch (no Ray): the MLflow pyfunc model and the batch-prediction actors use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relext_ray.corpus.records import Sentence
from relext_ray.instances import stack_features
from relext_ray.tensors import SplitArrays
from relext_ray.train import Checkpoint, decision_matrix, load_checkpoint


def sentences_to_arrays(sentences: list[Sentence], ckpt: Checkpoint
                        ) -> tuple[SplitArrays, list[tuple[Sentence, int, int]], int]:
    """Instances of ``sentences`` as arrays, their (sentence, e1, e2), and how many the type
    filter removed (those are not scored)."""
    st = stack_features(sentences, ckpt.meta["mode"], ckpt.type_filter, ckpt.vocabs,
                        ckpt.meta["max_distance"], ckpt.config.data.lowercase)
    c = st.scalars
    spans = np.array([c["e1_start"], c["e1_end"], c["e2_start"], c["e2_end"]],
                     dtype=np.int64).T.reshape(-1, 4)
    arrays = SplitArrays(st.offsets, st.flat["token_ids"], st.flat["pos1"], st.flat["pos2"],
                         st.flat["tag_ids"], spans, np.asarray(c["label_id"], dtype=np.int64),
                         np.asarray(c["sentence_id"], dtype=object),
                         np.asarray(c["instance_id"], dtype=object))
    return arrays, [(s, i.e1, i.e2) for s, i in st.instances], st.filtered


@dataclass
class Predictor:
    checkpoint: Checkpoint
    device: torch.device

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Predictor:
        dev = torch.device(device)
        return cls(load_checkpoint(directory, dev), dev)

    @property
    def labels(self) -> list[str]:
        return self.checkpoint.meta["labels"]

    def default_theta(self) -> float:
        return float(self.checkpoint.meta["theta"])

    def predict(self, sentences: list[Sentence], theta: float | None = None,
                all_scores: bool = False) -> tuple[list[dict[str, Any]], int]:
        """One row per scored entity pair, and the number of pairs the type filter removed."""
        theta = self.default_theta() if theta is None else theta
        arrays, pairs, filtered = sentences_to_arrays(sentences, self.checkpoint)
        if not pairs:
            return [], filtered
        ck = self.checkpoint
        matrix = decision_matrix(ck.model, ck.config, arrays, ck.meta["max_distance"], self.device)
        top = matrix.max(axis=1)
        best = matrix.argmax(axis=1) + 1
        rows = []
        for k, (s, e1, e2) in enumerate(pairs):
            h, t = s.entities[e1], s.entities[e2]
            label = self.labels[best[k]] if top[k] >= theta else self.labels[0]
            row = {
                "sentence_id": s.id,
                "head": e1, "head_start": h.start, "head_end": h.end, "head_type": h.type,
                "head_text": " ".join(s.tokens[h.start:h.end]),
                "tail": e2, "tail_start": t.start, "tail_end": t.end, "tail_type": t.type,
                "tail_text": " ".join(s.tokens[t.start:t.end]),
                "relation": label, "score": float(top[k]),
            }
            if all_scores:
                row["scores"] = {self.labels[c + 1]: float(v) for c, v in enumerate(matrix[k])}
            rows.append(row)
        return rows, filtered
