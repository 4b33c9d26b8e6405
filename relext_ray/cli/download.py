"""``relext-download``: fetch the public corpora."""

from __future__ import annotations

import argparse
import sys

from relext_ray.corpus.download import SOURCES, download
from relext_ray.errors import cli_exit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-download", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", choices=sorted(SOURCES))
    p.add_argument("--dest", default="data", help="parent directory (default: ./data)")
    p.add_argument("--base-url", default=None, help="download from this mirror instead")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    return cli_exit(lambda: download(args.corpus, args.dest, args.base_url, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
