"""The search space: YAML distributions → Ray Tune sampling domains."""

from __future__ import annotations

from typing import Any

from ray import tune

from relext_ray.config import Distribution


def tune_space(space: dict[str, Distribution]) -> dict[str, Any]:
    """YAML distributions → Ray Tune sampling domains (OptunaSearch converts them)."""
    out: dict[str, Any] = {}
    for key, d in space.items():
        if d.type == "uniform":
            out[key] = tune.uniform(d.low, d.high)
        elif d.type == "loguniform":
            out[key] = tune.loguniform(d.low, d.high)
        elif d.type == "int":
            out[key] = tune.randint(int(d.low), int(d.high) + 1)
        else:
            out[key] = tune.choice(d.values)
    return out
