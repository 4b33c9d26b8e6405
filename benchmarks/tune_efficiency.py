"""TPE + ASHA against random search without early stopping, same trial count, one run.

    python benchmarks/tune_efficiency.py --config tune_configs/conll04_search.yaml \
        --samples 12 --epochs 10

Both arms search the same space on the same prepared corpus with the same training settings
(patience set to the epoch budget, so ASHA is the only early stopping); each ends with the
retrained best configuration scored on test. Prints best dev F1, trial-epochs used, wall time
and the ratios side by side. MLflow goes to a throw-away local store unless
MLFLOW_TRACKING_URI is set.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

ARMS = {
    "TPE + ASHA": ["search.algorithm=tpe", "search.scheduler.type=asha"],
    "random, no early stopping": ["search.algorithm=random", "search.scheduler.type=none"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tune_configs/conll04_search.yaml")
    p.add_argument("--samples", type=int, default=12, help="trials per arm")
    p.add_argument("--epochs", type=int, default=10, help="epoch budget of one trial")
    p.add_argument("--concurrent", type=int, default=2)
    p.add_argument("--startup", type=int, default=4, help="random trials before TPE")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", type=Path, default=Path("out/tune_efficiency.json"))
    args = p.parse_args()

    from relext_ray.cluster.connect import init_ray
    from relext_ray.config import load_search
    from relext_ray.data.prepared import ensure_prepared
    from relext_ray.search.tuner import search

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        common = [f"search.num_samples={args.samples}", f"search.max_concurrent={args.concurrent}",
                  "search.resources_per_trial.cpu=1", "search.resources_per_trial.gpu=0",
                  f"experiment.train.epochs={args.epochs}",
                  f"experiment.train.patience={args.epochs}",
                  f"search.storage_path={tmp}/tune", "search.register_as=null",
                  f"search.startup_trials={args.startup}",
                  f"experiment.train.checkpoint_dir={tmp}/best"]
        init_ray()  # neither arm pays for starting Ray or preparing the corpus
        ensure_prepared(load_search(args.config, [*common, *args.overrides]).experiment)
        for arm, settings in ARMS.items():
            cfg = load_search(args.config, [*common, *args.overrides, *settings])
            t0 = time.perf_counter()
            out = search(cfg, overwrite=True)
            rows[arm] = {"best_dev_f1": out["best_trial_metric"],
                         "trial_epochs": out["trial_epochs"], "trials": out["trials"],
                         "test_f1": float(out["result"].test.f1) if out["result"].test else None,
                         "seconds": time.perf_counter() - t0,
                         "best_config": out["best_config"]}
            print(f"{arm}: {json.dumps(rows[arm])}", flush=True)

    a, b = rows["TPE + ASHA"], rows["random, no early stopping"]
    print(f"\n{args.samples} trials per arm, at most {args.epochs} epochs each, "
          f"{args.concurrent} at a time, 1 CPU per trial, TPE after {args.startup} random trials")
    print("| arm | trials | trial-epochs | best dev F1 | test F1 (best config retrained) "
          "| wall s |")
    print("|---|---|---|---|---|---|")
    for arm, r in rows.items():
        print(f"| {arm} | {r['trials']} | {r['trial_epochs']} | {100 * r['best_dev_f1']:.2f} | "
              f"{100 * (r['test_f1'] or 0):.2f} | {r['seconds']:.0f} |")
    print(f"\ntrial-epochs TPE+ASHA / random = {a['trial_epochs'] / b['trial_epochs']:.2f}; "
          f"best dev F1 difference = {100 * (a['best_dev_f1'] - b['best_dev_f1']):+.2f} points; "
          f"wall time ratio = {a['seconds'] / b['seconds']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
