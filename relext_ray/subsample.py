"""Which training instances a run sees: a seeded share of the training documents (a budget
knob) and negatives subsampled to a neg:pos ratio (the paper's Figure 3).

Dev and test are never touched: scores stay comparable across ratios and budgets. Every run
reports the training counts it ended up with, so a changed ratio is never silent.
"""

from __future__ import annotations

import numpy as np

from relext_ray.errors import RelextError


def document_of(sentence_id: str) -> str:
    """``doc:3`` → ``doc`` (brat sentences); ids without a ``:`` are their own document."""
    return sentence_id.rsplit(":", 1)[0]


def document_share(sentence_ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Indices of the instances of a seeded ``share`` of the documents (at least one)."""
    if not 0 < share <= 1:
        raise RelextError(f"train.documents must be in (0, 1], got {share}")
    if share == 1:
        return np.arange(len(sentence_ids))
    docs = np.array([document_of(str(s)) for s in sentence_ids])
    unique = np.unique(docs)
    keep = max(1, round(share * len(unique)))
    chosen = np.random.default_rng([seed, 1]).choice(len(unique), keep, replace=False)
    return np.flatnonzero(np.isin(docs, unique[chosen]))


def negative_ratio(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Indices of every positive (label != 0) plus ``round(ratio * positives)`` negatives drawn
    without replacement; all negatives when there are fewer (the report says so)."""
    if ratio <= 0:
        raise RelextError(f"train.neg_ratio must be positive, got {ratio}")
    pos, neg = np.flatnonzero(labels != 0), np.flatnonzero(labels == 0)
    want = min(len(neg), round(ratio * len(pos)))
    picked = np.random.default_rng([seed, 2]).choice(neg, want, replace=False)
    return np.sort(np.concatenate([pos, picked]))


def training_index(labels: np.ndarray, sentence_ids: np.ndarray, documents: float = 1.0,
                   neg_ratio: float | None = None, seed: int = 1) -> np.ndarray:
    """Both selections in order: documents first, then the negatives among them."""
    index = document_share(sentence_ids, documents, seed)
    if neg_ratio is not None:
        index = index[negative_ratio(labels[index], neg_ratio, seed)]
    return index


def counts(labels: np.ndarray) -> dict[str, float]:
    pos = int((labels != 0).sum())
    neg = int((labels == 0).sum())
    return {"train_instances": float(len(labels)), "train_positives": float(pos),
            "train_neg_per_pos": neg / pos if pos else float("inf")}
