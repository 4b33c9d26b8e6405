"""The trainable: a thin shell over ``training.run`` (or, in a tagger search, the tagger's fit)
that checkpoints every epoch and replays a finished trial after a restore."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from relext_ray.cluster.connect import assigned_cpus
from relext_ray.config import ExperimentConfig, SearchConfig, with_values
from relext_ray.data.prepared import ensure_prepared
from relext_ray.instances.vocab import Vocabularies
from relext_ray.registry import SearchTask
from relext_ray.search.resume import marker, read_marker, write_marker
from relext_ray.tracking.trials import REPLAYED
from relext_ray.training.device import configure_threads, resolve_device
from relext_ray.training.fit import FitState
from relext_ray.training.metrics import Scores
from relext_ray.training.run import TrainResult, run
from relext_ray.training.tagging import EntityScores, fit_tagger, tagger_data

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
    path, done = _finished(finished)
    if done:
        return None
    cfg = in_trial(cfg)
    result = run(cfg, save=False, resume=_restored(), on_state=_report)
    last = result.history[-1] if result.history else {}
    if final is not None:
        last = final(result)
        tune.report(last)
    if path is not None:
        write_marker(path, last)
    return result


def _finished(finished: Path | None) -> tuple[Path | None, bool]:
    """This trial's finish marker, and whether it was there (its metrics are then reported
    again, marked as replayed)."""
    path = marker(finished, tune.get_context().get_trial_id()) if finished else None
    done = read_marker(path) if path is not None else None
    if done is not None:
        tune.report({**done, REPLAYED: 1.0})
    return path, done is not None


def _restored(scores: type = Scores) -> FitState | None:
    """The state of the trial's last checkpoint, or None when it starts afresh."""
    start = tune.get_checkpoint()
    if start is None:
        return None
    with start.as_directory() as d:
        return FitState.load(Path(d) / STATE_FILE, scores)


def _report(metrics: dict[str, float], state: FitState) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state.save(Path(tmp) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def as_search_metrics(m: dict[str, float]) -> dict[str, float]:
    """A tagger epoch's metrics under the names a search ranks, stops and logs trials by
    (``dev_f1``, ``best_dev_f1``, ``best_epoch``, ...: entity scores in a tagger search),
    beside the ``tagger_*`` originals."""
    return {**m, "loss": m["tagger_loss"], "dev_precision": m["tagger_dev_precision"],
            "dev_recall": m["tagger_dev_recall"], "dev_f1": m["tagger_dev_f1"],
            "best_dev_f1": m["tagger_best_dev_f1"], "best_epoch": m["tagger_best_epoch"],
            "epoch_seconds": m["tagger_epoch_seconds"]}


def run_tagger_with_checkpoints(cfg: ExperimentConfig, finished: Path | None = None) -> None:
    """A tagger search's trial: the entity tagger alone, on the prepared corpus's vocabularies,
    checkpointed every epoch like a relation trial; ranked by dev entity F1."""
    path, done = _finished(finished)
    if done:
        return
    cfg = in_trial(cfg)
    vocabs = Vocabularies.load(ensure_prepared(cfg) / "vocab")
    vocab, splits = tagger_data(cfg, vocabs.tokens, vocabs.tags)
    device = resolve_device(cfg.train.device)
    configure_threads(cfg.train.num_threads)
    last: dict[str, float] = {}

    def report(metrics: dict[str, float], state: FitState) -> None:
        last.update(as_search_metrics(metrics))
        _report(last, state)

    resume = _restored(EntityScores)
    if resume is not None and resume.history:
        last.update(as_search_metrics(resume.history[-1]))
    fit_tagger(cfg.tagger, vocab, splits["train"], splits["dev"], device, cfg.train.seed,
               resume=resume, on_state=report)
    if path is not None:
        write_marker(path, last)


def trial_function(params: dict[str, Any], base: dict[str, Any],
                   finished: str | None = None, task: SearchTask = "relation") -> None:
    """One search trial: the base config with the sampled values."""
    cfg = with_values(ExperimentConfig.model_validate(base), params)
    done = Path(finished) if finished else None
    if task == "tagger":
        run_tagger_with_checkpoints(cfg, done)
    else:
        run_with_checkpoints(cfg, done)


def make_trainable(base: dict[str, Any], s: SearchConfig, finished: Path | None = None) -> Any:
    """The trial function with its base config and per-trial resources (fractional GPUs too)."""
    return tune.with_resources(
        tune.with_parameters(trial_function, base=base,
                             finished=str(finished) if finished else None, task=s.task),
        {"cpu": s.resources_per_trial.cpu, "gpu": s.resources_per_trial.gpu})
