"""Connecting to Ray: the cluster in ``RAY_ADDRESS`` (``ray job submit`` sets it), else a local one."""

from __future__ import annotations

import os

import ray

from relext_ray import console


def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster named by ``RAY_ADDRESS``, or start a private local instance.

    ``num_cpus`` applies only to a local instance (benchmarks use it to vary the workers).
    """
    console.configure()  # what Ray logs, before it starts anything that inherits it
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": False, "logging_level": console.level()}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    console.configure()  # Ray Data sets its loggers up when first used


def assigned_cpus() -> int | None:
    """The CPUs Ray gave the current worker (a trial, a replica), or None outside Ray."""
    if not ray.is_initialized():
        return None
    return int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)) or None


def shutdown_ray() -> None:
    """Leave the cluster (or stop the local instance) if this process joined one."""
    if ray.is_initialized():
        ray.shutdown()
