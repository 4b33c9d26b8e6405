"""``python -m relext_ray.demo``: the main path on the bundled sample corpus, locally.

Today: prepare the sample corpus with Ray Data (unordered mode) and print its statistics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relext_ray.config import PrepareConfig
from relext_ray.sample import SAMPLE_DIR


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    args = p.parse_args(argv)

    from relext_ray.data import format_stats, prepare

    cfg = PrepareConfig(corpus="jsonl", data_dir=SAMPLE_DIR, out=args.out / "prepared",
                        mode="unordered", num_shards=2)
    stats = prepare(cfg)
    print(f"\nSample corpus prepared into {cfg.out} (Parquet shards per split, vocab/, "
          "type_filter.json, stats.json, rejects.jsonl)\n")
    print(format_stats(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
