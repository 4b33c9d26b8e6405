"""Instances per second of ``prepare`` with 1 vs 2 Ray workers, side by side in one run.

Each measurement runs in a fresh process with its own local Ray instance of 1 or 2 CPUs (so at
most that many tasks run at once), on the Chinese Literature training split (``--repeat``
copies of it, linked under new names, so the work outweighs Ray's fixed costs). Settings
alternate over ``--rounds``; the best time of each is compared.

    python benchmarks/prepare.py --data-dir ../shared/data/chinese_literature
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def build_input(data_dir: Path, repeat: int, into: Path) -> int:
    """Link ``repeat`` copies of the training documents into ``into/Training``."""
    src = data_dir.resolve() / "relation_extraction" / "Training"
    if not src.is_dir():
        src = data_dir.resolve() / "Training"
    if not src.is_dir():
        raise SystemExit(f"no Training/ folder under {data_dir}")
    dst = into / "Training"
    dst.mkdir(parents=True)
    n = 0
    for copy in range(repeat):
        for txt in sorted(src.glob("*.txt")):
            for suffix in (".txt", ".ann"):
                (dst / f"c{copy}_{txt.stem}{suffix}").symlink_to(txt.with_suffix(suffix))
            n += 1
    return n


def measure(data_dir: Path, out: Path, cpus: int, mode: str) -> dict:
    """One run in this process: a local Ray instance with ``cpus`` CPUs, then ``prepare``."""
    import ray

    from relext_ray.cluster.connect import init_ray
    from relext_ray.config import PrepareConfig
    from relext_ray.data.pipeline import prepare

    os.environ.pop("RAY_ADDRESS", None)
    init_ray(num_cpus=cpus)
    ray.data.DataContext.get_current().enable_progress_bars = False
    cfg = PrepareConfig(corpus="brat", data_dir=data_dir, mode=mode, out=out, num_shards=8)
    t0 = time.perf_counter()
    stats = prepare(cfg)
    seconds = time.perf_counter() - t0
    train = stats["train"]
    return {
        "seconds": seconds,
        "instances": train["positives"] + train["negatives"],
        "rejected": train["rejected"],
        "stages": json.loads((out / "meta.json").read_text())["stage_seconds"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data/chinese_literature"))
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--mode", default="ordered")
    p.add_argument("--one", nargs=2, metavar=("INPUT", "CPUS"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.one:  # child process: one measurement, printed as JSON on the last line
        data, cpus = Path(args.one[0]), int(args.one[1])
        result = measure(data, data.parent / f"out{cpus}", cpus, args.mode)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        docs = build_input(args.data_dir, args.repeat, Path(tmp) / "in")
        best: dict[int, float] = {}
        instances = 0
        for r in range(args.rounds):
            for cpus in (1, 2):
                proc = subprocess.run(
                    [sys.executable, __file__, "--mode", args.mode, "--one", f"{tmp}/in", str(cpus)],
                    capture_output=True, text=True, check=True,
                )
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                if res["instances"] == 0 or res["rejected"] > 3 * args.repeat:
                    raise SystemExit(f"the input did not read cleanly: {res}")
                instances = res["instances"]
                best[cpus] = min(best.get(cpus, res["seconds"]), res["seconds"])
                print(f"round {r + 1}: {cpus} worker(s) {res['seconds']:6.2f} s "
                      f"{instances / res['seconds']:10,.0f} instances/s  stages: {res['stages']}",
                      flush=True)
        print(f"\ninput: {docs} documents ({args.repeat} x Training), {instances:,} instances, "
              f"{args.mode} mode, best of {args.rounds}\n")
        print("| Ray workers (CPUs) | seconds | instances/s |")
        print("|---:|---:|---:|")
        for cpus in (1, 2):
            print(f"| {cpus} | {best[cpus]:.2f} | {instances / best[cpus]:,.0f} |")
        print(f"\nspeed-up, 2 vs 1 workers: {best[1] / best[2]:.2f}x")


if __name__ == "__main__":
    main()
