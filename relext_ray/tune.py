"""Distributed hyper-parameter search: Ray Tune + Optuna (TPE) + ASHA, tracked in MLflow.

``python -m relext_ray.tune --config tune_configs/smoke.yaml`` or, on a cluster,
``ray job submit --address http://<head>:8265 --working-dir . -- python jobs/tune.py --config ...``

MLflow is written by the driver only (a Tune callback): one parent run per search, one child
run per trial, so parallel trials never contend for the tracking store, and a trial that ASHA
stops is marked as such. After the search the best configuration is retrained, scored on test
(with and without the dev-calibrated theta), logged under the parent and registered.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import ray
from mlflow.entities import Metric, Param, RunStatus
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from relext_ray import tracking
from relext_ray.cluster import init_ray
from relext_ray.config import (
    Distribution,
    ExperimentConfig,
    SearchConfig,
    TuneExperimentConfig,
    load_search,
    with_values,
)
from relext_ray.errors import RelextError, cli_exit
from relext_ray.search.resume import (
    FINISHED,
    REPLAYED,
    FinishedMarkers,
    StudySearch,
    align_snapshot,
    drop_lost_trials,
    export_study,
    forget_unsaved_snapshots,
    marker,
    read_marker,
    stop_reason,
    write_marker,
)

if TYPE_CHECKING:
    from relext_ray.train import TrainResult

TRIAL_METRICS = ("loss", "loss_class", "loss_id", "dev_precision", "dev_recall", "dev_f1",
                 "best_dev_f1", "epoch_seconds")


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


STATE_FILE = "fit_state.pt"


# Tune deletes a trial's older checkpoints; the experiment state it saves can lag a little
# behind, so keep a few (a restore then always finds the one the state names).
KEEP_CHECKPOINTS = 3


def run_with_checkpoints(cfg: ExperimentConfig, finished: Path | None = None,
                         final: Callable[[TrainResult], dict[str, float]] | None = None
                         ) -> TrainResult | None:
    """The training run inside a Tune trial: a checkpoint with every epoch's report, so that a
    trial whose worker, node or driver died continues from its last epoch.

    A trial that finished has a marker in ``finished`` (see :mod:`relext_ray.search.resume`);
    restored after a driver death, it reports the marker's metrics again instead of training.
    ``final`` adds one more report after training (the test scores).
    """
    from relext_ray.train import FitState, run

    path = marker(finished, tune.get_context().get_trial_id()) if finished else None
    done = read_marker(path) if path is not None else None
    if done is not None:
        tune.report({**done, REPLAYED: 1.0})
        return None
    cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"enabled": False})})
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
                 finished: Path | None = None) -> None:
        self.uri, self.experiment_id, self.parent = tracking_uri, experiment_id, parent_run_id
        # a trial's (epochs, patience): the same for all unless trials differ (``limits``)
        self.limits = limits or (lambda trial: (epochs, patience))
        self.metrics = metrics
        self.name = name or (lambda trial: f"trial_{trial.trial_id}")
        self.finished = finished
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
        replaying = self.finished is not None and marker(self.finished, trial.trial_id).exists()
        if not replaying and self.client.get_run(rid).info.status != "RUNNING":  # restored
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


def _plots(results: list[dict[str, Any]], importances: dict[str, float], directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(results)), [r["best_dev_f1"] for r in results])
    ax.set_xticks(range(len(results)), [r["trial_id"] for r in results], rotation=60, fontsize=7)
    ax.set_ylabel("best dev F1")
    ax.set_title("dev F1 per trial")
    fig.tight_layout()
    fig.savefig(directory / "dev_f1_per_trial.png", dpi=120)
    plt.close(fig)
    if importances:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = list(importances)
        ax.barh(names, [importances[n] for n in names])
        ax.set_xlabel("importance (fANOVA)")
        fig.tight_layout()
        fig.savefig(directory / "param_importances.png", dpi=120)
        plt.close(fig)


def ranked_table(results: list[dict[str, Any]], keys: list[str]) -> str:
    head = ["rank", "trial", "best dev F1", "epochs", "status", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(results, 1):
        vals = [f"{r['config'].get(k):.4g}" if isinstance(r["config"].get(k), float)
                else str(r["config"].get(k)) for k in keys]
        lines.append(f"| {i} | {r['trial_id']} | {100 * r['best_dev_f1']:.2f} | {r['epochs']} | "
                     f"{r['status']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


RECORD = "relext_search.json"


def experiment_dir(cfg: TuneExperimentConfig) -> Path:
    """Where Tune keeps the search (trial checkpoints, state), the Optuna study and our record."""
    return Path(cfg.search.storage_path).resolve() / cfg.name


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
    return out


def _start(cfg: TuneExperimentConfig, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the experiment folder against the request; the record of the search to resume."""
    exp_dir = experiment_dir(cfg)
    if resume:
        if not (exp_dir / RECORD).exists() or not tune.Tuner.can_restore(str(exp_dir)):
            raise RelextError(f"nothing to resume at {exp_dir}: no search was started there "
                              "(run without --resume)")
        record = json.loads((exp_dir / RECORD).read_text(encoding="utf-8"))
        was, now = _flat(record["config"]), _flat(json.loads(cfg.model_dump_json()))
        changed = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
        if changed:
            raise RelextError(f"--resume needs the config the search at {exp_dir} started with; "
                              f"these values differ: {', '.join(changed)}")
        if record["tracking_uri"] != tracking.tracking_uri():
            raise RelextError(f"the search at {exp_dir} is tracked in {record['tracking_uri']}; "
                              f"set MLFLOW_TRACKING_URI to it to resume (now "
                              f"{tracking.tracking_uri()})")
        return record
    if exp_dir.exists():
        if not overwrite:
            raise RelextError(f"a search named {cfg.name!r} already exists at {exp_dir}: continue it "
                              "with --resume, replace it with --overwrite, or set "
                              "search.storage_path")
        shutil.rmtree(exp_dir)
    return None


