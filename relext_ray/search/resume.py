"""One story of every trial, whenever the driver of a search dies.

A search keeps four records of its trials, written at different moments: Tune's experiment
state (which trials exist, their status and checkpoints; the driver snapshots it every few
seconds and copies the snapshot to storage file by file), the Optuna study behind the sampler,
the MLflow runs, and the trials' own checkpoints and finish markers on storage. A driver killed
between two of those writes leaves them disagreeing, and a resumed search must then take one of
them as the truth and bring the others in line. Here the truth is **Tune's saved experiment
state**, and every other record is made to follow it:

- *The Optuna study* lives in memory inside the searcher (:class:`StudySearch`), and Tune saves
  the searcher in the same snapshot as the trial states, so after a restore the two agree. (A
  study in an RDB storage is written at once and outlives the driver: a trial that finished after
  the last snapshot was finished in the study but still running in Tune, and its next report
  raised ``UpdateFinishedTrialError``.) The searcher still never reports to an Optuna trial that
  is already finished, and adopts a Tune trial it does not know: Tune copies the snapshot's files
  one by one, so a driver killed in that moment leaves files from two snapshots; before such a
  search is restored, :func:`align_snapshot` brings the saved searcher (its study, the trials
  counted as running by the concurrency limit, the number of trials made) in line with the
  saved trials. The study that people inspect (``optuna.db``) is written from Tune's results
  when the search ends (:func:`export_study`).
- *A trial is finished* once its marker ``<experiment>/finished/<trial id>.json`` exists: the trial
  writes it when its training ends, the driver when the scheduler stops the trial
  (:class:`FinishedMarkers`), in both cases before MLflow marks the run finished. A restored
  trial that has a marker reports the marker's metrics again instead of training, so a finished
  trial never trains twice, whatever Tune's snapshot says.
- *MLflow runs* are found again by trial id and never log an epoch twice; a run whose trial is
  not in the saved state (it started after the last snapshot, and the resumed search runs another
  trial in its place) is deleted, so the parent run has one child per trial of the search
  (``MlflowTrials.reconcile`` in :mod:`relext_ray.tracking.trials`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.callback import CallbackList
from ray.tune.execution.tune_controller import TuneController
from ray.tune.result import AUTO_RESULT_KEYS
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils import flatten_dict

from relext_ray.files import write_text_atomically
from relext_ray.tracking.trials import REPLAYED

FINISHED = "finished"  # <experiment dir>/finished/<trial id>.json: a trial's last report
# Keys Tune adds to every result: not the trial's own metrics, never replayed.
_TUNE_KEYS = {*AUTO_RESULT_KEYS, "done", "trial_id", "experiment_tag", "should_checkpoint",
              "time_since_restore", "iterations_since_restore", REPLAYED}


def marker(directory: Path, trial_id: str) -> Path:
    """Where the finish marker of a trial lives."""
    return directory / f"{trial_id}.json"


def own_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric values a trial reported itself (without the keys Tune adds)."""
    return {k: float(v) for k, v in result.items()
            if k not in _TUNE_KEYS and isinstance(v, int | float) and not isinstance(v, bool)}


