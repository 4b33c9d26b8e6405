"""``relext-stats DIR...``: one Markdown table of several prepared corpora.

Reads each prepared directory's ``stats.json`` and ``meta.json``; the README's instance table is
this command's output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relext_ray.data.statistics import table
from relext_ray.errors import cli_exit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-stats", description=__doc__)
    p.add_argument("dirs", nargs="+", type=Path, help="prepared directories")
    p.add_argument("--names", help="comma-separated corpus names for the rows")
    args = p.parse_args(argv)
    names = args.names.split(",") if args.names else None
    if names and len(names) != len(args.dirs):
        p.error("--names needs one name per directory")
    return cli_exit(lambda: print(table(args.dirs, names)))


if __name__ == "__main__":
    sys.exit(main())
