"""k-fold cross-validation over train+dev, the paper's protocol (Ye et al. 2019, §3.2.3).

Folds are assigned by sentence, so the pairs of one sentence never straddle training and test.
In fold f the test fold is f, the next fold (f+1 mod k) is the dev fold for early stopping and
theta calibration, and the other k-2 folds train. The type filter and vocabularies are those of
the prepared training split.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from relext_ray.config import ExperimentConfig
from relext_ray.data.arrays import SplitArrays
from relext_ray.data.prepared import PreparedData, capped, ensure_prepared
from relext_ray.errors import RelextError
from relext_ray.model.vectors import tie_word_dim
from relext_ray.training.device import configure_threads, resolve_device
from relext_ray.training.evaluate import decision_matrix, scores_at
from relext_ray.training.fit import EpochCallback, fit
from relext_ray.training.metrics import best_threshold


def folds_by_sentence(sentence_ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number of every instance; sentences are shuffled (seeded) and dealt round-robin."""
    unique, inverse = np.unique(sentence_ids.astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_sentence = np.empty(len(unique), dtype=np.int64)
    fold_of_sentence[order] = np.arange(len(unique)) % k
    return fold_of_sentence[inverse]


@dataclass
class CVResult:
    folds: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, tuple[float, float]]:
        """mean and sample standard deviation of every metric over the folds."""
        out = {}
        for key in self.folds[0]:
            values = [f[key] for f in self.folds]
            out[key] = (statistics.mean(values),
                        statistics.stdev(values) if len(values) > 1 else 0.0)
        return out


def cross_validate(cfg: ExperimentConfig, k: int = 5,
                   callback: EpochCallback | None = None) -> CVResult:
    if k < 3:
        raise RelextError("--cv needs at least 3 folds (one test, one dev, one or more train)")
    if cfg.train.fit_on != "train":
        raise RelextError("cross-validation deals train+dev into its own folds: leave "
                          "train.fit_on at 'train'")
    cfg = tie_word_dim(cfg)
    data = PreparedData.load(ensure_prepared(cfg), splits=("train", "dev"))
    pool = SplitArrays.concat([data.splits[s] for s in ("train", "dev") if s in data.splits])
    pool = capped(pool, cfg.train.max_length)
    fold = folds_by_sentence(pool.sentence_ids, k, cfg.train.seed)
    device = resolve_device(cfg.train.device)
    configure_threads(cfg.train.num_threads)
    result = CVResult()
    for f in range(k):
        test_f, dev_f = f, (f + 1) % k
        train = pool.subset(np.flatnonzero((fold != test_f) & (fold != dev_f)))
        dev = pool.subset(np.flatnonzero(fold == dev_f))
        test = pool.subset(np.flatnonzero(fold == test_f))
        fitted = fit(cfg, data, train, dev, device, callback)
        m = decision_matrix(fitted.model, cfg, test, data.max_distance, device)
        s = scores_at(m, test, cfg.loss.theta, data.labels, 0)
        row = {"precision": s.precision, "recall": s.recall, "f1": s.f1,
               "best_epoch": float(fitted.best_epoch)}
        if cfg.train.calibrate_theta:
            dev_m = decision_matrix(fitted.model, cfg, dev, data.max_distance, device)
            theta, _ = best_threshold(dev.labels, dev_m, data.labels)
            row["calibrated_f1"] = scores_at(m, test, theta, data.labels, 0).f1
            row["calibrated_theta"] = theta
        result.folds.append(row)
    return result


def format_cv(r: CVResult, k: int) -> str:
    lines = [f"{k}-fold cross-validation (test folds), mean ± sd:"]
    for key, (mean, sd) in r.summary().items():
        scale = 100 if key in ("precision", "recall", "f1", "calibrated_f1") else 1
        lines.append(f"  {key:16} {scale * mean:8.2f} ± {scale * sd:.2f}")
    return "\n".join(lines)
