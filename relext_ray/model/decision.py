"""The one decision rule: the top class if its score is at least theta, else Other.

Scores cover the C relation classes: column ``c`` is label ``c + 1``; label 0 is Other. The rule
reads *decision scores* (``decision_scores``): the class scores, or for the plain
cross-entropy variant the margins over the Other score. The torch and numpy forms below are the
same rule: the first where tensors are at hand, the second where evaluation and prediction read
a whole score matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from relext_ray.registry import LossVariant


def decision_scores(variant: LossVariant, scores: torch.Tensor,
                    other: torch.Tensor | None) -> torch.Tensor:
    """The scores the rule reads.

    Args:
        variant: The loss variant the model was trained with.
        scores: [B, C] class scores.
        other: [B] Other scores (models with an Other head), or None.

    Returns:
        [B, C]: the class scores, or (plain CE) ``s_c - s_Other``. With CE alone,
        ``s_c - s_Other >= 0`` is exactly "argmax over all classes is c", so theta = 0
        reproduces softmax prediction and the same rule serves every variant.
    """
    if variant == "ce" and other is not None:
        return scores - other.unsqueeze(1)
    return scores


def decide(scores: torch.Tensor, theta: float) -> torch.Tensor:
    """Label ids from decision scores.

    Args:
        scores: [B, C] decision scores.
        theta: The threshold.

    Returns:
        [B] int64: the argmax class (1..C) where its score is >= theta, else 0 (Other).
    """
    best, column = scores.max(dim=1)
    return torch.where(best >= theta, column + 1, torch.zeros_like(column))


def top_class(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N] top scores and [N] the label of the top class (1..C) of an [N, C] score matrix."""
    if len(scores) == 0:
        return np.zeros(0, dtype=scores.dtype), np.zeros(0, dtype=np.int64)
    return scores.max(axis=1), scores.argmax(axis=1) + 1


def decide_np(scores: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """``decide`` on an [N, C] numpy matrix: ([N] int64 label ids, [N] top scores)."""
    top, label = top_class(scores)
    return np.where(top >= theta, label, 0).astype(np.int64), top
