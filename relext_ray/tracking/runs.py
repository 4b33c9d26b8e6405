"""MLflow: every training run is a run with its config, per-epoch metrics, final scores,
artifacts and a loadable model.

The tracking URI comes from ``MLFLOW_TRACKING_URI``; without it a local SQLite store
``mlruns.db`` in the working directory, so the demo needs no server. Experiments are tagged as
model-training experiments so that the MLflow UI opens them on the training-runs view.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from relext_ray import console
from relext_ray.config import ExperimentConfig, flatten
from relext_ray.errors import RelextError
from relext_ray.locks import exclusive
from relext_ray.model.decision import top_class
from relext_ray.model.vectors import tie_word_dim
from relext_ray.prediction.inputs import default_output
from relext_ray.prediction.job import predict
from relext_ray.training.cv import CVResult, cross_validate
from relext_ray.training.ensemble import EnsembleResult, build_ensemble
from relext_ray.training.fit import EpochCallback
from relext_ray.training.metrics import Scores
from relext_ray.training.progress import RunProgress
from relext_ray.training.run import TrainResult, run, run_with_data

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


# MLflow 3's UI picks its view from this URL parameter (else from the browser's last choice,
# GenAI by default); the experiment tag below covers UIs that read the experiment kind instead.
TRAINING_VIEW = "workflowType=machine_learning"


def ui_link(base_url: str, experiment_id: str) -> str:
    """A link that opens the experiment on the training-runs view of the MLflow UI."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}?{TRAINING_VIEW}"


_OPENED: set[str] = set()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the local store ``mlruns.db`` in the working directory.

    A local SQLite store is opened once per process under a lock: runs started side by side
    on a fresh machine would otherwise both create (migrate) its tables, and one would fail.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlruns.db').resolve()}"
    if uri.startswith("sqlite:///") and uri not in _OPENED:
        db = Path(uri.removeprefix("sqlite:///"))
        with exclusive(db.with_name(db.name + ".lock"),
                       f"another process is opening the MLflow store {db} (the first to open "
                       f"it creates its tables): waiting"):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)  # creates, migrates
        _OPENED.add(uri)
    return uri


def experiment_id(name: str) -> str:
    """The experiment's id, created if missing, and marked as a model-training experiment."""
    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: TRAINING_KIND})
        except mlflow.exceptions.MlflowException:
            exp = client.get_experiment_by_name(name)  # a run started beside us created it
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    return exp.experiment_id


def flat_params(cfg: ExperimentConfig) -> dict[str, str]:
    """``model.use_tag`` → ``True`` etc.: the full config as MLflow params."""
    return {k: json.dumps(v) if isinstance(v, list | tuple) else str(v)
            for k, v in flatten(json.loads(cfg.model_dump_json())).items()}


@contextmanager
def training_run(cfg: ExperimentConfig, run_name: str | None = None,
                 parent_run_id: str | None = None,
                 tags: dict[str, str] | None = None,
                 run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run with the config as params; ``run_id`` continues that run instead (a resumed
    training: params it already has are kept, the epochs go on at their own steps)."""
    cfg = tie_word_dim(cfg)  # log the width trained
    exp = experiment_id(cfg.tracking.experiment or f"relext-{cfg.name}")
    params = flat_params(cfg)
    if run_id is not None:
        try:
            logged = mlflow.MlflowClient().get_run(run_id).data.params
        except mlflow.exceptions.MlflowException as exc:
            print(f"note: MLflow run {run_id} of the saved progress is not in {tracking_uri()} "
                  f"({str(exc).splitlines()[0]}); logging to a new run", file=sys.stderr)
            run_id = None
        else:
            params = {k: v for k, v in params.items() if k not in logged}
    with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else exp,
                          run_name=None if run_id else run_name, parent_run_id=parent_run_id,
                          nested=parent_run_id is not None, tags=tags) as run:
        mlflow.log_params(params)
        if cfg.model.word_vectors is not None:
            mlflow.set_tags(vectors_origin(cfg.model.word_vectors))
        yield run


def vectors_origin(source: str) -> dict[str, str]:
    """Where a run's pretrained word vectors came from: the file and its SHA-256."""
    from relext_ray.model.vectors import vectors_file

    path = vectors_file(source)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"word_vectors.source": source, "word_vectors.file": str(path.resolve()),
            "word_vectors.sha256": digest.hexdigest()}


