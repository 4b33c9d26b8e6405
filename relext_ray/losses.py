"""Losses of the multi-task model (Ye et al. 2019, §2.3) and the Table-4 variants.

Class scores cover the C non-Other classes only; label 0 is Other and label c in 1..C is
column c-1 of the scores.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossVariant = Literal["ranking", "ce", "ce_ranking"]
LOSS_VARIANTS: tuple[LossVariant, ...] = ("ranking", "ce", "ce_ranking")


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor, m_pos: float, m_neg: float,
                 gamma: float) -> torch.Tensor:
    """Pairwise ranking loss (dos Santos et al. 2015), mean over the batch of L+ + L−.

    L+ = log(1 + exp(γ (m+ − s_y+))) for the gold class y+; L− = log(1 + exp(γ (m− + s_c−))) for
    the highest-scoring wrong class c−. For gold Other only L− counts, with c− the
    highest-scoring class.
    """
    if scores.dim() != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores must be [B, C] and labels [B]; got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)}")
    positive = labels > 0
    column = (labels - 1).clamp(min=0)
    gold = scores.gather(1, column.unsqueeze(1)).squeeze(1)
    is_gold = F.one_hot(column, scores.shape[1]).bool() & positive.unsqueeze(1)
    best_wrong = scores.masked_fill(is_gold, float("-inf")).max(dim=1).values
    l_pos = torch.where(positive, F.softplus(gamma * (m_pos - gold)), torch.zeros_like(gold))
    # With one class and a positive gold there is no wrong class: exp(-inf) = 0, no L−.
    l_neg = F.softplus(gamma * (m_neg + best_wrong))
    return (l_pos + l_neg).mean()


def all_class_logits(scores: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """[B, C+1] logits with Other in column 0, for the cross-entropy variants."""
    return torch.cat([other.unsqueeze(1), scores], dim=1)


def classification_loss(variant: LossVariant, scores: torch.Tensor, other: torch.Tensor | None,
                        labels: torch.Tensor, m_pos: float, m_neg: float,
                        gamma: float) -> torch.Tensor:
    """The relation-classification part: ranking, CE over all classes, or CE + ranking."""
    if variant == "ranking":
        return ranking_loss(scores, labels, m_pos, m_neg, gamma)
    if other is None:
        raise ValueError(f"loss variant {variant!r} needs the model's Other score")
    ce = F.cross_entropy(all_class_logits(scores, other), labels)
    if variant == "ce":
        return ce
    return ce + ranking_loss(scores, labels, m_pos, m_neg, gamma)


def identification_loss(id_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary relation / no relation cross-entropy of the multi-task head."""
    return F.cross_entropy(id_logits, (labels > 0).long())


def decision_scores(variant: LossVariant, scores: torch.Tensor,
                    other: torch.Tensor | None) -> torch.Tensor:
    """Scores that the threshold rule reads: class scores, or (CE only) margins over Other.

    With CE alone, s_c − s_Other ≥ 0 is exactly "argmax over all classes is c", so theta = 0
    reproduces softmax prediction and the same rule serves every variant.
    """
    if variant == "ce" and other is not None:
        return scores - other.unsqueeze(1)
    return scores


def predict(scores: torch.Tensor, theta: float) -> torch.Tensor:
    """Label ids: argmax class (1..C) if its score ≥ theta, else 0 (Other)."""
    best, column = scores.max(dim=1)
    return torch.where(best >= theta, column + 1, torch.zeros_like(column))
