"""Several models of one configuration (seeds) as one: their shifted decision scores averaged.

Under heavy imbalance one seed's errors are largely its own: on Chinese Literature two seeds
averaged find pairs that neither finds at its own threshold (README, "Seeds averaged"). A
ranking-loss model's scores drift in scale from seed to seed, so each member's decision scores
are first shifted by its own dev-calibrated theta (its zero is then where it starts to predict a
relation) and the mean of the shifted scores is read by the one decision rule, at a theta
calibrated on dev for the ensemble. The ensemble is an ``nn.Module`` with the model's outputs,
so evaluation, prediction and the checkpoint format serve it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from relext_ray.data.batching import Batch
from relext_ray.model.decision import decision_scores
from relext_ray.model.relation import RelationModel
from relext_ray.registry import LossVariant


class SeedEnsemble(nn.Module):
    """The mean of the members' decision scores, each shifted by its own theta.

    Args:
        members: Models of one architecture over one corpus's vocabularies and labels.
        shifts: Each member's dev-calibrated theta (subtracted from its decision scores).
        variant: The loss variant the members were trained with (what their scores mean).
    """

    def __init__(self, members: list[RelationModel], shifts: list[float],
                 variant: LossVariant) -> None:
        super().__init__()
        if not members or len(members) != len(shifts):
            raise ValueError(f"an ensemble needs one shift per member, got {len(members)} "
                             f"members and {len(shifts)} shifts")
        self.members = nn.ModuleList(members)
        self.register_buffer("shifts", torch.tensor(shifts, dtype=torch.float32))
        self.variant = variant

    @property
    def n_classes(self) -> int:
        """C: the relation classes scored (Other excluded)."""
        return self.members[0].n_classes

    def forward(self, b: Batch) -> dict[str, torch.Tensor | None]:
        """Decision scores of a sentence batch's pairs.

        Args:
            b: A sentence batch (``data.batching.Batch``) of P pairs.

        Returns:
            ``scores`` [P, C], the members' mean shifted decision scores (already decision
            scores: ``other`` is None, so ``decision_scores`` passes them through);
            ``id_logits`` None.
        """
        total = None
        for member, shift in zip(self.members, self.shifts, strict=True):
            o = member(b)
            s = decision_scores(self.variant, o["scores"], o["other"]) - shift
            total = s if total is None else total + s
        return {"scores": total / len(self.members), "other": None, "id_logits": None}