def best_result(grid: Any, metric: str, mode: str) -> Any:
    """The best trial's result; ties go to the smaller trial id, so a resumed search picks the
    same trial as the search it continues (Tune's own order of results can differ)."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [r for r in grid if r.metrics and metric in r.metrics]
    if not scored:
        raise RelextError(f"no trial of the search reported {metric!r}")
    return min(scored, key=lambda r: (-sign * float(r.metrics[metric]), r.metrics["trial_id"]))


def study_trials(grid: Any, s: SearchConfig, epochs: int, patience: int) -> list[dict[str, Any]]:
    """Tune's results as the trials of the exported Optuna study: trials that ran all their
    epochs or stopped early are COMPLETE with their final metric, trials that ASHA stopped are
    PRUNED, failed ones FAIL; intermediate values are the metric per epoch."""
    out = []
    for r in grid:
        last = r.metrics or {}
        history = r.metrics_dataframe
        steps: dict[int, float] = {}
        if history is not None and s.metric in history and "epoch" in history:
            rows = history if REPLAYED not in history else history[history[REPLAYED] != 1]
            steps = {int(e): float(v) for e, v in zip(rows["epoch"], rows[s.metric], strict=True)
                     if e == e and v == v}  # skip NaN (rows without an epoch)
        if r.error is not None or s.metric not in last:
            state = "FAIL"
        elif stop_reason(last, epochs, patience) == "stopped_by_scheduler":
            state = "PRUNED"
        else:
            state = "COMPLETE"
        out.append({"trial_id": last.get("trial_id", r.path), "state": state,
                    "params": {k: r.config[k] for k in s.space if k in (r.config or {})},
                    "value": float(last[s.metric]) if s.metric in last else None,
                    "intermediate": steps})
    return out


def search(cfg: TuneExperimentConfig, resume: bool = False,
           overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) the search; return the best config, its scores and the MLflow ids."""
    from relext_ray.train import ensure_prepared, run_tracked

    s = cfg.search
    exp_cfg = cfg.experiment
    record = _start(cfg, resume, overwrite)
    exp_dir = experiment_dir(cfg)
    exp_dir.mkdir(parents=True, exist_ok=True)
    init_ray()
    ensure_prepared(exp_cfg)  # once, on the driver, before trials start

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The study is written to the experiment folder when the search ends (inspect it with
    # optuna-dashboard or optuna.load_study); during the search it lives inside the searcher.
    study_storage = f"sqlite:///{exp_dir / 'optuna.db'}"
    uri = tracking.tracking_uri()
    experiment = exp_cfg.tracking.experiment or f"relext-{exp_cfg.name}"
    exp_id = tracking.experiment_id(experiment)
    base = json.loads(exp_cfg.model_dump_json())
    # Trials run in other processes (and nodes): hand them absolute paths.
    base["data"]["prepared_dir"] = str(exp_cfg.prepared_dir.resolve())
    base["data"]["data_dir"] = str(Path(exp_cfg.data.data_dir).resolve())
    trainable = make_trainable(base, s, exp_dir.resolve() / FINISHED)

    finished = exp_dir.resolve() / FINISHED
    with tracking.parent_run(record["parent_run_id"] if record else None, exp_id,
                             f"search-{cfg.name}", {"search": cfg.name}) as parent:
        trials_cb = MlflowTrials(uri, exp_id, parent.info.run_id, exp_cfg.train.epochs,
                                 exp_cfg.train.patience, finished=finished)
        if record:
            print(f"resuming the search in {exp_dir} (MLflow run {parent.info.run_id})")
            restored = tune.ExperimentAnalysis(str(exp_dir)).trials
            for line in align_snapshot(exp_dir, restored, StudySearch(
                    metric=s.metric, mode=s.mode, sampler=optuna.samplers.RandomSampler(),
                    study_name=cfg.name), s.max_concurrent):
                print(f"saved search state put right: {line}")
            forget_unsaved_snapshots(restored)
            drop_lost_trials(exp_dir, restored)
            for name in trials_cb.reconcile(restored):
                print(f"MLflow run {name} deleted: its trial started after the search's last "
                      "saved state, and the resumed search runs another trial in its place")
            tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_errored=True,
                                       param_space=tune_space(s.space))
        else:
            mlflow.log_params({f"search.{k}": v for k, v in {
                "num_samples": s.num_samples, "max_concurrent": s.max_concurrent,
                "algorithm": s.algorithm, "scheduler": s.scheduler.type, "metric": s.metric,
                "seed": s.seed,
                "max_failures": s.max_failures, "cpu_per_trial": s.resources_per_trial.cpu,
                "gpu_per_trial": s.resources_per_trial.gpu}.items()})
            mlflow.log_dict(json.loads(cfg.model_dump_json()), "search_config.json")
            (exp_dir / RECORD).write_text(json.dumps({
                "parent_run_id": parent.info.run_id, "tracking_uri": uri,
                "config": json.loads(cfg.model_dump_json())}, indent=2), encoding="utf-8")
            sampler = (optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.startup_trials)
                       if s.algorithm == "tpe" else optuna.samplers.RandomSampler(seed=s.seed))
            searcher = StudySearch(metric=s.metric, mode=s.mode, sampler=sampler,
                                   study_name=cfg.name)
            scheduler = (ASHAScheduler(time_attr="epoch", max_t=exp_cfg.train.epochs,
                                       grace_period=s.scheduler.grace_period,
                                       reduction_factor=s.scheduler.reduction_factor)
                         if s.scheduler.type == "asha" else None)
            tuner = tune.Tuner(
                trainable,
                param_space=tune_space(s.space),
                tune_config=tune.TuneConfig(
                    metric=s.metric, mode=s.mode, num_samples=s.num_samples,
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent),
                    scheduler=scheduler),
                run_config=tune.RunConfig(
                    name=cfg.name, storage_path=str(exp_dir.parent),
                    # markers first: a run finished in MLflow always has its marker
                    callbacks=[FinishedMarkers(finished), trials_cb],
                    verbose=1, failure_config=tune.FailureConfig(max_failures=s.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS)),
            )
        grid = tuner.fit()
        results = []
        for r in grid:
            if r.metrics is None:
                continue
            results.append({
                "trial_id": r.metrics.get("trial_id", "?"),
                "best_dev_f1": float(r.metrics.get("best_dev_f1", 0.0)),
                "epochs": int(r.metrics.get("epoch", 0)),
                "status": "error" if r.error else "ok",
                "config": r.config,
            })
        results.sort(key=lambda r: (-r["best_dev_f1"], r["trial_id"]))
        best = best_result(grid, s.metric, s.mode)
        # The study people inspect (optuna-dashboard, optuna.load_study), from Tune's results.
        study = export_study(study_trials(grid, s, exp_cfg.train.epochs, exp_cfg.train.patience),
                             OptunaSearch.convert_search_space(tune_space(s.space)),
                             study_storage, cfg.name,
                             "maximize" if s.mode == "max" else "minimize")
        importances: dict[str, float] = {}
        try:
            importances = optuna.importance.get_param_importances(study)
        except Exception as exc:
            print(f"parameter importances not available: {exc}")
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            table = ranked_table(results, list(s.space))
            (d / "trials.md").write_text(table + "\n")
            (d / "param_importances.json").write_text(json.dumps(importances, indent=2))
            _plots(results, importances, d)
            mlflow.log_artifacts(tmp)
        mlflow.log_params({f"best.{k}": v for k, v in best.config.items()})
        mlflow.log_metric("best_trial_dev_f1", float(best.metrics[s.metric]))

        final_cfg = with_values(exp_cfg, best.config)
        final_cfg = final_cfg.model_copy(update={"tracking": final_cfg.tracking.model_copy(
            update={"register_as": s.register_as or final_cfg.tracking.register_as,
                    "experiment": experiment})})
        if record:
            for rid in tracking.delete_children(parent.info.run_id, f"best-{cfg.name}"):
                print(f"MLflow run {rid} deleted: the best configuration is trained again")
        result, run_id, model_uri = run_tracked(final_cfg, run_name=f"best-{cfg.name}",
                                                parent_run_id=parent.info.run_id)
        mlflow.log_metrics({f"best_{k}": float(v) for k, v in result.metrics().items()})
        print("\n" + table)
        return {"best_config": best.config, "parent_run_id": parent.info.run_id,
                "best_run_id": run_id, "model_uri": model_uri, "trials": len(results),
                "trial_epochs": sum(r["epochs"] for r in results),
                "best_trial_metric": float(best.metrics[s.metric]),
                "result": result, "importances": importances}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="search YAML (tune_configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in search.storage_path/<name> after its driver died: "
                        "finished trials are kept, unfinished ones continue from their last "
                        "checkpoint, the MLflow parent run is continued")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier search of the same name and storage path")
    args = p.parse_args(argv)
    if args.resume and args.overwrite:
        p.error("--resume and --overwrite exclude each other")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    def body() -> None:
        from relext_ray.train import format_result

        out = search(load_search(args.config, args.overrides), args.resume, args.overwrite)
        print(f"\nbest config: {out['best_config']}")
        print(format_result(out["result"]))
        print(f"MLflow parent run {out['parent_run_id']} in {tracking.tracking_uri()}; "
              f"best model {out['model_uri']}")
        if ray.is_initialized():
            ray.shutdown()

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
