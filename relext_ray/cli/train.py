"""``relext-train`` (``python -m relext_ray.train``): one training run, or k-fold cross-validation."""

from __future__ import annotations

import argparse
import sys

from relext_ray import console
from relext_ray.config import load_experiment
from relext_ray.errors import RelextError, cli_exit
from relext_ray.tracking.runs import cv_tracked, run_tracked, tracking_uri
from relext_ray.training.cv import format_cv
from relext_ray.training.progress import RunProgress
from relext_ray.training.run import format_result


def print_saved(checkpoint: object, run_id: str | None, model_uri: str | None) -> None:
    """Where a finished run's model is: its checkpoint and, if tracked, its MLflow run."""
    print(f"checkpoint: {checkpoint}")
    if run_id:
        print(f"MLflow run {run_id} in {tracking_uri()}; model: {model_uri}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML experiment config (tune_configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.use_tag=false (repeatable)")
    p.add_argument("--cv", type=int, default=None, metavar="K",
                   help="k-fold cross-validation over train+dev instead of one run")
    p.add_argument("--resume", action="store_true",
                   help="continue the run stopped before its end (killed, out of time) from its "
                        "last finished epoch, as if it had never stopped; every run keeps its "
                        "progress in <checkpoint_dir>.resume until it finishes")
    console.add_options(p)
    args = p.parse_args(argv)
    console.from_options(args)

    def body() -> None:
        cfg = load_experiment(args.config, args.overrides)

        def show(epoch: int, m: dict[str, float]) -> None:
            if "tagger_loss" in m:  # the entity tagger's epochs, after the relation model's
                print(f"tagger epoch {epoch:3d}  loss {m['tagger_loss']:.4f}  dev entity P/R/F1 "
                      f"{100 * m['tagger_dev_precision']:.2f}/{100 * m['tagger_dev_recall']:.2f}/"
                      f"{100 * m['tagger_dev_f1']:.2f}", flush=True)
                return
            calibrated = (f"  calibrated F1 {100 * m['dev_calibrated_f1']:.2f} at theta "
                          f"{m['dev_calibrated_theta']:.3f}" if "dev_calibrated_f1" in m else "")
            dev = (f"  dev P/R/F1 {100 * m['dev_precision']:.2f}/{100 * m['dev_recall']:.2f}/"
                   f"{100 * m['dev_f1']:.2f}" if "dev_f1" in m else "")  # none: dev trains
            print(f"epoch {epoch:3d}  loss {m['loss']:.4f}{dev}{calibrated}  "
                  f"{m['epoch_seconds']:.1f}s", flush=True)

        if args.cv:
            if args.resume:
                raise RelextError("--resume continues one run; cross-validation (--cv) starts "
                                  "again")
            print(format_cv(cv_tracked(cfg, args.cv, show), args.cv))
            return
        progress = RunProgress.of(cfg)
        if progress.start(cfg, args.resume):
            print(f"resuming from {progress.path} ({progress.describe()})", flush=True)
        elif args.resume:
            print(f"nothing to resume in {progress.path}: starting the run", flush=True)
        result, run_id, model_uri = run_tracked(cfg, callback=show, progress=progress)
        print(format_result(result))
        print_saved(result.checkpoint, run_id, model_uri)

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
