"""Scores over positive instances, micro-averaged, as the paper reports them.

Label ids: 0 = Other, 1..C = relation classes, -1 = a gold class the model cannot know (a type
absent from training). A prediction is correct only with the right class; a wrong class counts
as a false positive and a false negative. Positive instances the type filter removed before
scoring (``missed_positives``) count as false negatives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from relext_ray.model.decision import decide_np, top_class


def prf(tp: int, pred_pos: int, gold_pos: int) -> tuple[float, float, float]:
    p = tp / pred_pos if pred_pos else 0.0
    r = tp / gold_pos if gold_pos else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    tp: int
    predicted_positives: int
    gold_positives: int
    false_negatives: int
    false_positives: int
    wrong_class: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)

    @property
    def error_breakdown(self) -> dict[str, float]:
        """Shares of all errors: Other predicted for a relation, a relation for Other, wrong class."""
        total = self.false_negatives + self.false_positives + self.wrong_class
        if not total:
            return {"false_negatives": 0.0, "false_positives": 0.0, "wrong_class": 0.0}
        return {"false_negatives": self.false_negatives / total,
                "false_positives": self.false_positives / total,
                "wrong_class": self.wrong_class / total}

    def summary(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_breakdown": self.error_breakdown}


def score(gold: np.ndarray, pred: np.ndarray, labels: list[str],
          missed_positives: int = 0) -> Scores:
    """Micro P/R/F1 on positives, per-class P/R/F1, confusion matrix and error breakdown.

    ``labels`` are the names of ids 0..C (``labels[0]`` is Other). The confusion matrix has rows
    for gold ids (plus a last row for unknown gold classes) and columns for predicted ids.
    """
    return scores_from_confusion(confusion_matrix(gold, pred, len(labels)), labels,
                                 missed_positives)


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Rows: gold ids 0..C and a last row for gold classes the model does not know (id < 0)."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    if gold.shape != pred.shape:
        raise ValueError(f"gold and pred differ in shape: {gold.shape} vs {pred.shape}")
    confusion = np.zeros((n_labels + 1, n_labels), dtype=np.int64)
    np.add.at(confusion, (np.where(gold < 0, n_labels, gold), pred), 1)
    return confusion


def scores_from_confusion(confusion: np.ndarray, labels: list[str],
                          missed_positives: int = 0) -> Scores:
    """All scores from summed confusion matrices: how streaming prediction evaluates."""
    m = np.asarray(confusion, dtype=np.int64)
    n = len(labels)
    if m.shape != (n + 1, n):
        raise ValueError(f"confusion matrix of shape {m.shape}, expected {(n + 1, n)}")
    gold_pos = m[1:]  # rows of gold relations, the unknown-class row included
    diag = np.array([m[c, c] for c in range(1, n)], dtype=np.int64)
    tp = int(diag.sum())
    predicted = int(m[:, 1:].sum())
    fn = int(gold_pos[:, 0].sum()) + missed_positives
    fp = int(m[0, 1:].sum())
    wrong = int(gold_pos[:, 1:].sum()) - tp
    gold_total = int(gold_pos.sum()) + missed_positives
    p, r, f = prf(tp, predicted, gold_total)
    per_class = {}
    for c in range(1, n):
        support = int(m[c].sum())
        cp, cr, cf = prf(int(m[c, c]), int(m[:, c].sum()), support)
        per_class[labels[c]] = {"precision": cp, "recall": cr, "f1": cf, "support": support}
    return Scores(p, r, f, tp, predicted, gold_total, fn, fp, wrong, per_class, m.tolist())


def best_threshold(gold: np.ndarray, scores: np.ndarray, labels: list[str],
                   missed_positives: int = 0) -> tuple[float, Scores]:
    """The theta that maximises F1 on (dev) scores; every distinct top score is a candidate.

    Sorting by top score once gives tp and predicted positives for all candidates as running
    sums, so the search is O(n log n).
    """
    gold = np.asarray(gold, dtype=np.int64)
    if len(gold) == 0:
        return 0.0, score(gold, gold, labels, missed_positives)
    top, column = top_class(scores)
    order = np.argsort(-top, kind="stable")
    top_sorted = top[order]
    tp = np.cumsum(column[order] == gold[order])
    predicted = np.arange(1, len(gold) + 1)
    # Only the last index of a run of equal scores is a threshold one can choose.
    last = np.r_[top_sorted[1:] != top_sorted[:-1], True]
    gold_total = int(np.sum(gold != 0)) + missed_positives
    precision = tp / predicted
    recall = tp / gold_total if gold_total else np.zeros_like(precision)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(last, f1, -1.0)
    i = int(np.argmax(f1))
    theta = float(top_sorted[i])
    return theta, score(gold, decide_np(scores, theta)[0], labels, missed_positives)


def annotated_pairs(gold: np.ndarray, scores: np.ndarray, labels: list[str],
                    missed_positives: int = 0) -> Scores:
    """Relation *classification* of the annotated pairs only (the published Chinese Literature
    setting, SR-BRCNN's): every instance with a gold relation is given its top class, with no
    Other and no theta, and the pairs without a relation are not scored at all.

    A much easier task than ours, which must also tell the ~52 unrelated pairs per related one
    apart; it is here so that the two can be put side by side. Each scored pair is predicted
    positive, so micro precision is accuracy over the pairs scored; annotated pairs the type
    filter removed (``missed_positives``) and gold classes unknown to the model count as errors.

    Args:
        gold: [N] label ids (0 Other, 1..C, -1 unknown class).
        scores: [N, C] decision scores.
        labels: The names of ids 0..C.
        missed_positives: Annotated pairs with no instance to score.

    Returns:
        Micro scores over the annotated pairs; ``macro_f1`` averages ``per_class``.
    """
    gold = np.asarray(gold, dtype=np.int64)
    related = gold != 0
    return score(gold[related], top_class(scores[related])[1], labels, missed_positives)


def macro_f1(s: Scores) -> float:
    """The mean F1 over the classes that occur in the gold data (support > 0)."""
    rows = [row["f1"] for row in s.per_class.values() if row["support"] > 0]
    return float(np.mean(rows)) if rows else 0.0
