"""Build a seed ensemble from trained checkpoints: calibrate, average, calibrate again, save.

Each member's theta is the one that maximises its dev F1; the ensemble's decision scores are the
mean of the members' scores shifted by those thetas, and its own theta is calibrated on dev the
same way. Test is scored once, at that theta, and the result is saved as an ordinary checkpoint
(:func:`relext_ray.training.checkpoint.save_checkpoint`), which ``predict`` and the MLflow model
load like any other.
"""

from __future__ import annotations

import filecmp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from relext_ray.config import ExperimentConfig
from relext_ray.data.prepared import PreparedData, capped, ensure_prepared
from relext_ray.errors import RelextError
from relext_ray.model.ensemble import SeedEnsemble
from relext_ray.model.relation import RelationModel
from relext_ray.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from relext_ray.training.evaluate import decision_matrix, scores_at
from relext_ray.training.metrics import Scores, annotated_pairs, best_threshold


@dataclass
class MemberScores:
    """One member alone: its dev-calibrated theta and its dev and test scores there."""

    source: str
    seed: int
    theta: float
    dev: Scores
    test: Scores


@dataclass
class EnsembleResult:
    """The saved ensemble, its theta, its dev and test scores, and each member's."""

    checkpoint: Path
    config: ExperimentConfig  # the members' (the first's seed)
    labels: list[str]
    theta: float
    dev: Scores
    test: Scores
    test_annotated: Scores
    members: list[MemberScores]

    def summary(self) -> dict[str, float]:
        """Flat numbers for MLflow and the console."""
        f1s = np.array([m.test.f1 for m in self.members])
        return {"theta": self.theta, "dev_f1": self.dev.f1, "test_precision": self.test.precision,
                "test_recall": self.test.recall, "test_f1": self.test.f1,
                "test_annotated_f1": self.test_annotated.f1,
                "member_test_f1_mean": float(f1s.mean()),
                "member_test_f1_sd": float(f1s.std(ddof=1)) if len(f1s) > 1 else 0.0}


def _same_corpus(first: Checkpoint, first_dir: Path, other: Checkpoint, other_dir: Path) -> None:
    """Refuse members that cannot be averaged: another corpus, labels or architecture."""
    why = None
    if other.meta["labels"] != first.meta["labels"]:
        why = "other relation labels"
    elif other.meta["max_distance"] != first.meta["max_distance"]:
        why = "another position clip"
    elif other.config.model != first.config.model:
        why = "another model configuration (the members are seeds of one configuration)"
    elif other.config.loss.variant != first.config.loss.variant:
        why = "another loss variant"
    else:
        for name in sorted(p.name for p in (first_dir / "vocab").iterdir()):
            if not filecmp.cmp(first_dir / "vocab" / name, other_dir / "vocab" / name,
                               shallow=False):
                why = f"another vocabulary ({name})"
                break
        else:
            if not filecmp.cmp(first_dir / "type_filter.json", other_dir / "type_filter.json",
                               shallow=False):
                why = "another entity-type filter"
    if why is not None:
        raise RelextError(f"{other_dir} cannot join an ensemble with {first_dir}: {why}")


def build_ensemble(checkpoints: list[Path], out: Path,
                   device: torch.device | None = None) -> EnsembleResult:
    """Average seeds of one configuration into one checkpoint, calibrated on dev.

    Args:
        checkpoints: Two or more checkpoint directories of one configuration over one prepared
            corpus (their dev and test splits are read from it).
        out: Where the ensemble's checkpoint is written.
        device: Where to score (default CPU).

    Returns:
        The ensemble's theta and scores, each member's alone, and the saved checkpoint.
    """
    if len(checkpoints) < 2:
        raise RelextError(f"an ensemble needs at least two checkpoints, got {len(checkpoints)}")
    device = device or torch.device("cpu")
    loaded = [load_checkpoint(c, device) for c in checkpoints]
    for c, ck in zip(checkpoints[1:], loaded[1:], strict=True):
        _same_corpus(loaded[0], Path(checkpoints[0]), ck, Path(c))
    cfg, labels = loaded[0].config, loaded[0].meta["labels"]
    models = [ck.model for ck in loaded if isinstance(ck.model, RelationModel)]
    if len(models) < len(loaded):
        raise RelextError("the members must be single models, not ensembles")
    data = PreparedData.load(ensure_prepared(cfg))
    splits = {s: capped(data.splits[s], cfg.train.max_length) for s in ("dev", "test")}
    missed = {s: data.missed_positives(s) for s in splits}

    members, shifted = [], {s: [] for s in splits}
    for source, ck in zip(checkpoints, loaded, strict=True):
        matrix = {s: decision_matrix(ck.model, cfg, a, data.max_distance, device)
                  for s, a in splits.items()}
        theta, dev = best_threshold(splits["dev"].labels, matrix["dev"], labels, missed["dev"])
        test = scores_at(matrix["test"], splits["test"], theta, labels, missed["test"])
        members.append(MemberScores(str(source), ck.config.train.seed, theta, dev, test))
        for s in splits:
            shifted[s].append(matrix[s] - theta)
    mean = {s: np.mean(shifted[s], axis=0) for s in splits}
    theta, dev = best_threshold(splits["dev"].labels, mean["dev"], labels, missed["dev"])
    test = scores_at(mean["test"], splits["test"], theta, labels, missed["test"])
    annotated = annotated_pairs(splits["test"].labels, mean["test"], labels, missed["test"])

    ensemble = SeedEnsemble(models, [m.theta for m in members], cfg.loss.variant)
    save_checkpoint(out, ensemble, cfg, data, theta, loaded[0].tagger, ensemble={
        "members": len(members), "sources": [m.source for m in members],
        "seeds": [m.seed for m in members], "thetas": [m.theta for m in members]})
    return EnsembleResult(out, cfg, labels, theta, dev, test, annotated, members)
