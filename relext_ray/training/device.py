"""Where a run computes: the torch device and the CPU threads it may use."""

from __future__ import annotations

import os

import torch

from relext_ray.errors import RelextError


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise RelextError(f"train.device={spec!r} but no CUDA device is available")
    return torch.device(spec)


def configure_threads(n: int | None) -> int:
    """Torch CPU threads: ``n``, else every core this process may run on.

    Work that runs inside Ray passes the CPUs Ray gave it (``cluster.connect.assigned_cpus``):
    Ray sets OMP_NUM_THREADS=1 in its workers, so a trial would otherwise use one thread.
    """
    n = n or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n
