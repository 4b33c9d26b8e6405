"""One training run: the function behind the CLI, cross-validation and every Ray Tune trial.

``python -m relext_ray.train --config tune_configs/conll04.yaml [--set key=value ...]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from relext_ray.config import ExperimentConfig, TrainConfig, load_experiment
from relext_ray.errors import RelextError, cli_exit
from relext_ray.instances import TypeFilter
from relext_ray.losses import classification_loss, decision_scores, identification_loss
from relext_ray.metrics import Scores, best_threshold, score
from relext_ray.models.model import RelationModel
from relext_ray.subsample import counts, short_sentences, training_index
from relext_ray.tensors import SplitArrays, iterate, load_split
from relext_ray.vocab import Vocabularies

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class PreparedData:
    """A prepared corpus in memory: vocabularies, type filter, statistics and split arrays."""

    path: Path
    vocabs: Vocabularies
    type_filter: TypeFilter
    stats: dict[str, dict[str, int]]
    max_distance: int
    splits: dict[str, SplitArrays] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.vocabs.labels.items)

    def missed_positives(self, split: str) -> int:
        """Positives the type filter removed: false negatives of any model."""
        return self.stats.get(split, {}).get("filtered_out_positives", 0)

    @classmethod
    def load(cls, path: Path, splits: tuple[str, ...] = ("train", "dev", "test")) -> PreparedData:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        stats = json.loads((path / "stats.json").read_text(encoding="utf-8"))
        data = cls(path, Vocabularies.load(path / "vocab"), TypeFilter.load(path / "type_filter.json"),
                   stats, int(meta["config"]["max_distance"]))
        for s in splits:
            if s in stats and (path / s).is_dir():
                data.splits[s] = load_split(path, s)
        return data


def capped(a: SplitArrays, max_length: int | None) -> SplitArrays:
    """Only the instances of sentences of at most ``max_length`` tokens (all without a cap)."""
    return a if max_length is None else a.subset(short_sentences(a.lengths, max_length))


def training_subset(train: SplitArrays, t: TrainConfig) -> SplitArrays:
    """The training instances a run sees: ``train.documents`` and ``train.neg_ratio``."""
    if t.documents == 1 and t.neg_ratio is None:
        return train
    return train.subset(training_index(train.labels, train.sentence_ids, t.documents,
                                       t.neg_ratio, t.seed))


def ensure_prepared(cfg: ExperimentConfig) -> Path:
    """Prepare the corpus with Ray Data unless a matching preparation exists."""
    out = cfg.prepared_dir
    meta = out / "meta.json"
    if meta.exists():
        have = json.loads(meta.read_text(encoding="utf-8"))["config"]
        want = cfg.data.prepare_config(out)
        for key in ("corpus", "mode", "max_distance", "min_freq", "lowercase"):
            if have[key] != getattr(want, key):
                raise RelextError(f"{out} was prepared with {key}={have[key]!r}, the config asks "
                                  f"for {getattr(want, key)!r}: remove it or set data.prepared_dir")
        return out
    from relext_ray.data import prepare

    prepare(cfg.data.prepare_config(out))
    return out


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise RelextError(f"train.device={spec!r} but no CUDA device is available")
    return torch.device(spec)


def configure_threads(n: int | None) -> int:
    """Torch CPU threads: as configured, else the CPUs Ray gave this worker, else all cores.

    Ray sets OMP_NUM_THREADS=1 in its workers; without this a trial would use one thread.
    """
    if n is None:
        try:
            import ray

            if ray.is_initialized():
                n = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)) or None
        except Exception:
            n = None
    n = n or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_model(cfg: ExperimentConfig, data: PreparedData) -> RelationModel:
    return RelationModel(cfg.model, n_tokens=len(data.vocabs.tokens),
                         n_positions=2 * data.max_distance + 2, n_tags=len(data.vocabs.tags),
                         n_classes=len(data.labels) - 1)


@torch.inference_mode()
def decision_matrix(model: RelationModel, cfg: ExperimentConfig, arrays: SplitArrays,
                    max_distance: int, device: torch.device) -> np.ndarray:
    """[N, C] scores the threshold rule reads, in the order of ``arrays``."""
    model.eval()
    out = np.zeros((len(arrays), model.classes.out_features), dtype=np.float32)
    for index, batch in iterate(arrays, cfg.train.eval_batch_size, max_distance):
        o = model(batch.to(device))
        out[index] = decision_scores(cfg.loss.variant, o["scores"], o["other"]).float().cpu().numpy()
    return out


def scores_at(matrix: np.ndarray, arrays: SplitArrays, theta: float, labels: list[str],
              missed: int) -> Scores:
    top = matrix.max(axis=1) if len(matrix) else np.zeros(0)
    pred = np.where(top >= theta, matrix.argmax(axis=1) + 1, 0) if len(matrix) else top
    return score(arrays.labels, pred.astype(np.int64), labels, missed)


@dataclass
class FitResult:
    model: RelationModel
    best_epoch: int
    dev: Scores
    history: list[dict[str, float]]
    seconds_per_epoch: float


@dataclass
class FitState:
    """Everything needed to continue a fit after the process died: the weights and optimizer
    after ``epoch``, the best weights so far, and the random generators' states."""

    epoch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    best_f1: float
    best_epoch: int
    best_model: dict[str, Any] | None
    best_dev: Scores | None
    history: list[dict[str, float]]
    epoch_seconds: list[float]
    numpy_rng: dict[str, Any]
    torch_rng: torch.Tensor

    def save(self, path: Path) -> None:
        torch.save(self.__dict__, path)

    @classmethod
    def load(cls, path: Path) -> FitState:
        # Our own file, written by ``save``: it holds Python objects besides tensors.
        return cls(**torch.load(path, map_location="cpu", weights_only=False))


