"""Baseline / +Tag / +MTL / +MTL+Tag on one config, several seeds: test P/R/F1 mean ± sd.

    python benchmarks/ablation.py --config tune_configs/conll04.yaml --seeds 1 2 3

Prints a Markdown table (the README's) and writes the raw results as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

SYSTEMS = {
    "Baseline": ["model.use_tag=false", "model.mtl=false"],
    "+Tag": ["model.use_tag=true", "model.mtl=false"],
    "+MTL": ["model.use_tag=false", "model.mtl=true"],
    "+MTL+Tag": ["model.use_tag=true", "model.mtl=true"],
}


def mean_sd(values: list[float]) -> str:
    if not values:  # e.g. no calibrated theta when dev was training data
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tune_configs/conll04.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", type=Path, default=Path("out/ablation.json"))
    args = p.parse_args()

    from relext_ray.config import load_experiment
    from relext_ray.training.run import run

    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.systems:
            for seed in args.seeds:
                cfg = load_experiment(args.config, [
                    *args.overrides, *SYSTEMS[system], f"train.seed={seed}",
                    "tracking.enabled=false", f"train.checkpoint_dir={tmp}/{system}-{seed}"])
                r = run(cfg, save=False)
                row = {"seed": seed, **r.metrics(), "epochs_run": r.epochs_run}
                results.setdefault(system, []).append(row)
                print(f"{system:9} seed {seed}: test F1 {100 * r.test.f1:.2f} "
                      f"(P {100 * r.test.precision:.2f}, R {100 * r.test.recall:.2f}), "
                      f"best epoch {r.best_epoch}/{r.epochs_run}, {r.seconds_per_epoch:.1f} s/epoch",
                      flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.config}, seeds {args.seeds}; test scores at the configured theta "
          "(and with the dev-calibrated theta)\n")
    print("| system | P | R | F1 | F1, calibrated theta | epochs (best) | s/epoch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for system, rows in results.items():
        def col(k: str, rows: list[dict] = rows) -> list[float]:
            return [r[k] for r in rows if k in r]

        print(f"| {system} | {mean_sd(col('test_precision'))} | {mean_sd(col('test_recall'))} | "
              f"{mean_sd(col('test_f1'))} | {mean_sd(col('test_calibrated_f1'))} | "
              f"{statistics.mean(col('best_epoch')):.1f} | "
              f"{statistics.mean(col('seconds_per_epoch')):.1f} |")


if __name__ == "__main__":
    main()
