"""Running the study: every run a Ray Tune trial (so it spreads over a cluster, checkpoints
every epoch and resumes after a failure), all under one MLflow parent run."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ray import tune

from relext_ray.cluster.connect import init_ray
from relext_ray.config import load_experiment
from relext_ray.files import write_text_atomically
from relext_ray.reproduce.study import CONFIGS, CORPORA, Budget, Run
from relext_ray.search import folder as job_folder
from relext_ray.search.resume import FINISHED, FinishedMarkers, before_restore
from relext_ray.search.trainable import KEEP_CHECKPOINTS, in_trial, run_with_checkpoints
from relext_ray.tracking import runs as tracking
from relext_ray.tracking.trials import TRIAL_METRICS, MlflowTrials
from relext_ray.training.run import TrainResult

FINAL_METRICS = (
    "test_precision", "test_recall", "test_f1", "test_calibrated_f1", "calibrated_theta",
    "best_dev_f1", "best_epoch", "train_instances", "train_positives", "train_neg_per_pos",
    "test_instances", "test_positives", "test_neg_per_pos", "seconds_per_epoch",
    "test_false_negatives", "test_false_positives", "test_wrong_class", "test_f1_sd",
)
RECORD = "relext_reproduce.json"
PARTS = "relext_reproduce_parts.txt"  # when each part of the study began


def run_config(run: dict[str, Any], prepared: dict[str, str]):
    """The training config of one run (a dict from ``asdict(Run)`` plus its overrides)."""
    overrides = [*run["overrides"], f"data.prepared_dir={prepared[run['corpus']]}",
                 "tracking.enabled=false"]
    return load_experiment(CONFIGS / CORPORA[run["corpus"]].config, overrides)


def study_trial(params: dict[str, Any], prepared: dict[str, str], cv: int | None,
                finished: str) -> None:
    """One run of the study; its last report carries the test scores the report needs."""
    run = params["run"]
    cfg = run_config(run, prepared)
    if cv:
        from relext_ray.training.cv import cross_validate

        summary = cross_validate(in_trial(cfg), cv).summary()
        tune.report({"test_f1": summary["f1"][0], "test_f1_sd": summary["f1"][1],
                     "test_precision": summary["precision"][0],
                     "test_recall": summary["recall"][0],
                     **({"test_calibrated_f1": summary["calibrated_f1"][0]}
                        if "calibrated_f1" in summary else {})})
        return
    run_with_checkpoints(cfg, Path(finished), final_metrics)


def final_metrics(result: TrainResult) -> dict[str, float]:
    final = {k: float(v) for k, v in result.metrics().items()}
    if result.test is not None:
        final.update({f"test_{k}": v for k, v in result.test.error_breakdown.items()})
    return final


def run_study(runs: list[Run], budget: Budget, storage: Path, name: str, *, cv: int | None,
              resume: bool, overwrite: bool, cpu: float, gpu: float, max_concurrent: int | None,
              max_failures: int, experiment: str, prepared_root: Path) -> dict[str, Any]:
    """Run (or resume) every run as a Tune trial; return the rows for the report."""
    from relext_ray.data.prepared import ensure_prepared

    folder = (storage / name).resolve()
    uri = tracking.tracking_uri()
    record = job_folder.start(folder, RECORD, resume, overwrite, what="study", tracking_uri=uri)
    folder.mkdir(parents=True, exist_ok=True)
    parts = _log_part(folder, fresh=record is None)
    init_ray()
    prepared: dict[str, str] = {}
    for corpus in dict.fromkeys(r.corpus for r in runs):
        # Once per corpus, on the driver, before the trials start (absolute: trials run elsewhere).
        path = (prepared_root / corpus).resolve()
        ensure_prepared(load_experiment(CONFIGS / CORPORA[corpus].config,
                                        [f"data.prepared_dir={path}"]))
        prepared[corpus] = str(path)
    grid = [{**asdict(r), "key": r.key, "overrides": r.overrides(budget)} for r in runs]
    trainable = tune.with_resources(
        tune.with_parameters(study_trial, prepared=prepared, cv=cv,
                             finished=str(folder / FINISHED)), {"cpu": cpu, "gpu": gpu})
    exp_id = tracking.experiment_id(experiment)
    with tracking.parent_run(record["parent_run_id"] if record else None, exp_id,
                             f"reproduce-{name}", {"budget": budget.name}) as parent:
        markers = FinishedMarkers(folder / FINISHED)
        callback = MlflowTrials(uri, exp_id, parent.info.run_id, budget.epochs,
                                budget.patience, metrics=TRIAL_METRICS + FINAL_METRICS,
                                name=lambda trial: trial.config["run"]["key"],
                                limits=lambda trial: budget.epochs_for(
                                    trial.config["run"]["corpus"]),
                                replaying=markers.has)
        if record:
            print(f"resuming the study in {folder} (MLflow run {parent.info.run_id})")
            for line in before_restore(folder, callback):
                print(line)
            tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_errored=True)
        else:
            tracking.log_job_start({"budget": budget.name, "runs": len(runs), "cv": cv or 0,
                               "epochs": budget.epochs, "patience": budget.patience,
                               "seeds": ",".join(map(str, budget.seeds)),
                               **{f"seeds_{c}": ",".join(map(str, v))
                                  for c, v in budget.corpus_seeds.items()}})
            job_folder.write_record(folder, RECORD, parent.info.run_id, uri)
            tuner = tune.Tuner(
                trainable, param_space={"run": tune.grid_search(grid)},
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
                run_config=tune.RunConfig(
                    name=name, storage_path=str(folder.parent), verbose=1,
                    callbacks=[markers, callback],
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS)))
        results = tuner.fit()
        rows, failed = [], []
        for r in results:
            if r.error or not r.metrics or "test_f1" not in r.metrics:
                failed.append(r.config["run"]["key"] if r.config else "?")
                continue
            rows.append({**{k: v for k, v in r.config["run"].items() if k != "overrides"},
                         **{k: r.metrics[k] for k in FINAL_METRICS if k in r.metrics}})
        rows.sort(key=lambda x: x["key"])
        return {"rows": rows, "failed": failed, "parent_run_id": parent.info.run_id,
                "tracking_uri": uri, "experiment_id": exp_id, "folder": str(folder),
                "parts": parts}


def _log_part(folder: Path, fresh: bool) -> list[str]:
    """Note when this part of a study began (a study may be run in parts with ``--resume``);
    return the start times of all its parts so far, the first first."""
    path = folder / PARTS
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    earlier = [] if fresh or not path.exists() else \
        path.read_text(encoding="utf-8").splitlines()
    parts = [*earlier, started]
    write_text_atomically(path, "\n".join(parts) + "\n")
    return parts
