"""The fit loop: train with early stopping on dev F1, keep the best weights; resumable exactly.

Without a dev split (a final model trained on train+dev) it trains every epoch and keeps the
last weights.
"""

from __future__ import annotations

import copy
import pickle
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relext_ray import console
from relext_ray.config import ExperimentConfig
from relext_ray.data.arrays import SplitArrays
from relext_ray.data.batching import iterate
from relext_ray.data.prepared import PreparedData, training_subset
from relext_ray.errors import RelextError
from relext_ray.model.losses import Objective
from relext_ray.model.relation import RelationModel, build_model
from relext_ray.model.vectors import load_word_vectors
from relext_ray.training.averaging import WeightAverage
from relext_ray.training.evaluate import decision_matrix, scores_at
from relext_ray.training.metrics import Scores, best_threshold
from relext_ray.training.optimizers import make_optimizer, set_learning_rate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class FitResult:
    model: RelationModel
    best_epoch: int
    dev: Scores | None  # None: no dev split selected the epoch
    history: list[dict[str, float]]
    seconds_per_epoch: float
    vectors: dict[str, float] = field(default_factory=dict)  # pretrained-vector coverage


@dataclass
class FitState:
    """Everything needed to continue a fit after the process died: the weights and optimizer
    after ``epoch``, the best weights so far, the weight average if one is kept, and the random
    generators' states (the entity tagger's fit keeps one too, its ``best_dev`` then
    :class:`EntityScores`)."""

    epoch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    best_f1: float
    best_epoch: int
    best_model: dict[str, Any] | None
    best_dev: Any
    history: list[dict[str, float]]
    epoch_seconds: list[float]
    numpy_rng: dict[str, Any]
    torch_rng: torch.Tensor
    average: dict[str, Any] | None = None  # WeightAverage.state_dict()

    def save(self, path: Path) -> None:
        """Tensors, numbers, strings, lists and dicts only, so ``load`` unpickles no code."""
        best_dev = asdict(self.best_dev) if self.best_dev is not None else None
        torch.save({**self.__dict__, "best_dev": best_dev}, path)

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                rng: np.random.Generator, epochs: int, patience: int,
                average: WeightAverage | None = None) -> int:
        """Put the weights, optimizer, weight average and random generators back as they were
        after ``epoch``; returns the epoch to continue with (past ``epochs`` when the fit had
        stopped early)."""
        model.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        if average is not None:
            if self.average is None:
                raise RelextError("this training state was saved without train.weight_average "
                                  "and cannot continue a run that averages the weights")
            average.load_state_dict(self.average)
        rng.bit_generator.state = self.numpy_rng
        torch.set_rng_state(self.torch_rng)
        return epochs + 1 if self.epoch - self.best_epoch >= patience else self.epoch + 1

    @classmethod
    def load(cls, path: Path, scores: type = Scores) -> FitState:
        """Read a state written by ``save`` (``weights_only``: a file holding anything but
        plain data is refused); ``best_dev`` becomes ``scores`` again."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise RelextError(f"{path} is not a training state written by relext_ray (it holds "
                              f"objects other than plain data, which are never loaded): "
                              f"{str(exc).splitlines()[0]}") from None
        if state.get("best_dev") is not None:
            state["best_dev"] = scores(**state["best_dev"])
        return cls(**state)


StateCallback = Callable[[dict[str, float], FitState], None]


def fit(cfg: ExperimentConfig, data: PreparedData, train: SplitArrays, dev: SplitArrays | None,
        device: torch.device, callback: EpochCallback | None = None,
        dev_missed: int = 0, resume: FitState | None = None,
        on_state: StateCallback | None = None) -> FitResult:
    """Train with early stopping on dev F1 (at the configured theta); keep the best weights.

    Args:
        cfg: The run's config (model, loss, training).
        data: The prepared corpus (vocabularies, labels, position clip).
        train: The training instances before ``train.documents`` and ``train.neg_ratio``
            pick each epoch's share of them (``training_subset``).
        dev: The instances that select the epoch; None: train all ``train.epochs`` epochs
            and keep the last weights.
        device: Where to train.
        callback: Called with each epoch's number and metrics.
        dev_missed: Dev positives the type filter removed (false negatives of any model).
        resume: A state from ``on_state``: continue exactly as if the run had never stopped.
        on_state: Called after each epoch with its metrics and a resumable ``FitState``.

    Returns:
        The model with its best weights (their average, with ``train.weight_average``), the
        best epoch and its dev scores, the per-epoch
        history and the mean seconds per epoch.
    """
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, data.vocabs, len(data.labels), data.max_distance).to(device)
    # (a resumed fit's weights come from its state; the coverage is reported all the same)
    vectors = load_word_vectors(model, cfg.model, data.vocabs)
    optimizer = make_optimizer(model.parameters(), cfg.train)
    rng = np.random.default_rng(cfg.train.seed)
    objective = Objective.from_config(cfg.loss)
    average = (WeightAverage(model, cfg.train.weight_average)
               if cfg.train.weight_average is not None else None)
    best_f1, best_epoch, best_state, best_dev = -1.0, 0, None, None
    history: list[dict[str, float]] = []
    epoch_seconds: list[float] = []
    first = 1
    scheduled = cfg.train.lr_schedule != "constant"
    if resume is not None:
        first = resume.restore(model, optimizer, rng, cfg.train.epochs, cfg.train.patience,
                               average)
        best_f1, best_epoch = resume.best_f1, resume.best_epoch
        best_state, best_dev = resume.best_model, resume.best_dev
        history, epoch_seconds = list(resume.history), list(resume.epoch_seconds)
    for epoch in range(first, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        if epoch == first or cfg.train.resample_negatives:
            seen = training_subset(train, cfg.train, epoch)
        model.train()
        sums = {"loss": 0.0, "loss_class": 0.0, "loss_id": 0.0}
        n = 0
        # In a terminal: pairs done, pairs/s and the epoch's time left.
        bar = console.progress_bar(len(seen.labels), f"epoch {epoch}/{cfg.train.epochs}",
                                   unit="pair")
        for _, batch in iterate(seen, cfg.train.batch_size, cfg.train.batch_tokens,
                                  data.max_distance, rng, cfg.train.pairs_per_sentence):
            if scheduled:
                set_learning_rate(optimizer, cfg.train,
                                  (epoch - 1 + n / max(len(seen.labels), 1)) / cfg.train.epochs)
            b = batch.to(device)
            o = model(b)
            parts = objective(o, b.labels)
            loss, l_class, l_id = parts.total, parts.classification, parts.identification
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model)
            k = len(b.labels)
            n += k
            sums["loss"] += loss.item() * k
            sums["loss_class"] += l_class.item() * k
            sums["loss_id"] += (l_id.item() if l_id is not None else 0.0) * k
            bar.update(k)
            bar.set_postfix(loss=f"{sums['loss'] / n:.3f}", refresh=False)
        bar.close()
        epoch_seconds.append(time.perf_counter() - t0)
        metrics = {k: v / max(n, 1) for k, v in sums.items()}
        if scheduled:
            metrics["lr"] = optimizer.param_groups[0]["lr"]
        if dev is None:
            best_epoch = epoch
        else:
            scored = average.averaged(model) if average is not None else model
            matrix = decision_matrix(scored, cfg, dev, data.max_distance, device)
            dev_scores = scores_at(matrix, dev, cfg.loss.theta, data.labels, dev_missed)
            metrics.update({f"dev_{k}": v for k, v in dev_scores.summary().items()})
            selected = dev_scores.f1
            if cfg.train.select_on == "dev_calibrated_f1":
                theta, calibrated = best_threshold(dev.labels, matrix, data.labels, dev_missed)
                metrics.update(dev_calibrated_f1=calibrated.f1, dev_calibrated_theta=theta)
                selected = calibrated.f1
            if selected > best_f1:
                best_f1, best_epoch, best_dev = selected, epoch, dev_scores
                best_state = copy.deepcopy(scored.state_dict())
            metrics["best_dev_f1"] = best_f1
        metrics.update(epoch=epoch, best_epoch=best_epoch, epoch_seconds=epoch_seconds[-1])
        history.append(metrics)
        if callback is not None:
            callback(epoch, metrics)
        if on_state is not None:
            on_state(metrics, FitState(epoch, model.state_dict(), optimizer.state_dict(), best_f1,
                                       best_epoch, best_state, best_dev, history, epoch_seconds,
                                       rng.bit_generator.state, torch.get_rng_state(),
                                       average.state_dict() if average is not None else None))
        if epoch - best_epoch >= cfg.train.patience:
            break
    if not history:
        raise RelextError("training ran no epoch: train.epochs must be at least 1")
    if dev is not None:
        model.load_state_dict(best_state)
    elif average is not None:
        model.load_state_dict(average.shadow)
    return FitResult(model, best_epoch, best_dev, history,
                     float(np.mean(epoch_seconds)) if epoch_seconds else 0.0, vectors)


EpochCallback = Callable[[int, dict[str, float]], None]


def stop_reason(last: Mapping[str, Any], epochs: int, patience: int) -> str:
    """Why a trial ended, from its last result: ``completed`` (all epochs), ``early_stopping``
    (no dev improvement for ``patience`` epochs) or ``stopped_by_scheduler`` (ASHA)."""
    epoch = int(last.get("epoch", 0))
    best_epoch = int(last.get("best_epoch", epoch))
    if epoch >= epochs:
        return "completed"
    if epoch - best_epoch >= patience:
        return "early_stopping"
    return "stopped_by_scheduler"
