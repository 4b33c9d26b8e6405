"""The training optimizers, by the names configs use (``train.optimizer``).

RMSprop is the paper's (with ``rmsprop_alpha`` 0.9, see ``TrainConfig``); Adam and AdamW are
what practitioners tune against it. ``weight_decay`` is an L2 penalty for the first two and
AdamW's decoupled decay. ``lr_schedule`` scales ``lr`` by a function of the run's progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from relext_ray.config import TrainConfig

OPTIMIZERS: dict[str, Callable[[Iterable[torch.nn.Parameter], TrainConfig], torch.optim.Optimizer]] = {
    "rmsprop": lambda params, t: torch.optim.RMSprop(params, lr=t.lr, alpha=t.rmsprop_alpha,
                                                     weight_decay=t.weight_decay),
    "adam": lambda params, t: torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay),
    "adamw": lambda params, t: torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay),
}


def make_optimizer(params: Iterable[torch.nn.Parameter], t: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``t.optimizer`` names, over ``params``."""
    return OPTIMIZERS[t.optimizer](params, t)


# The factor on ``lr`` at progress t in [0, 1) of the run (t = epochs done / train.epochs).
LR_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda t: 1.0,
    "linear": lambda t: 1.0 - t,
    "cosine": lambda t: 0.5 * (1.0 + math.cos(math.pi * t)),
}


def set_learning_rate(optimizer: torch.optim.Optimizer, t: TrainConfig, progress: float) -> float:
    """Put the scheduled learning rate into every parameter group and return it.

    A pure function of the progress (no scheduler state): a run resumed from its saved state
    steps with exactly the rates it would have had.

    Args:
        optimizer: The run's optimizer.
        t: Its training config (``lr``, ``lr_schedule``).
        progress: Epochs done, with the fraction of the current one, over ``t.epochs``.

    Returns:
        The learning rate set.
    """
    lr = t.lr * LR_SCHEDULES[t.lr_schedule](min(max(progress, 0.0), 1.0))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
