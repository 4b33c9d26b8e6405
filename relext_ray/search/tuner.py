"""Distributed hyper-parameter search: Ray Tune + Optuna (TPE) + ASHA, tracked in MLflow.

``relext-tune --config tune_configs/smoke.yaml`` or, on a cluster,
``ray job submit --address http://<head>:8265 --working-dir . -- python jobs/tune.py --config ...``

MLflow is written by the driver only (a Tune callback): one parent run per search, one child
run per trial, so parallel trials never contend for the tracking store, and a trial that ASHA
stops is marked as such. After the search the best configuration is retrained, scored on test
(with and without the dev-calibrated theta), logged under the parent and registered.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from relext_ray import console
from relext_ray.cluster.connect import init_ray
from relext_ray.config import SearchConfig, TuneExperimentConfig, with_values
from relext_ray.data.prepared import ensure_prepared
from relext_ray.errors import RelextError
from relext_ray.model.vectors import PACKAGED
from relext_ray.search import folder
from relext_ray.search.progress import TrialProgress
from relext_ray.search.results import best_result, plots, ranked, ranked_table, study_trials
from relext_ray.search.resume import (
    FINISHED,
    FinishedMarkers,
    StudySearch,
    before_restore,
    export_study,
)
from relext_ray.search.space import tune_space
from relext_ray.search.trainable import KEEP_CHECKPOINTS, make_trainable
from relext_ray.tracking import runs
from relext_ray.tracking.trials import MlflowTrials

RECORD = "relext_search.json"


def experiment_dir(cfg: TuneExperimentConfig) -> Path:
    """Where Tune keeps the search (trial checkpoints, state), the Optuna study and our record."""
    return Path(cfg.search.storage_path).resolve() / cfg.name


def _sampler(s: SearchConfig) -> optuna.samplers.BaseSampler:
    if s.algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.startup_trials)
    return optuna.samplers.RandomSampler(seed=s.seed)


def _new_tuner(cfg: TuneExperimentConfig, trainable: Any, callbacks: list[Any]) -> tune.Tuner:
    s, (epochs, _) = cfg.search, cfg.schedule
    searcher = StudySearch(metric=s.metric, mode=s.mode, sampler=_sampler(s), study_name=cfg.name)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=epochs,
                               grace_period=s.scheduler.grace_period,
                               reduction_factor=s.scheduler.reduction_factor)
                 if s.scheduler.type == "asha" else None)
    return tune.Tuner(
        trainable,
        param_space=tune_space(s.space),
        tune_config=tune.TuneConfig(
            metric=s.metric, mode=s.mode, num_samples=s.num_samples,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent),
            scheduler=scheduler),
        run_config=tune.RunConfig(
            name=cfg.name, storage_path=str(experiment_dir(cfg).parent), callbacks=callbacks,
            verbose=1 if console.is_verbose() else 0,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS)),
    )


def search(cfg: TuneExperimentConfig, resume: bool = False,
           overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) the search.

    Args:
        cfg: The search: the training config it varies and how.
        resume: Continue the search in ``search.storage_path/<name>`` after its driver died.
        overwrite: Replace an earlier search of the same name and storage path.

    Returns:
        The best configuration, its retrained result and model URI, the MLflow parent run id,
        the trial count and trial-epochs, and the parameter importances.
    """
    s, exp_cfg = cfg.search, cfg.experiment
    epochs, patience = cfg.schedule
    exp_dir = experiment_dir(cfg)
    uri = runs.tracking_uri()
    config = json.loads(cfg.model_dump_json())
    record = folder.start(exp_dir, RECORD, resume, overwrite, what="search", tracking_uri=uri,
                          config=config, normalize=lambda c: json.loads(
                              type(cfg).model_validate(c).model_dump_json()))
    exp_dir.mkdir(parents=True, exist_ok=True)
    init_ray()
    ensure_prepared(exp_cfg)  # once, on the driver, before trials start
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    experiment = exp_cfg.tracking.experiment or f"relext-{exp_cfg.name}"
    exp_id = runs.experiment_id(experiment)
    base = json.loads(exp_cfg.model_dump_json())
    # Trials run in other processes (and nodes): hand them absolute paths.
    base["data"]["prepared_dir"] = str(exp_cfg.prepared_dir.resolve())
    base["data"]["data_dir"] = str(Path(exp_cfg.data.data_dir).resolve())
    vectors = base["model"].get("word_vectors")
    if vectors and vectors not in PACKAGED:
        base["model"]["word_vectors"] = str(Path(vectors).resolve())
    markers = FinishedMarkers(exp_dir / FINISHED)
    trainable = make_trainable(base, s, markers.directory)

    with runs.parent_run(record["parent_run_id"] if record else None, exp_id,
                         f"search-{cfg.name}", {"search": cfg.name}) as parent:
        trials_cb = MlflowTrials(uri, exp_id, parent.info.run_id, epochs, patience,
                                 replaying=markers.has)
        if record:
            print(f"resuming the search in {exp_dir} (MLflow run {parent.info.run_id})")
            for line in before_restore(exp_dir, trials_cb, StudySearch(
                    metric=s.metric, mode=s.mode, sampler=optuna.samplers.RandomSampler(),
                    study_name=cfg.name), s.max_concurrent):
                print(line)
            tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_errored=True,
                                       param_space=tune_space(s.space))
        else:
            runs.log_job_start({f"search.{k}": v for k, v in {
                "num_samples": s.num_samples, "max_concurrent": s.max_concurrent,
                "task": s.task, "algorithm": s.algorithm, "scheduler": s.scheduler.type,
                "metric": s.metric,
                "seed": s.seed,
                "max_failures": s.max_failures, "cpu_per_trial": s.resources_per_trial.cpu,
                "gpu_per_trial": s.resources_per_trial.gpu}.items()},
                config, "search_config.json")
            folder.write_record(exp_dir, RECORD, parent.info.run_id, uri, config)
            # markers first: a run finished in MLflow always has its marker
            progress = TrialProgress(s.num_samples, list(s.space), epochs, patience, s.metric)
            tuner = _new_tuner(cfg, trainable, [markers, trials_cb, progress])
        grid = tuner.fit()
        if grid.num_terminated + grid.num_errors < s.num_samples:  # stopped (Ctrl-C, SIGTERM)
            raise RelextError(
                f"the search stopped after {grid.num_terminated + grid.num_errors} of "
                f"{s.num_samples} trials; continue it with --resume (nothing was retrained or "
                "registered)")
        results = ranked(grid)
        best = best_result(grid, s.metric, s.mode)
        # The study people inspect (optuna-dashboard, optuna.load_study), from Tune's results.
        study = export_study(study_trials(grid, s, epochs, patience),
                             OptunaSearch.convert_search_space(tune_space(s.space)),
                             f"sqlite:///{exp_dir / 'optuna.db'}", cfg.name,
                             "maximize" if s.mode == "max" else "minimize")
        importances: dict[str, float] = {}
        try:
            importances = optuna.importance.get_param_importances(study)
        except Exception as exc:
            print(f"parameter importances not available: {exc}")
        table = ranked_table(results, list(s.space))
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "trials.md").write_text(table + "\n")
            (d / "param_importances.json").write_text(json.dumps(importances, indent=2))
            plots(results, importances, d)
            runs.log_job_outcome(d, {f"best.{k}": v for k, v in best.config.items()},
                                 {"best_trial_dev_f1": float(best.metrics[s.metric])})

        # A tagger search's best values are the tagger's: its final run trains both models.
        final_cfg = with_values(exp_cfg, {**best.config, **(
            {"tagger.enabled": True} if s.task == "tagger" else {})})
        final_cfg = final_cfg.model_copy(update={"tracking": final_cfg.tracking.model_copy(
            update={"register_as": s.register_as or final_cfg.tracking.register_as,
                    "alias": runs.CHAMPION, "experiment": experiment})})
        if record:
            for rid in runs.delete_children(parent.info.run_id, f"best-{cfg.name}"):
                print(f"MLflow run {rid} deleted: the best configuration is trained again")
        result, run_id, model_uri = runs.run_tracked(final_cfg, run_name=f"best-{cfg.name}",
                                                     parent_run_id=parent.info.run_id)
        runs.log_job_outcome(metrics={f"best_{k}": float(v) for k, v in result.metrics().items()})
        print("\n" + table)
        return {"best_config": best.config, "parent_run_id": parent.info.run_id,
                "best_run_id": run_id, "model_uri": model_uri, "trials": len(results),
                "trial_epochs": sum(r["epochs"] for r in results),
                "best_trial_metric": float(best.metrics[s.metric]),
                "result": result, "importances": importances, "ranked": results}
