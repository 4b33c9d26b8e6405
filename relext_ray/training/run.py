"""One training run: the function behind the CLI, cross-validation and every Ray Tune trial.

``python -m relext_ray.train --config tune_configs/conll04.yaml [--set key=value ...]``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from relext_ray.config import ExperimentConfig
from relext_ray.data.arrays import SplitArrays
from relext_ray.data.prepared import PreparedData, capped, ensure_prepared, training_subset
from relext_ray.data.subsample import counts
from relext_ray.errors import RelextError
from relext_ray.model.vectors import tie_word_dim
from relext_ray.training.checkpoint import Tagger, save_checkpoint
from relext_ray.training.device import configure_threads, resolve_device
from relext_ray.training.evaluate import decision_matrix, scores_at
from relext_ray.training.fit import EpochCallback, FitResult, FitState, StateCallback, fit
from relext_ray.training.metrics import Scores, annotated_pairs, best_threshold, macro_f1
from relext_ray.training.progress import RunProgress
from relext_ray.training.tagging import run_tagger


@dataclass
class TrainResult:
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    theta: float
    dev: Scores | None  # None: dev was training data (train.fit_on train+dev)
    test: Scores | None
    calibrated_theta: float | None = None
    dev_calibrated: Scores | None = None
    test_calibrated: Scores | None = None
    # classification of the annotated test pairs only (metrics.annotated_pairs): another task
    test_annotated: Scores | None = None
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
        if self.test_annotated is not None:
            out["test_annotated_f1"] = self.test_annotated.f1
            out["test_annotated_macro_f1"] = macro_f1(self.test_annotated)
        out.update(self.train_counts)
        return out


def run(cfg: ExperimentConfig, callback: EpochCallback | None = None,
        save: bool = True, resume: FitState | None = None,
        on_state: StateCallback | None = None,
        progress: RunProgress | None = None) -> TrainResult:
    """Prepare if needed, train on train, select on dev, score test; save a checkpoint (with
    ``train.fit_on: train+dev``: train on both for ``train.epochs``, score test).

    Args:
        cfg: The run's config.
        callback: Called with each epoch's number and metrics (relation fit, then tagger).
        save: Write the checkpoint to ``cfg.checkpoint_dir``.
        resume: A relation fit's state to continue from (a search trial restored).
        on_state: Called with the relation fit's resumable state after each epoch.
        progress: Keep both fits' states on disk after each epoch and continue from what
            is there (``relext-train --resume``); replaces ``resume`` and ``on_state``.

    Returns:
        The run's scores, history and checkpoint path.
    """
    return run_with_data(cfg, callback, save, resume, on_state, progress)[0]


def run_with_data(cfg: ExperimentConfig, callback: EpochCallback | None = None,
                  save: bool = True, resume: FitState | None = None,
                  on_state: StateCallback | None = None,
                  progress: RunProgress | None = None) -> tuple[TrainResult, PreparedData]:
    """``run``, and the prepared data it used (tracking logs its statistics)."""
    tagger_resume = tagger_on_state = None
    if progress is not None:
        resume, on_state = progress.state("relation"), progress.saver("relation")
        tagger_resume, tagger_on_state = progress.state("tagger"), progress.saver("tagger")
    cfg = tie_word_dim(cfg)
    data = PreparedData.load(ensure_prepared(cfg))
    for split in ("train", "dev"):
        if split not in data.splits:
            raise RelextError(f"{data.path} has no {split} split")
    device = resolve_device(cfg.train.device)
    configure_threads(cfg.train.num_threads)
    t = cfg.train
    data.splits = {name: capped(a, t.max_length) for name, a in data.splits.items()}
    dev: SplitArrays | None = data.splits["dev"]
    if t.fit_on == "train+dev":
        train, dev = SplitArrays.concat([data.splits["train"], data.splits["dev"]]), None
    else:
        train = data.splits["train"]
    fitted = fit(cfg, data, train, dev, device, callback, data.missed_positives("dev"), resume,
                 on_state)
    tagger, tagger_metrics = None, {}
    if cfg.tagger.enabled:
        tagged, tagger_metrics = run_tagger(cfg, data.vocabs.tokens, data.vocabs.tags, device,
                                            callback, tagger_resume, tagger_on_state)
        tagger = Tagger(tagged.tagger, tagged.vocab)
    result = evaluate_fitted(cfg, data, fitted, device, save, tagger)
    result.train_counts = {**counts(training_subset(train, t).labels), **fitted.vectors,
                           **tagger_metrics}
    if "test" in data.splits:
        result.train_counts.update(counts(data.splits["test"].labels, "test"))
    return result, data


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
    if r.test_annotated is not None:
        lines.append(f"test, annotated pairs only (relation classification, another task): "
                     f"micro F1 {100 * r.test_annotated.f1:.2f}, "
                     f"macro F1 {100 * macro_f1(r.test_annotated):.2f}")
    c = r.train_counts
    if "tagger_best_dev_f1" in c:
        test = (f", test P/R/F1 {100 * c['tagger_test_precision']:.2f}/"
                f"{100 * c['tagger_test_recall']:.2f}/{100 * c['tagger_test_f1']:.2f}"
                if "tagger_test_f1" in c else "")
        lines.append(f"entity tagger: best epoch {int(c['tagger_best_epoch'])}, dev F1 "
                     f"{100 * c['tagger_best_dev_f1']:.2f}{test} (strict: span and type)")
    return "\n".join(lines)


def evaluate_fitted(cfg: ExperimentConfig, data: PreparedData, fitted: FitResult,
                    device: torch.device, save: bool, tagger: Tagger | None = None
                    ) -> TrainResult:
    dev = data.splits["dev"]
    labels = data.labels
    result = TrainResult(fitted.best_epoch, len(fitted.history), fitted.seconds_per_epoch,
                         cfg.loss.theta, fitted.dev, None, history=fitted.history)
    if cfg.train.calibrate_theta and fitted.dev is not None:
        dev_matrix = decision_matrix(fitted.model, cfg, dev, data.max_distance, device)
        result.calibrated_theta, result.dev_calibrated = best_threshold(
            dev.labels, dev_matrix, labels, data.missed_positives("dev"))
    test = data.splits.get("test")
    if test is not None:
        m = decision_matrix(fitted.model, cfg, test, data.max_distance, device)
        missed = data.missed_positives("test")
        result.test = scores_at(m, test, cfg.loss.theta, labels, missed)
        result.test_annotated = annotated_pairs(test.labels, m, labels, missed)
        result.test_matrix = m
        if result.calibrated_theta is not None:
            result.test_calibrated = scores_at(m, test, result.calibrated_theta, labels, missed)
    if save:
        result.checkpoint = save_checkpoint(cfg.checkpoint_dir, fitted.model, cfg, data,
                                            result.calibrated_theta, tagger)
    return result
