"""``python -m relext_ray.cli.sample``: regenerate the bundled sample corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relext_ray.corpus.sample import SAMPLE_DIR, SPLIT_SIZES, write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.cli.sample", description=__doc__)
    p.add_argument("--out", type=Path, default=SAMPLE_DIR)
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args(argv)
    write(args.out, args.seed)
    print(f"wrote {sum(SPLIT_SIZES.values())} sentences to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
