"""``relext-tune`` (``ray job submit ... -- python jobs/tune.py``): the hyper-parameter search."""

from __future__ import annotations

import argparse
import sys

from relext_ray import console
from relext_ray.cluster.connect import shutdown_ray
from relext_ray.config import load_search
from relext_ray.errors import cli_exit
from relext_ray.search.tuner import search
from relext_ray.tracking import runs as tracking
from relext_ray.training.run import format_result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="search YAML (tune_configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in search.storage_path/<name> after its driver died: "
                        "finished trials are kept, unfinished ones continue from their last "
                        "checkpoint, the MLflow parent run is continued")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier search of the same name and storage path")
    console.add_options(p)
    args = p.parse_args(argv)
    console.from_options(args)
    if args.resume and args.overwrite:
        p.error("--resume and --overwrite exclude each other")

    def body() -> None:
        out = search(load_search(args.config, args.overrides), args.resume, args.overwrite)
        print(f"\nbest config: {out['best_config']}")
        print(format_result(out["result"]))
        print(f"MLflow parent run {out['parent_run_id']} in {tracking.tracking_uri()}; "
              f"best model {out['model_uri']}")
        shutdown_ray()

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
