"""``python -m relext_ray.demo``: the main path on the bundled sample corpus, all local.

1. prepare the sample corpus with Ray Data (local Ray) and print its statistics;
2. train the multi-task CNN (+Tag +MTL) on it, tracked in a local MLflow store (``mlruns.db``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from relext_ray.config import load_experiment
from relext_ray.errors import cli_exit
from relext_ray.sample import SAMPLE_DIR

CONFIG = Path(__file__).resolve().parents[1] / "tune_configs" / "demo.yaml"


def demo(out: Path) -> None:
    from relext_ray.data import format_stats, prepare
    from relext_ray.tracking import tracking_uri
    from relext_ray.train import format_result, run_tracked

    cfg = load_experiment(CONFIG, [f"data.data_dir={SAMPLE_DIR}",
                                   f"data.prepared_dir={out / 'prepared'}",
                                   f"train.checkpoint_dir={out / 'checkpoint'}"])
    print("== 1. prepare: sample corpus → instances (Ray Data)")
    stats = prepare(cfg.data.prepare_config(cfg.prepared_dir))
    print(format_stats(stats))
    print("\n== 2. train: multi-task CNN with entity BIO tags (+MTL +Tag)")
    result, run_id, model_uri = run_tracked(
        cfg, callback=lambda e, m: print(f"epoch {e}: loss {m['loss']:.3f}, "
                                         f"dev F1 {100 * m['dev_f1']:.1f}", flush=True),
        run_name="demo")
    print(format_result(result))
    uri = tracking_uri()
    print(f"\ncheckpoint: {result.checkpoint}\nMLflow run {run_id} in {uri}\nmodel: {model_uri}")
    if uri.startswith("sqlite:"):
        print(f"review it: mlflow ui --backend-store-uri {uri} --host 127.0.0.1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    return cli_exit(lambda: demo(args.out))


if __name__ == "__main__":
    sys.exit(main())
