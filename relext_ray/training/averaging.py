"""An exponential moving average of the weights (Polyak averaging), for selection and saving.

Under heavy imbalance one step's noise moves the scores' scale and the dev F1 swings from epoch
to epoch; the average of the weights over the last few hundred steps sits in a flatter spot and
behaves like a small ensemble of the snapshots it averages, at the price of one more copy of
the weights. Training itself still steps the raw weights; dev selection, the saved model and
evaluation use the average.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class WeightAverage:
    """An exponential moving average of a module's state (parameters and float buffers).

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that the
    first epoch's average is not dominated by the random initialisation.

    Args:
        model: The module whose weights are averaged (its current weights start the average).
        decay: The weight kept per step, in (0, 1); 0.999 averages over about 1,000 steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the averaging decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: torch.nn.Module) -> None:
        """Fold the module's current weights into the average (after an optimizer step)."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        with torch.no_grad():
            current = model.state_dict()
            for k, v in self.shadow.items():
                if v.is_floating_point():
                    v.lerp_(current[k].detach(), 1.0 - d)
                else:  # counters and the like: the latest value
                    v.copy_(current[k])

    def averaged(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` holding the averaged weights (the module itself is untouched)."""
        out = copy.deepcopy(model)
        out.load_state_dict(self.shadow)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain data (tensors and numbers) for a resumable training state."""
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from ``state_dict``'s average."""
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
