"""Losses of the multi-task model (Ye et al. 2019, §2.3) and the Table-4 variants.

Class scores cover the C non-Other classes only; label 0 is Other and label c in 1..C is
column c-1 of the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from relext_ray.config import LossConfig
from relext_ray.registry import LossVariant


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor, m_pos: float, m_neg: float,
                 gamma: float) -> torch.Tensor:
    """Pairwise ranking loss (dos Santos et al. 2015), mean over the batch of L+ + L−.

    Args:
        scores: [B, C] class scores (no Other column).
        labels: [B] gold label ids, 0 = Other.
        m_pos, m_neg, gamma: The margins and the scale.

    Returns:
        A scalar.

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
    """The relation-classification part: ranking, CE over all classes, or CE + ranking.

    Args:
        variant: ``ranking``, ``ce`` or ``ce_ranking``.
        scores: [B, C] class scores.
        other: [B] Other scores (needed by the CE variants), or None.
        labels: [B] gold label ids, 0 = Other.
        m_pos, m_neg, gamma: The ranking loss's margins and scale.

    Returns:
        A scalar.
    """
    if variant == "ranking":
        return ranking_loss(scores, labels, m_pos, m_neg, gamma)
    if other is None:
        raise ValueError(f"loss variant {variant!r} needs the model's Other score")
    ce = F.cross_entropy(all_class_logits(scores, other), labels)
    if variant == "ce":
        return ce
    return ce + ranking_loss(scores, labels, m_pos, m_neg, gamma)


def identification_loss(id_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary relation / no relation cross-entropy of the multi-task head.

    Args:
        id_logits: [B, 2] logits (no relation, relation).
        labels: [B] gold label ids; any label > 0 is "relation".

    Returns:
        A scalar.
    """
    return F.cross_entropy(id_logits, (labels > 0).long())


@dataclass(frozen=True)
class LossParts:
    """The objective's value and its parts (``identification`` is None without the MTL head)."""

    total: torch.Tensor
    classification: torch.Tensor
    identification: torch.Tensor | None


@dataclass(frozen=True)
class Objective:
    """The whole training objective: L = alpha·L_class + beta·L_id (Ye et al. 2019, §2.3).

    ``L_class`` is the configured classification loss (ranking, CE, or both); ``L_id`` the
    binary relation-identification loss of the multi-task head, when the model has one.
    """

    variant: LossVariant = "ranking"
    m_pos: float = 2.5
    m_neg: float = 0.5
    gamma: float = 2.0
    alpha: float = 1.0
    beta: float = 1.0

    @classmethod
    def from_config(cls, lc: LossConfig) -> Objective:
        return cls(lc.variant, lc.m_pos, lc.m_neg, lc.gamma, lc.alpha, lc.beta)

    def __call__(self, out: dict[str, torch.Tensor | None], labels: torch.Tensor) -> LossParts:
        """The loss of a batch.

        Args:
            out: The model's outputs: ``scores`` [B, C], ``other`` [B] or None, ``id_logits``
                [B, 2] or None.
            labels: [B] gold label ids (0 = Other).

        Returns:
            The total (a scalar to backpropagate) and its two parts.
        """
        l_class = classification_loss(self.variant, out["scores"], out["other"], labels,
                                      self.m_pos, self.m_neg, self.gamma)
        total = self.alpha * l_class
        l_id = identification_loss(out["id_logits"], labels) \
            if out["id_logits"] is not None else None
        if l_id is not None:
            total = total + self.beta * l_id
        return LossParts(total, l_class, l_id)
