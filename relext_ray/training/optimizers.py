"""The training optimizers, by the names configs use (``train.optimizer``).

RMSprop is the paper's (with ``rmsprop_alpha`` 0.9, see ``TrainConfig``); Adam and AdamW are
what practitioners tune against it. ``weight_decay`` is an L2 penalty for the first two and
AdamW's decoupled decay.
"""

from __future__ import annotations

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
