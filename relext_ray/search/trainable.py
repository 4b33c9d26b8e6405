"""The trainable: a thin shell over ``training.run`` that checkpoints every epoch and replays a
finished trial after a restore."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from relext_ray.cluster.connect import assigned_cpus
from relext_ray.config import ExperimentConfig, SearchConfig, with_values
from relext_ray.search.resume import marker, read_marker, write_marker
from relext_ray.tracking.trials import REPLAYED
from relext_ray.training.fit import FitState
from relext_ray.training.run import TrainResult, run

STATE_FILE = "fit_state.pt"


# Tune deletes a trial's older checkpoints; the experiment state it saves can lag a little
# behind, so keep a few (a restore then always finds the one the state names).
KEEP_CHECKPOINTS = 3


def in_trial(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config as a trial runs it: untracked (the driver writes MLflow), without the entity
    tagger (the search selects the relation model; the best configuration's final run trains
    the tagger) and, unless set, with as many torch threads as the CPUs Ray gave the trial."""
    threads = cfg.train.num_threads or assigned_cpus()
    return cfg.model_copy(update={
        "tracking": cfg.tracking.model_copy(update={"enabled": False}),
        "tagger": cfg.tagger.model_copy(update={"enabled": False}),
        "train": cfg.train.model_copy(update={"num_threads": threads})})


def run_with_checkpoints(cfg: ExperimentConfig, finished: Path | None = None,
                         final: Callable[[TrainResult], dict[str, float]] | None = None
                         ) -> TrainResult | None:
    """The training run inside a Tune trial: a checkpoint with every epoch's report, so that a
    trial whose worker, node or driver died continues from its last epoch.

    A trial that finished has a marker in ``finished`` (see :mod:`relext_ray.search.resume`);
    restored after a driver death, it reports the marker's metrics again instead of training.
    ``final`` adds one more report after training (the test scores).
    """
    path = marker(finished, tune.get_context().get_trial_id()) if finished else None
    done = read_marker(path) if path is not None else None
    if done is not None:
        tune.report({**done, REPLAYED: 1.0})
        return None
    cfg = in_trial(cfg)
    resume = None
    start = tune.get_checkpoint()
    if start is not None:
        with start.as_directory() as d:
            resume = FitState.load(Path(d) / STATE_FILE)

    def report(metrics: dict[str, float], state: FitState) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            state.save(Path(tmp) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    result = run(cfg, save=False, resume=resume, on_state=report)
    last = result.history[-1] if result.history else {}
    if final is not None:
        last = final(result)
        tune.report(last)
    if path is not None:
        write_marker(path, last)
    return result


def trial_function(params: dict[str, Any], base: dict[str, Any],
                   finished: str | None = None) -> None:
    """One search trial: the base config with the sampled values."""
    run_with_checkpoints(with_values(ExperimentConfig.model_validate(base), params),
                         Path(finished) if finished else None)


def make_trainable(base: dict[str, Any], s: SearchConfig, finished: Path | None = None) -> Any:
    """The trial function with its base config and per-trial resources (fractional GPUs too)."""
    return tune.with_resources(
        tune.with_parameters(trial_function, base=base,
                             finished=str(finished) if finished else None),
        {"cpu": s.resources_per_trial.cpu, "gpu": s.resources_per_trial.gpu})