def epoch_logger() -> EpochCallback:
    """A training callback that logs each epoch's metrics to the active run."""

    def log(epoch: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if k != "epoch"}, step=epoch)

    return log


def _confusion_png(s: Scores, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(s.confusion)
    rows = [*labels, "(unknown)"] if m[-1].sum() else labels
    m = m[: len(rows)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(labels), 1 + 0.5 * len(rows)))
    ax.imshow(np.log1p(m), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pr_curve_png(gold: np.ndarray, matrix: np.ndarray, path: Path, missed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = matrix.max(axis=1)
    correct = top_class(matrix)[1] == gold
    order = np.argsort(-top, kind="stable")
    tp = np.cumsum(correct[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / max(int(np.sum(gold != 0)) + missed, 1)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(recall, precision)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("test precision-recall as theta varies")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log_scores(name: str, s: Scores, labels: list[str], directory: Path) -> None:
    """Per-class table, confusion matrix (JSON and PNG) and the error breakdown."""
    (directory / f"{name}_scores.json").write_text(json.dumps(s.to_dict(), indent=2))
    lines = ["| class | P | R | F1 | support |", "|---|---:|---:|---:|---:|"]
    for c, v in s.per_class.items():
        lines.append(f"| {c} | {100 * v['precision']:.2f} | {100 * v['recall']:.2f} | "
                     f"{100 * v['f1']:.2f} | {v['support']} |")
    (directory / f"{name}_per_class.md").write_text("\n".join(lines) + "\n")
    _confusion_png(s, labels, directory / f"{name}_confusion.png")
    mlflow.log_metrics({f"{name}_error_{k}": v for k, v in s.error_breakdown.items()})


EXAMPLE_RECORD = {"id": "example:0", "tokens": ["Anna", "Berg", "works", "for", "Acme", "."],
                  "entities": [{"start": 0, "end": 2, "type": "Peop"},
                               {"start": 4, "end": 5, "type": "Org"}]}


@contextmanager
def mlflow_notices_off() -> Iterator[None]:
    """Hide the notices MLflow prints itself while registering a model ("Successfully
    registered model ...", "Created version ..."), unless verbose; its errors still raise."""
    from mlflow.utils import logging_utils

    stream = logging_utils.MLFLOW_LOGGING_STREAM
    before = stream.enabled
    stream.enabled = before and console.is_verbose()
    try:
        yield
    finally:
        stream.enabled = before


CHAMPION = "champion"  # the alias a search moves to its best model; predict's default model


def log_model(checkpoint: Path, register_as: str | None = None, alias: str | None = None) -> str:
    """Log the checkpoint as a pyfunc model; register it and move ``alias`` to it if asked.

    Returns:
        The model's URI: ``models:/<name>@<alias>``, ``models:/<name>/<version>`` for a model
        registered without an alias, else the logged model's own URI.
    """
    from relext_ray.tracking import pyfunc

    # The example gives the signature its ``theta`` parameter, whose default must be the
    # model's own threshold (MLflow fills defaults in).
    theta = float(json.loads((checkpoint / "meta.json").read_text(encoding="utf-8"))["theta"])
    with mlflow_notices_off():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=pyfunc.__file__,
            artifacts={"checkpoint": str(checkpoint)}, registered_model_name=register_as,
            input_example=([EXAMPLE_RECORD], {"theta": theta}))
    if register_as is None or info.registered_model_version is None:
        return info.model_uri
    if alias is None:
        return f"models:/{register_as}/{info.registered_model_version}"
    mlflow.MlflowClient().set_registered_model_alias(register_as, alias,
                                                     str(info.registered_model_version))
    return f"models:/{register_as}@{alias}"


def champion() -> str:
    """The model ``predict`` uses when none is named: of the registered models that carry the
    champion alias, the one updated last (``models:/<name>@champion``)."""
    client = mlflow.MlflowClient(tracking_uri())
    found, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        found += [m for m in page if CHAMPION in (m.aliases or {})]
        token = page.token
        if not token:
            break
    if not found:
        raise RelextError(
            f"no model named and none registered with the alias @{CHAMPION} in {tracking_uri()}: "
            "run `make demo` or a search (relext-tune --config ...), which registers its best "
            "model as models:/<name>@champion, or pass --model (a checkpoint directory, runs:/ "
            "or models:/ URI)")
    best = max(found, key=lambda m: m.last_updated_timestamp or 0)
    return f"models:/{best.name}@{CHAMPION}"


def log_result(cfg: ExperimentConfig, result: Any, data: Any,
               test_matrix: np.ndarray | None) -> str | None:
    """Final metrics, artifacts and the model of a finished ``train.run``."""
    mlflow.log_metrics({k: float(v) for k, v in result.metrics().items()},
                       step=result.epochs_run)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "stats.json").write_text(json.dumps(data.stats, indent=2))
        if result.checkpoint is not None:
            (d / "config.yaml").write_text((result.checkpoint / "config.yaml").read_text())
        for name in ("dev", "test", "test_calibrated"):
            s = getattr(result, name)
            if s is not None:
                log_scores(name, s, data.labels, d)
        if test_matrix is not None and "test" in data.splits:
            _pr_curve_png(data.splits["test"].labels, test_matrix, d / "test_pr_curve.png",
                          data.missed_positives("test"))
        mlflow.log_artifacts(str(d))
    if result.checkpoint is None:
        return None
    return log_model(result.checkpoint, cfg.tracking.register_as, cfg.tracking.alias)


def parent_run(existing: str | None, experiment: str, run_name: str,
               tags: dict[str, str]) -> mlflow.ActiveRun:
    """A job's parent run: a new one, or the one a resumed job continues (its ``resumed`` tag
    counts the resumes)."""
    if existing is None:
        return mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags)
    active = mlflow.start_run(run_id=existing)
    mlflow.set_tag("resumed", str(int(active.data.tags.get("resumed", "0")) + 1))
    return active


def log_job_start(params: dict[str, Any], config: dict[str, Any] | None = None,
                  config_file: str = "config.json") -> None:
    """A job's settings on its (active) parent run: params, and its whole config as a file."""
    mlflow.log_params(params)
    if config is not None:
        mlflow.log_dict(config, config_file)


def log_job_outcome(artifacts: Path | None = None, tags: dict[str, Any] | None = None,
                    metrics: dict[str, float] | None = None) -> None:
    """A job's results on its (active) parent run: files, tags and metrics. Tags, not params:
    a job resumed after an interruption reports its outcome again, and MLflow never lets a
    param change."""
    if artifacts is not None:
        mlflow.log_artifacts(str(artifacts))
    if tags:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})
    if metrics:
        mlflow.log_metrics(metrics)


