"""A trained checkpoint on its corpus's test split under both protocols, side by side:

* ours: every entity pair of a sentence is an instance (most are Other); the top class if its
  score reaches theta, else Other; micro P/R/F1 over the relations;
* the annotated pairs only (the published Chinese Literature setting, SR-BRCNN's): each pair
  with a gold relation is classified into one of the relation types, with no Other and no
  theta; micro F1 (= accuracy over the pairs) and macro F1 over the types.

    python benchmarks/annotated_pairs.py --checkpoint out/checkpoints/chinese_literature_full

Reads the prepared test split the checkpoint's config names (prepared on first use).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def both_protocols(checkpoint: Path) -> dict[str, float]:
    """Test F1 at the checkpoint's thetas, and the annotated-pairs classification scores."""
    import torch

    from relext_ray.data.prepared import PreparedData, capped, ensure_prepared
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.evaluate import decision_matrix, scores_at
    from relext_ray.training.metrics import annotated_pairs, macro_f1

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.config
    data = PreparedData.load(ensure_prepared(cfg), splits=("test",))
    test = capped(data.splits["test"], cfg.train.max_length)
    matrix = decision_matrix(ckpt.model, cfg, test, ckpt.meta["max_distance"], torch.device("cpu"))
    missed = data.missed_positives("test")
    labels = ckpt.meta["labels"]
    out = {"test_f1": scores_at(matrix, test, ckpt.meta["theta"], labels, missed).f1,
           "theta": ckpt.meta["theta"]}
    if ckpt.meta.get("calibrated_theta") is not None:
        out["calibrated_theta"] = ckpt.meta["calibrated_theta"]
        out["test_calibrated_f1"] = scores_at(matrix, test, out["calibrated_theta"], labels,
                                              missed).f1
    a = annotated_pairs(test.labels, matrix, labels, missed)
    out.update(annotated_pairs=a.gold_positives, annotated_micro_f1=a.f1,
               annotated_macro_f1=macro_f1(a),
               **{f"annotated_f1_{k}": row["f1"] for k, row in a.per_class.items()})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    p.add_argument("--json", type=Path, default=Path("out/annotated_pairs.json"))
    args = p.parse_args()
    rows = []
    for c in args.checkpoint:
        r = {"checkpoint": str(c), **both_protocols(c)}
        rows.append(r)
        calibrated = (f", at the calibrated theta {r['calibrated_theta']:.3f}: "
                      f"{100 * r['test_calibrated_f1']:.2f}" if "calibrated_theta" in r else "")
        print(f"{c}: all pairs, test F1 at theta {r['theta']:g}: {100 * r['test_f1']:.2f}"
              f"{calibrated}; annotated pairs only ({r['annotated_pairs']}): micro F1 "
              f"{100 * r['annotated_micro_f1']:.2f}, macro F1 {100 * r['annotated_macro_f1']:.2f}",
              flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
