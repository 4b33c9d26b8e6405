"""Scoring a fitted model: decision scores, P/R/F1 at a threshold, the dev-calibrated threshold."""

from __future__ import annotations

import numpy as np
import torch

from relext_ray.config import ExperimentConfig
from relext_ray.data.arrays import SplitArrays
from relext_ray.data.batching import iterate
from relext_ray.model.decision import decide_np, decision_scores
from relext_ray.model.ensemble import SeedEnsemble
from relext_ray.model.relation import RelationModel
from relext_ray.training.metrics import Scores, score


@torch.inference_mode()
def decision_matrix(model: RelationModel | SeedEnsemble, cfg: ExperimentConfig, arrays: SplitArrays,
                    max_distance: int, device: torch.device) -> np.ndarray:
    """The decision scores of every instance of ``arrays``.

    Args:
        model: The model, or an ensemble of models (put in eval mode).
        cfg: The run's config (loss variant, evaluation batch size).
        arrays: The instances.
        max_distance: The corpus's position clip.
        device: Where to compute.

    Returns:
        [N, C] float32, in the order of ``arrays``.
    """
    model.eval()
    out = np.zeros((len(arrays), model.n_classes), dtype=np.float32)
    for index, batch in iterate(arrays, cfg.train.eval_batch_size, cfg.train.batch_tokens,
                                    max_distance):
        o = model(batch.to(device))
        out[index] = decision_scores(cfg.loss.variant, o["scores"], o["other"]).float().cpu().numpy()
    return out


def scores_at(matrix: np.ndarray, arrays: SplitArrays, theta: float, labels: list[str],
              missed: int) -> Scores:
    """P/R/F1 of the decision rule at ``theta`` on [N, C] decision scores of ``arrays``."""
    return score(arrays.labels, decide_np(matrix, theta)[0], labels, missed)