def delete_children(parent_run_id: str, run_name: str) -> list[str]:
    """Delete the parent's child runs of that name (a resumed job redoes work whose run its
    dead driver left behind, and keeps one run for it); returns their ids."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    found = client.search_runs(
        [parent.info.experiment_id], max_results=1000,
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
                      f"attributes.run_name = '{run_name}'")
    for child in found:
        client.delete_run(child.info.run_id)
    return [r.info.run_id for r in found]


def run_tracked(cfg: ExperimentConfig, callback: EpochCallback | None = None,
                run_name: str | None = None, parent_run_id: str | None = None,
                progress: RunProgress | None = None
                ) -> tuple[TrainResult, str | None, str | None]:
    """``training.run`` inside an MLflow run: (result, run id, model URI); an untracked run if
    tracking is off in the config. With ``progress`` (already started) the run keeps its state
    on disk each epoch, continues the saved run and its MLflow run, and clears it at the end."""
    if not cfg.tracking.enabled:
        result = run(cfg, callback, progress=progress)
        if progress is not None:
            progress.clear()
        return result, None, None
    run_id = progress.mlflow_run_id if progress is not None else None
    with training_run(cfg, run_name=run_name, parent_run_id=parent_run_id,
                      run_id=run_id) as active:
        if progress is not None and run_id != active.info.run_id:
            progress.set_mlflow_run_id(active.info.run_id)
        log_epoch = epoch_logger()

        def both(epoch: int, metrics: dict[str, float]) -> None:
            log_epoch(epoch, metrics)
            if callback is not None:
                callback(epoch, metrics)

        result, data = run_with_data(cfg, both, save=True, progress=progress)
        model_uri = log_result(cfg, result, data, result.test_matrix)
        if progress is not None:
            progress.clear()
        return result, active.info.run_id, model_uri


def ensemble_tracked(checkpoints: list[str | Path], out: Path, track: bool = True
                     ) -> tuple[EnsembleResult, str | None, str | None]:
    """``training.ensemble.build_ensemble`` over models named by path or MLflow URI, logged as
    an MLflow run of the members' experiment (sources, thetas, scores and the ensemble's model)
    unless ``track`` is off: (result, run id, model URI)."""
    local = [resolve_model(c) for c in checkpoints]
    result = build_ensemble(local, out)
    if not track:
        return result, None, None
    cfg, labels = result.config, result.labels
    exp = experiment_id(cfg.tracking.experiment or f"relext-{cfg.name}")
    with mlflow.start_run(experiment_id=exp, run_name=f"ensemble-of-{len(local)}",
                          tags={"job": "ensemble"}) as run:
        mlflow.log_params({"members": json.dumps([str(c) for c in checkpoints]),
                           "member_seeds": json.dumps([m.seed for m in result.members]),
                           "member_thetas": json.dumps([round(m.theta, 6)
                                                        for m in result.members])})
        mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
        mlflow.log_metrics({f"member{i + 1}_test_f1": m.test.f1
                            for i, m in enumerate(result.members)})
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            for name in ("dev", "test"):
                log_scores(name, getattr(result, name), labels, d)
            mlflow.log_artifacts(str(d))
        uri = log_model(result.checkpoint, cfg.tracking.register_as, cfg.tracking.alias)
        return result, run.info.run_id, uri


def cv_tracked(cfg: ExperimentConfig, k: int, callback: EpochCallback | None = None) -> CVResult:
    """Cross-validation as one MLflow run (a step per fold); untracked if tracking is off."""
    if not cfg.tracking.enabled:
        return cross_validate(cfg, k, callback)
    with training_run(cfg, run_name=f"{cfg.name}-cv{k}", tags={"cv_folds": str(k)}):
        r = cross_validate(cfg, k, callback)
        for i, row in enumerate(r.folds):
            mlflow.log_metrics({f"fold_{key}": v for key, v in row.items()}, step=i)
        for key, (mean, sd) in r.summary().items():
            mlflow.log_metrics({f"cv_{key}_mean": mean, f"cv_{key}_sd": sd})
    return r


def resolve_model(uri: str | Path) -> Path:
    """A local checkpoint directory for a path, ``runs:/`` or ``models:/`` URI."""
    text = str(uri)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        mlflow.set_tracking_uri(tracking_uri())
        try:
            # Loading resolves every URI kind (run artifacts, logged and registered models).
            local = Path(mlflow.pyfunc.load_model(text).unwrap_python_model().checkpoint_dir)
        except Exception as exc:
            raise RelextError(f"cannot load model {text} from {tracking_uri()}: {exc}") from exc
    else:
        local = Path(text)
        if not local.exists():
            raise RelextError(f"--model not found: {local}")
    for candidate in (local, local / "artifacts" / "checkpoint", local / "checkpoint"):
        if (candidate / "model.pt").exists():
            return candidate
    raise RelextError(f"{text} is not a relext_ray model: no model.pt in {local} or its "
                      "artifacts/checkpoint")


def log_prediction(summary: dict[str, Any], out: Path, experiment: str) -> str:
    """A batch prediction's run: its parameters, counts, scores and ``summary.json``."""
    exp = experiment_id(experiment)
    with mlflow.start_run(experiment_id=exp, run_name=f"predict-{Path(summary['input']).name}",
                          tags={"job": "predict"}) as run:
        mlflow.log_params({k: summary[k] for k in (
            "model", "input", "output", "output_format", "theta", "replicas",
            "cpus_per_replica", "gpus_per_replica")})
        metrics = {k: float(v) for k, v in summary.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)
                   and k not in ("theta", "replicas", "cpus_per_replica", "gpus_per_replica")}
        metrics.update({f"predicted_{k}": float(v)
                        for k, v in summary["relations_predicted"].items()})
        if summary["metrics"]:
            metrics.update({f"gold_{k}": float(summary["metrics"][k])
                            for k in ("precision", "recall", "f1")})
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(out / "summary.json"))
        return run.info.run_id


def predict_tracked(input_spec: str, model: str | None, output: str | Path | None, *,
                    track: bool = True, experiment: str = "relext-predict",
                    **options: Any) -> dict[str, Any]:
    """Batch prediction with a model named by path, ``runs:/`` or ``models:/`` URI (default:
    the champion, ``champion()``), logged as an MLflow run (``track``); the output defaults to
    a new folder under ``predictions/`` named after the input. ``options`` are those of
    ``prediction.job.predict``."""
    model = model or champion()
    output = output or default_output(input_spec)
    summary = predict(input_spec, resolve_model(model), output, model_name=str(model), **options)
    if track:
        summary["mlflow_run_id"] = log_prediction(summary, Path(summary["output"]), experiment)
    return summary
