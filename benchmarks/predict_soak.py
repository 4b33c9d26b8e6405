"""Batch prediction soak: the same job on 100,000 and 1,000,000 synthetic sentences.

    python benchmarks/predict_soak.py --model out/bench/conll04_model [--sizes 100000 1000000]

Each size is a synthetic corpus (``relext-synth``: the model's vocabularies, the real corpus's
sentence shapes) in files of 100,000 records, written once. ``relext_ray.predict`` runs on it
with 2 replicas of 1 CPU on a local Ray of 2 CPUs, in a fresh process, while the summed resident
memory of that process's whole tree (driver, Ray's daemons, replicas) is sampled; the job's
memory should not grow with the corpus. The last line:
``soak: peak RSS 1,000,000 / 100,000 sentences = R.RR; pairs/s A (100,000), B (1,000,000)``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from predict_throughput import run_one


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--root", type=Path, default=Path("out/bench/soak"))
    p.add_argument("--like", default=None, help="real corpus for sentence shapes")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()

    from relext_ray.data.synth import Shape, Source, write

    source = Source.load(str(args.model))
    shape = Shape.of_corpus(source.corpus, args.like or source.data_dir)
    results = {}
    for n in args.sizes:
        corpus = args.root / f"synth-{n}"
        if not any(corpus.glob("*.jsonl")):
            write(n, corpus, source, shape, workers=2)
        r = run_one("ray-2", args.model, corpus, args.root / f"predictions-{n}", "factored")
        results[n] = r
        print(f"{n:,} sentences: {r['pairs']:,} pairs in {r['seconds']:.0f} s "
              f"({r['pairs'] / r['seconds']:,.0f} pairs/s; scoring "
              f"{r['pairs'] / r['scoring_seconds']:,.0f}), peak RSS {r['peak_rss_mb']:,.0f} MiB",
              flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2) + "\n")
    small, large = min(results), max(results)
    rates = ", ".join(f"{results[n]['pairs'] / results[n]['seconds']:,.0f} ({n:,})"
                      for n in sorted(results))
    print(f"soak: peak RSS {large:,} / {small:,} sentences = "
          f"{results[large]['peak_rss_mb'] / results[small]['peak_rss_mb']:.2f}; pairs/s {rates}")


if __name__ == "__main__":
    main()
