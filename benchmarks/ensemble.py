"""Several checkpoints of one configuration (seeds) scored alone and averaged, side by side.

    python benchmarks/ensemble.py --checkpoint out/checkpoints/cl_s1 out/checkpoints/cl_s2 \
        out/checkpoints/cl_s3

Each member's decision scores are shifted by its own dev-calibrated theta (ranking-loss scores
drift in scale between seeds, so a raw mean would let one member dominate); the ensemble's
score is the mean of the shifted scores, and its theta is calibrated on dev like a member's.
Prints each member's test F1 at its calibrated theta, their mean ± sd, and the ensemble's.
All checkpoints must come from the same prepared corpus (same vocabularies and labels).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass
class Member:
    """One checkpoint's decision scores ([N, C]) and gold labels ([N]) on dev and test."""

    labels: list[str]
    scores: dict[str, np.ndarray]
    gold: dict[str, np.ndarray]
    missed: dict[str, int]
    theta: float  # its dev-calibrated theta


def load_member(checkpoint: Path) -> Member:
    import torch

    from relext_ray.data.prepared import PreparedData, capped, ensure_prepared
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.evaluate import decision_matrix
    from relext_ray.training.metrics import best_threshold

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.config
    data = PreparedData.load(ensure_prepared(cfg), splits=("dev", "test"))
    labels = ckpt.meta["labels"]
    scores, gold, missed = {}, {}, {}
    for split in ("dev", "test"):
        arrays = capped(data.splits[split], cfg.train.max_length)
        scores[split] = decision_matrix(ckpt.model, cfg, arrays, ckpt.meta["max_distance"],
                                        torch.device("cpu"))
        gold[split], missed[split] = arrays.labels, data.missed_positives(split)
    theta, _ = best_threshold(gold["dev"], scores["dev"], labels, missed["dev"])
    return Member(labels, scores, gold, missed, theta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    p.add_argument("--json", type=Path, default=Path("out/ensemble.json"))
    args = p.parse_args()

    from relext_ray.model.decision import decide_np
    from relext_ray.training.metrics import best_threshold, score

    rows, members = [], []
    for c in args.checkpoint:
        m = load_member(c)
        if members and (m.labels != members[0].labels
                        or any(not np.array_equal(m.gold[s], members[0].gold[s])
                               for s in m.gold)):
            raise SystemExit(f"error: {c} was not trained on the corpus {args.checkpoint[0]} "
                             "was (other labels or instances)")
        members.append(m)
        s = score(m.gold["test"], decide_np(m.scores["test"], m.theta)[0], m.labels,
                  m.missed["test"])
        rows.append({"checkpoint": str(c), "theta": m.theta, "test_f1": s.f1,
                     "precision": s.precision, "recall": s.recall})
        print(f"{c}: test F1 {100 * s.f1:.2f} (P {100 * s.precision:.2f}, R "
              f"{100 * s.recall:.2f}) at its dev theta {m.theta:.3f}", flush=True)
    ref = members[0]
    mean = {split: np.mean([m.scores[split] - m.theta for m in members], axis=0)
            for split in ("dev", "test")}
    theta, _ = best_threshold(ref.gold["dev"], mean["dev"], ref.labels, ref.missed["dev"])
    ens = score(ref.gold["test"], decide_np(mean["test"], theta)[0], ref.labels,
                ref.missed["test"])
    f1s = np.array([r["test_f1"] for r in rows])
    result = {"members": rows, "member_mean_f1": float(f1s.mean()),
              "member_sd_f1": float(f1s.std(ddof=1)) if len(f1s) > 1 else 0.0,
              "ensemble_f1": ens.f1, "ensemble_precision": ens.precision,
              "ensemble_recall": ens.recall, "ensemble_theta": theta}
    print(f"members: test F1 {100 * result['member_mean_f1']:.2f} ± "
          f"{100 * result['member_sd_f1']:.2f} ({len(rows)})")
    print(f"ensemble of {len(rows)}: test F1 {100 * ens.f1:.2f} (P {100 * ens.precision:.2f}, "
          f"R {100 * ens.recall:.2f}) at dev theta {theta:.3f}; "
          f"{100 * (ens.f1 - result['member_mean_f1']):+.2f} over the members' mean")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
