"""One MLflow child run per Ray Tune trial, written from the driver only (a Tune callback)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunStatus
from ray import tune

from relext_ray.training.fit import stop_reason

REPLAYED = "replayed"  # set on the report a finished trial sends again after a restore
TRIAL_METRICS = ("loss", "loss_class", "loss_id", "dev_precision", "dev_recall", "dev_f1",
                 "best_dev_f1", "epoch_seconds")


class MlflowTrials(tune.Callback):
    """Child runs under the search's parent run, written from the driver only.

    A trial's run is found again by its ``trial_id`` tag, so a resumed search continues the
    runs of its earlier trials instead of duplicating them, and ``reconcile`` brings the runs in
    line with the trials Tune restored.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 epochs: int, patience: int, metrics: tuple[str, ...] = TRIAL_METRICS,
                 name: Callable[[Any], str] | None = None,
                 limits: Callable[[Any], tuple[int, int]] | None = None,
                 replaying: Callable[[str], bool] | None = None) -> None:
        self.uri, self.experiment_id, self.parent = tracking_uri, experiment_id, parent_run_id
        # a trial's (epochs, patience): the same for all unless trials differ (``limits``)
        self.limits = limits or (lambda trial: (epochs, patience))
        self.metrics = metrics
        self.name = name or (lambda trial: f"trial_{trial.trial_id}")
        # whether a trial only replays its finish (its run is finished and stays so)
        self.replaying = replaying or (lambda trial_id: False)
        self.runs: dict[str, str] = {}
        self.last_step: dict[str, int] = {}

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.uri)

    def _trial_runs(self) -> list[Any]:
        """Every run of a trial under the parent run (paged)."""
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], max_results=1000, page_token=token,
                filter_string=f"tags.`mlflow.parentRunId` = '{self.parent}'")
            runs += [r for r in page if "trial_id" in r.data.tags]
            token = page.token
            if not token:
                return runs

    def _existing(self, trial_id: str) -> Any:
        found = self.client.search_runs(
            [self.experiment_id], max_results=2,
            filter_string=f"tags.trial_id = '{trial_id}' and "
                          f"tags.`mlflow.parentRunId` = '{self.parent}'")
        return found[0] if found else None

    def _run_id(self, trial: Any) -> str:
        if trial.trial_id in self.runs:
            return self.runs[trial.trial_id]
        run = self._existing(trial.trial_id)
        if run is None:
            run = self.client.create_run(
                self.experiment_id, run_name=self.name(trial),
                tags={"mlflow.parentRunId": self.parent, "trial_id": trial.trial_id})
            self.client.log_batch(run.info.run_id, params=[
                Param(k, json.dumps(v) if isinstance(v, list | dict) else str(v))
                for k, v in trial.config.items()])
        self.runs[trial.trial_id] = run.info.run_id
        return run.info.run_id

    def reconcile(self, trials: list[Any]) -> list[str]:
        """Make the trial runs follow Tune's restored trials (before a resumed search starts).

        A run whose trial Tune's saved state does not hold (it started after the last snapshot;
        the resumed search runs another trial in its place) is deleted; a trial the state holds
        as terminated has its run closed. Returns the names of the deleted runs.
        """
        known = {t.trial_id: t for t in trials}
        deleted = []
        for run in self._trial_runs():
            trial = known.get(run.data.tags["trial_id"])
            if trial is None:
                self.client.set_tag(run.info.run_id, "stop_reason", "lost_with_the_driver")
                self.client.delete_run(run.info.run_id)
                deleted.append(run.info.run_name)
            elif trial.status == "TERMINATED" and run.info.status != "FINISHED":
                self.runs[trial.trial_id] = run.info.run_id
                self._close(trial)
        return deleted

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = self._run_id(trial)
        restored = self.client.get_run(rid).info.status != "RUNNING"
        if restored and not self.replaying(trial.trial_id):
            self.client.update_run(rid, status="RUNNING")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if result.get(REPLAYED):
            return  # a finished trial's last report, already logged
        rid = self._run_id(trial)
        now = int(time.time() * 1000)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if rid not in self.last_step:
            history = self.client.get_metric_history(rid, "best_dev_f1")
            self.last_step[rid] = max((m.step for m in history), default=0)
        if step <= self.last_step[rid]:
            # An epoch redone after a restore from a slightly older checkpoint: resumption is
            # exact, so its metrics are those already logged.
            return
        self.last_step[rid] = step
        self.client.log_batch(rid, metrics=[Metric(k, float(result[k]), now, step)
                                            for k in self.metrics if k in result])

    def _close(self, trial: Any) -> None:
        rid = self._run_id(trial)
        self.client.set_tag(rid, "stop_reason",
                            stop_reason(trial.last_result or {}, *self.limits(trial)))
        self.client.set_terminated(rid, RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = self._run_id(trial)
        self.client.set_tag(rid, "stop_reason", "error")
        self.client.set_terminated(rid, RunStatus.to_string(RunStatus.FAILED))
