"""Which training instances a run sees: a seeded share of the training documents (a budget
knob) and negatives subsampled to a neg:pos ratio (the paper's Figure 3).

Dev and test are never touched by either: scores stay comparable across ratios. The one
selection that touches every split is a sentence-length cap (``short_sentences``), an
economy for small machines. Every run reports the counts it ended up with, so a changed
ratio is never silent.
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


def negative_ratio(labels: np.ndarray, ratio: float, seed: int, draw: int = 1) -> np.ndarray:
    """Indices of every positive (label != 0) plus ``round(ratio * positives)`` negatives drawn
    without replacement; all negatives when there are fewer (the report says so).

    ``draw`` numbers independent draws of the same size (one per epoch when the negatives are
    resampled); draw 1 is the one a run without resampling uses throughout."""
    if ratio <= 0:
        raise RelextError(f"train.neg_ratio must be positive, got {ratio}")
    pos, neg = np.flatnonzero(labels != 0), np.flatnonzero(labels == 0)
    want = min(len(neg), round(ratio * len(pos)))
    stream = [seed, 2] if draw == 1 else [seed, 2, draw]
    picked = np.random.default_rng(stream).choice(neg, want, replace=False)
    return np.sort(np.concatenate([pos, picked]))


def training_index(labels: np.ndarray, sentence_ids: np.ndarray, documents: float = 1.0,
                   neg_ratio: float | None = None, seed: int = 1, draw: int = 1) -> np.ndarray:
    """Both selections in order: documents first (the same in every draw), then the negatives
    among them (draw ``draw``)."""
    index = document_share(sentence_ids, documents, seed)
    if neg_ratio is not None:
        index = index[negative_ratio(labels[index], neg_ratio, seed, draw)]
    return index


def short_sentences(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Indices of the instances whose sentence has at most ``max_length`` tokens.

    Long sentences cost twice: more pairs, each a longer input (the cost grows with the cube
    of the length), so a cap buys far more compute than it removes instances."""
    if max_length < 1:
        raise RelextError(f"train.max_length must be at least 1, got {max_length}")
    return np.flatnonzero(lengths <= max_length)


def counts(labels: np.ndarray, prefix: str = "train") -> dict[str, float]:
    pos = int((labels != 0).sum())
    neg = int((labels == 0).sum())
    return {f"{prefix}_instances": float(len(labels)), f"{prefix}_positives": float(pos),
            f"{prefix}_neg_per_pos": neg / pos if pos else float("inf")}