StateCallback = Callable[[dict[str, float], FitState], None]


def fit(cfg: ExperimentConfig, data: PreparedData, train: SplitArrays, dev: SplitArrays,
        device: torch.device, callback: EpochCallback | None = None,
        dev_missed: int = 0, resume: FitState | None = None,
        on_state: StateCallback | None = None) -> FitResult:
    """Train with early stopping on dev F1 (at the configured theta); keep the best weights.

    ``on_state`` receives each epoch's metrics with a resumable state; ``resume`` continues
    from such a state exactly as if the run had never stopped.
    """
    seed_everything(cfg.train.seed)
    model = build_model(cfg, data).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.train.lr,
                                    alpha=cfg.train.rmsprop_alpha)
    rng = np.random.default_rng(cfg.train.seed)
    lc = cfg.loss
    best_f1, best_epoch, best_state, best_dev = -1.0, 0, None, None
    history: list[dict[str, float]] = []
    epoch_seconds: list[float] = []
    first = 1
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        rng.bit_generator.state = resume.numpy_rng
        torch.set_rng_state(resume.torch_rng)
        best_f1, best_epoch = resume.best_f1, resume.best_epoch
        best_state, best_dev = resume.best_model, resume.best_dev
        history, epoch_seconds = list(resume.history), list(resume.epoch_seconds)
        first = resume.epoch + 1
        if resume.epoch - best_epoch >= cfg.train.patience:
            first = cfg.train.epochs + 1  # it had stopped early
    for epoch in range(first, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        sums = {"loss": 0.0, "loss_class": 0.0, "loss_id": 0.0}
        n = 0
        for _, batch in iterate(train, cfg.train.batch_size, data.max_distance, rng):
            b = batch.to(device)
            o = model(b)
            l_class = classification_loss(lc.variant, o["scores"], o["other"], b.labels,
                                          lc.m_pos, lc.m_neg, lc.gamma)
            loss = lc.alpha * l_class
            l_id = identification_loss(o["id_logits"], b.labels) if o["id_logits"] is not None \
                else None
            if l_id is not None:
                loss = loss + lc.beta * l_id
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            k = len(b.labels)
            n += k
            sums["loss"] += loss.item() * k
            sums["loss_class"] += l_class.item() * k
            sums["loss_id"] += (l_id.item() if l_id is not None else 0.0) * k
        epoch_seconds.append(time.perf_counter() - t0)
        matrix = decision_matrix(model, cfg, dev, data.max_distance, device)
        dev_scores = scores_at(matrix, dev, lc.theta, data.labels, dev_missed)
        if dev_scores.f1 > best_f1:
            best_f1, best_epoch, best_dev = dev_scores.f1, epoch, dev_scores
            best_state = copy.deepcopy(model.state_dict())
        metrics = {k: v / max(n, 1) for k, v in sums.items()}
        metrics.update({f"dev_{k}": v for k, v in dev_scores.summary().items()})
        metrics.update(epoch=epoch, best_dev_f1=best_f1, best_epoch=best_epoch,
                       epoch_seconds=epoch_seconds[-1])
        history.append(metrics)
        if callback is not None:
            callback(epoch, metrics)
        if on_state is not None:
            on_state(metrics, FitState(epoch, model.state_dict(), optimizer.state_dict(), best_f1,
                                       best_epoch, best_state, best_dev, history, epoch_seconds,
                                       rng.bit_generator.state, torch.get_rng_state()))
        if epoch - best_epoch >= cfg.train.patience:
            break
    if best_state is None or best_dev is None:
        raise RelextError("training ran no epoch: train.epochs must be at least 1")
    model.load_state_dict(best_state)
    return FitResult(model, best_epoch, best_dev, history,
                     float(np.mean(epoch_seconds)) if epoch_seconds else 0.0)


@dataclass
class TrainResult:
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    theta: float
    dev: Scores
    test: Scores | None
    calibrated_theta: float | None = None
    dev_calibrated: Scores | None = None
    test_calibrated: Scores | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    test_matrix: np.ndarray | None = field(default=None, repr=False)
    train_counts: dict[str, float] = field(default_factory=dict)  # also the test counts

    def metrics(self) -> dict[str, float]:
        """Flat final metrics, as logged to MLflow and printed."""
        out: dict[str, float] = {"best_epoch": self.best_epoch,
                                 "seconds_per_epoch": self.seconds_per_epoch}
        for attr, name in (("dev", "best_dev"), ("test", "test"),
                           ("dev_calibrated", "dev_calibrated"),
                           ("test_calibrated", "test_calibrated")):
            s = getattr(self, attr)
            if s is not None:
                out.update({f"{name}_{k}": v for k, v in s.summary().items()})
        if self.calibrated_theta is not None:
            out["calibrated_theta"] = self.calibrated_theta
        out.update(self.train_counts)
        return out


def save_checkpoint(directory: Path, model: RelationModel, cfg: ExperimentConfig,
                    data: PreparedData, calibrated_theta: float | None) -> Path:
    """Everything ``predict`` needs without the training data: weights, config, vocabularies,
    type filter, labels and thresholds."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / "model.pt")
    (directory / "config.yaml").write_text(
        yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False), encoding="utf-8")
    if (directory / "vocab").exists():
        shutil.rmtree(directory / "vocab")
    shutil.copytree(data.path / "vocab", directory / "vocab")
    shutil.copy2(data.path / "type_filter.json", directory / "type_filter.json")
    meta = {"labels": data.labels, "max_distance": data.max_distance, "mode": cfg.data.mode,
            "theta": cfg.loss.theta, "calibrated_theta": calibrated_theta,
            "loss_variant": cfg.loss.variant}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return directory


@dataclass
class Checkpoint:
    model: RelationModel
    config: ExperimentConfig
    vocabs: Vocabularies
    type_filter: TypeFilter
    meta: dict[str, Any]


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    d = Path(directory)
    if not (d / "model.pt").exists():
        raise RelextError(f"not a relext_ray checkpoint (no model.pt): {d}")
    cfg = ExperimentConfig.model_validate(yaml.safe_load((d / "config.yaml").read_text("utf-8")))
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    vocabs = Vocabularies.load(d / "vocab")
    model = RelationModel(cfg.model, len(vocabs.tokens), 2 * meta["max_distance"] + 2,
                          len(vocabs.tags), len(meta["labels"]) - 1)
    model.load_state_dict(torch.load(d / "model.pt", map_location=device, weights_only=True))
    model.to(device).eval()
    return Checkpoint(model, cfg, vocabs, TypeFilter.load(d / "type_filter.json"), meta)


def run(cfg: ExperimentConfig, callback: EpochCallback | None = None,
        save: bool = True, resume: FitState | None = None,
        on_state: StateCallback | None = None) -> TrainResult:
    """Prepare if needed, train on train, select on dev, score test; save a checkpoint."""
    return _run(cfg, callback, save, resume, on_state)[0]


def _run(cfg: ExperimentConfig, callback: EpochCallback | None, save: bool,
         resume: FitState | None = None,
         on_state: StateCallback | None = None) -> tuple[TrainResult, PreparedData]:
    data = PreparedData.load(ensure_prepared(cfg))
    for split in ("train", "dev"):
        if split not in data.splits:
            raise RelextError(f"{data.path} has no {split} split")
    device = resolve_device(cfg.train.device)
    configure_threads(cfg.train.num_threads)
    t = cfg.train
    data.splits = {name: capped(a, t.max_length) for name, a in data.splits.items()}
    train = training_subset(data.splits["train"], t)
    fitted = fit(cfg, data, train, data.splits["dev"], device, callback,
                 data.missed_positives("dev"), resume, on_state)
    result = evaluate_fitted(cfg, data, fitted, device, save)
    result.train_counts = counts(train.labels)
    if "test" in data.splits:
        result.train_counts.update(counts(data.splits["test"].labels, "test"))
    return result, data


def run_tracked(cfg: ExperimentConfig, callback: EpochCallback | None = None,
                run_name: str | None = None, parent_run_id: str | None = None
                ) -> tuple[TrainResult, str | None, str | None]:
    """``run`` inside an MLflow run: (result, run id, model URI); plain ``run`` if tracking is
    off in the config."""
    if not cfg.tracking.enabled:
        return run(cfg, callback), None, None
    from relext_ray import tracking

    with tracking.training_run(cfg, run_name=run_name, parent_run_id=parent_run_id) as active:
        log_epoch = tracking.epoch_logger()

        def both(epoch: int, metrics: dict[str, float]) -> None:
            log_epoch(epoch, metrics)
            if callback is not None:
                callback(epoch, metrics)

        result, data = _run(cfg, both, save=True)
        model_uri = tracking.log_result(cfg, result, data, result.test_matrix)
        return result, active.info.run_id, model_uri


def run_cv(cfg: ExperimentConfig, k: int, callback: EpochCallback | None = None) -> None:
    """Cross-validate and print mean ± sd; tracked as one MLflow run (a step per fold)."""
    from relext_ray.cv import cross_validate, format_cv

    if not cfg.tracking.enabled:
        print(format_cv(cross_validate(cfg, k, callback), k))
        return
    import mlflow

    from relext_ray import tracking

    with tracking.training_run(cfg, run_name=f"{cfg.name}-cv{k}", tags={"cv_folds": str(k)}):
        r = cross_validate(cfg, k, callback)
        for i, row in enumerate(r.folds):
            mlflow.log_metrics({f"fold_{key}": v for key, v in row.items()}, step=i)
        for key, (mean, sd) in r.summary().items():
            mlflow.log_metrics({f"cv_{key}_mean": mean, f"cv_{key}_sd": sd})
    print(format_cv(r, k))


def evaluate_fitted(cfg: ExperimentConfig, data: PreparedData, fitted: FitResult,
                    device: torch.device, save: bool) -> TrainResult:
    dev = data.splits["dev"]
    labels = data.labels
    result = TrainResult(fitted.best_epoch, len(fitted.history), fitted.seconds_per_epoch,
                         cfg.loss.theta, fitted.dev, None, history=fitted.history)
    dev_matrix = decision_matrix(fitted.model, cfg, dev, data.max_distance, device)
    if cfg.train.calibrate_theta:
        result.calibrated_theta, result.dev_calibrated = best_threshold(
            dev.labels, dev_matrix, labels, data.missed_positives("dev"))
    test = data.splits.get("test")
    if test is not None:
        m = decision_matrix(fitted.model, cfg, test, data.max_distance, device)
        missed = data.missed_positives("test")
        result.test = scores_at(m, test, cfg.loss.theta, labels, missed)
        result.test_matrix = m
        if result.calibrated_theta is not None:
            result.test_calibrated = scores_at(m, test, result.calibrated_theta, labels, missed)
    if save:
        result.checkpoint = save_checkpoint(cfg.checkpoint_dir, fitted.model, cfg, data,
                                            result.calibrated_theta)
    return result


def format_result(r: TrainResult) -> str:
    lines = [f"best epoch {r.best_epoch} of {r.epochs_run}, {r.seconds_per_epoch:.2f} s/epoch"]
    rows = [("dev", r.theta, r.dev), ("test", r.theta, r.test),
            ("dev (calibrated)", r.calibrated_theta, r.dev_calibrated),
            ("test (calibrated)", r.calibrated_theta, r.test_calibrated)]
    lines.append(f"{'':18} {'theta':>7} {'P':>6} {'R':>6} {'F1':>6}")
    for name, theta, s in rows:
        if s is not None and theta is not None:
            lines.append(f"{name:18} {theta:7.3f} {100 * s.precision:6.2f} {100 * s.recall:6.2f} "
                         f"{100 * s.f1:6.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML experiment config (tune_configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.use_tag=false (repeatable)")
    p.add_argument("--cv", type=int, default=None, metavar="K",
                   help="k-fold cross-validation over train+dev instead of one run")
    args = p.parse_args(argv)

    def body() -> None:
        cfg = load_experiment(args.config, args.overrides)

        def show(epoch: int, m: dict[str, float]) -> None:
            print(f"epoch {epoch:3d}  loss {m['loss']:.4f}  dev P/R/F1 "
                  f"{100 * m['dev_precision']:.2f}/{100 * m['dev_recall']:.2f}/"
                  f"{100 * m['dev_f1']:.2f}  {m['epoch_seconds']:.1f}s", flush=True)

        if args.cv:
            run_cv(cfg, args.cv, show)
            return
        result, run_id, model_uri = run_tracked(cfg, callback=show)
        print(format_result(result))
        print(f"checkpoint: {result.checkpoint}")
        if run_id:
            from relext_ray.tracking import tracking_uri

            print(f"MLflow run {run_id} in {tracking_uri()}; model: {model_uri}")

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