def write_marker(path: Path, metrics: Mapping[str, Any]) -> None:
    """Write a finish marker atomically (a reader sees the whole file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(own_metrics(metrics)))


def read_marker(path: Path) -> dict[str, float] | None:
    """A trial's finish marker, or None when the trial has not finished."""
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class FinishedMarkers(tune.Callback):
    """Writes a trial's finish marker on the driver when the trial ends, if the trial has not
    written it itself (a trial the scheduler stopped never gets to). Listed before the MLflow
    callback, so a run marked finished in MLflow always has its marker."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def has(self, trial_id: str) -> bool:
        """Whether the trial has finished (its marker exists)."""
        return marker(self.directory, trial_id).exists()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        path = marker(self.directory, trial.trial_id)
        if not path.exists() and trial.last_result:
            write_marker(path, trial.last_result)


class StudySearch(OptunaSearch):
    """Optuna (TPE or random) as a Tune searcher whose study is saved in Tune's snapshots.

    The study is in memory, so Tune's own save of the searcher holds it, taken in the same
    snapshot as the trial states. On top of Ray's ``OptunaSearch``: a report for a trial the
    study already holds as finished is dropped (a finished trial replays its last report once
    after a restore), a step already reported is not reported again (a trial restored from an
    older checkpoint redoes an epoch), and a trial the searcher does not know is adopted with
    the configuration Tune gave it.

    Args:
        metric: The result key to optimise (e.g. ``best_dev_f1``).
        mode: ``"max"`` or ``"min"``.
        sampler: The Optuna sampler (seeded), e.g. ``optuna.samplers.TPESampler(seed=1)``.
        study_name: The study's name (also of the exported study).
    """

    def __init__(self, *, metric: str, mode: str, sampler: optuna.samplers.BaseSampler,
                 study_name: str) -> None:
        super().__init__(metric=metric, mode=mode, sampler=sampler, study_name=study_name)

    def _frozen(self, trial_id: str) -> optuna.trial.FrozenTrial:
        number = self._ot_trials[trial_id].number
        return self._ot_study.get_trials(deepcopy=False)[number]

    def _adopt(self, trial_id: str, result: Mapping[str, Any] | None) -> bool:
        """Make sure the study has a trial for ``trial_id``; False if it cannot (no config)."""
        if trial_id in self._ot_trials:
            return True
        config = (result or {}).get("config")
        if not config or not isinstance(self._space, dict):
            return False
        flat = flatten_dict(dict(config), prevent_delimiter=True)
        self._ot_study.enqueue_trial({k: flat[k] for k in self._space if k in flat})
        self._ot_trials[trial_id] = self._ot_study.ask(fixed_distributions=self._space)
        return True

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or not self._adopt(trial_id, result):
            return
        frozen = self._frozen(trial_id)
        if frozen.state.is_finished() or result.get(REPLAYED):
            return
        if result.get("training_iteration") in frozen.intermediate_values:
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or not self._adopt(trial_id, result):
            return
        if self._frozen(trial_id).state.is_finished():
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def export_study(trials: list[dict[str, Any]], distributions: dict[str, Any], storage: str,
                 name: str, direction: str) -> optuna.Study:
    """Write the search's trials as an Optuna study (replacing one of the same name).

    Written from Tune's results when the search has ended, so the study holds each trial of the
    search exactly once, whatever happened to the driver along the way.

    Args:
        trials: One dict per Tune trial: ``params`` (name → value), ``state`` (``COMPLETE``,
            ``PRUNED`` or ``FAIL``), ``value`` (the final metric; COMPLETE only),
            ``intermediate`` (step → metric), ``trial_id``.
        distributions: Name → Optuna distribution of every searched value.
        storage: An Optuna storage URL, e.g. ``sqlite:///.../optuna.db``.
        name: The study name.
        direction: ``"maximize"`` or ``"minimize"``.

    Returns:
        The new study.
    """
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    for t in trials:
        state = optuna.trial.TrialState[t["state"]]
        study.add_trial(optuna.trial.create_trial(
            params={k: v for k, v in t["params"].items() if k in distributions},
            distributions={k: distributions[k] for k in t["params"] if k in distributions},
            value=t.get("value") if state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values={int(k): float(v) for k, v in t["intermediate"].items()},
            user_attrs={"tune_trial_id": t["trial_id"]}, state=state))
    return study


def align_snapshot(exp_dir: Path, trials: list[Any], searcher: StudySearch,
                   max_concurrent: int) -> list[str]:
    """Bring the searcher saved in a search folder in line with the trials saved there.

    Tune writes a snapshot's files (trial states, search generator, searcher) one by one, so a
    driver killed in the middle leaves a searcher a snapshot older or newer than the trials. A
    trial only the searcher knows would hold a concurrency slot for ever and count towards the
    trials made; a trial Tune holds as terminated but the searcher as running would too. Both
    are put right, and the files rewritten under the same names, before ``Tuner.restore``.

    Args:
        exp_dir: The search folder (Tune's experiment directory).
        trials: The trials of Tune's saved state (``tune.ExperimentAnalysis(exp_dir).trials``).
        searcher: A searcher of the class the search uses; its state is loaded from the folder.
        max_concurrent: The search's concurrency limit.

    Returns:
        What was put right, one line each (empty when the files agreed).
    """
    states = sorted(exp_dir.glob(SearchGenerator.CKPT_FILE_TMPL.format("*")))
    if not states:
        return []
    session = re.fullmatch(SearchGenerator.CKPT_FILE_TMPL.format("(.*)"), states[-1].name)[1]
    limiter = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    generator = SearchGenerator(limiter)
    generator.restore_from_dir(str(exp_dir))
    known = {t.trial_id: t for t in trials}
    fixed = []
    for trial_id in [t for t in searcher._ot_trials if t not in known]:
        frozen = searcher._frozen(trial_id)
        if not frozen.state.is_finished():
            searcher._ot_study.tell(searcher._ot_trials[trial_id],
                                    state=optuna.trial.TrialState.FAIL)
        del searcher._ot_trials[trial_id]
        searcher._completed_trials.discard(trial_id)
        fixed.append(f"trial {trial_id} is not in Tune's saved trials: dropped from the searcher")
    for trial_id, trial in known.items():
        if trial_id not in searcher._ot_trials:
            searcher._adopt(trial_id, {"config": trial.config})
            fixed.append(f"trial {trial_id} adopted by the searcher")
        if trial.status == "TERMINATED" and trial_id not in searcher._completed_trials:
            searcher.on_trial_complete(trial_id, result=dict(trial.last_result or {}))
            fixed.append(f"trial {trial_id} terminated: told to the searcher")
    # running or waiting to run; errored trials are left as Tune leaves them
    live = {t for t, trial in known.items() if trial.status in ("RUNNING", "PENDING", "PAUSED")}
    if limiter.live_trials != live:
        fixed.append(f"trials counted as running: {sorted(limiter.live_trials)} -> "
                     f"{sorted(live)}")
        limiter.live_trials = live
        limiter.num_unfinished_live_trials = len(live)
    state = generator.get_state()
    if state["counter"] != len(known):
        fixed.append(f"trials made: {state['counter']} -> {len(known)}")
        generator.set_state({**state, "counter": len(known)})
    if fixed:
        generator.save_to_dir(str(exp_dir), session)
    return fixed


# The files of a Tune snapshot: trial states, the search algorithm (a searcher behind a search
# generator, or the grid's variant generator) and callback states.
_SNAPSHOT_FILES = tuple(t.format("*") for t in (
    TuneController.CKPT_FILE_TMPL, SearchGenerator.CKPT_FILE_TMPL, StudySearch.CKPT_FILE_TMPL,
    BasicVariantGenerator.CKPT_FILE_TMPL, CallbackList.CKPT_FILE_TMPL))


def forget_unsaved_snapshots(trials: list[Any]) -> list[Path]:
    """Delete the snapshot files a dead driver left in its local staging folder.

    Tune writes each snapshot to a staging folder on the driver's node, then copies it to the
    search folder. A restore on the same Ray session stages into that same folder and reads the
    searcher from there, so a snapshot that never reached storage (the driver died first) would
    be taken for the searcher while the trials come from the older one in storage. Deleted, the
    restore copies in the snapshot from storage, the one :func:`align_snapshot` checked.

    Args:
        trials: The trials of Tune's saved state; their storage names the staging folder.

    Returns:
        The deleted files.
    """
    staging = _staging(trials)
    if staging is None:
        return []
    gone = [f for pattern in _SNAPSHOT_FILES for f in staging.glob(pattern)]
    for f in gone:
        f.unlink(missing_ok=True)
    return gone


def _staging(trials: list[Any]) -> Path | None:
    """The driver's local staging folder of the job (where Tune writes before copying)."""
    return Path(trials[0].storage.experiment_driver_staging_path) if trials else None


def drop_lost_trials(exp_dir: Path, trials: list[Any]) -> list[str]:
    """Delete the folders (and finish markers) of trials that Tune's saved state does not hold.

    Such a trial started after the last snapshot that reached storage; the resumed search runs
    another trial in its place, so its checkpoints are never read again. Its folder goes from
    the search folder and from the driver's staging folder, which Tune copies to storage again
    (a restore on the same Ray session stages into the dead driver's folder).

    Args:
        exp_dir: The search folder.
        trials: The trials of Tune's saved state.

    Returns:
        The names of the deleted trial folders.
    """
    names = {Path(t.path).name for t in trials}
    ids = {t.trial_id for t in trials}
    lost: list[Path] = []
    for base in (exp_dir, _staging(trials)):
        if base is not None and base.is_dir():
            lost += [d for d in base.iterdir() if d.is_dir() and d.name not in names and
                     ((d / "params.json").exists() or (d / "result.json").exists())]
    for d in lost:
        shutil.rmtree(d, ignore_errors=True)
    for f in (exp_dir / FINISHED).glob("*.json"):
        if f.stem not in ids:
            f.unlink(missing_ok=True)
    return sorted({d.name for d in lost})


def before_restore(folder: Path, runs: Any, searcher: StudySearch | None = None,
                   max_concurrent: int = 1) -> list[str]:
    """Everything a resumed job does before ``Tuner.restore``, in order.

    Args:
        folder: The job's folder.
        runs: Its MLflow trial callback (``tracking.trials.MlflowTrials``).
        searcher: A searcher of the class the job uses, to align the saved one (grid jobs: None).
        max_concurrent: The job's concurrency limit.

    Returns:
        What was put right, one line each, for the job's output.
    """
    trials = tune.ExperimentAnalysis(str(folder)).trials
    lines = []
    if searcher is not None:
        lines += [f"saved search state put right: {line}"
                  for line in align_snapshot(folder, trials, searcher, max_concurrent)]
    forget_unsaved_snapshots(trials)
    lines += [f"trial folder {name} deleted: its trial is not in the saved state"
              for name in drop_lost_trials(folder, trials)]
    lines += [f"MLflow run {name} deleted: its trial started after the last saved state, and "
              "the resumed job runs another trial in its place" for name in runs.reconcile(trials)]
    return lines
