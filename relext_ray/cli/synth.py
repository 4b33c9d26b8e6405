"""``relext-synth``: synthetic corpora of any size, shaped like a real one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from relext_ray.data.synth import Shape, Source, write
from relext_ray.errors import RelextError, cli_exit
from relext_ray.registry import CORPORA
from relext_ray.tracking.runs import resolve_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--from", dest="source", required=True,
                   help="prepared corpus directory, checkpoint directory, runs:/ or models:/")
    p.add_argument("--like", default=None,
                   help="real corpus directory for lengths and entity counts "
                        "(default: the one the source was made from)")
    p.add_argument("--corpus", choices=CORPORA, default=None,
                   help="format of --like (default: the source's)")
    p.add_argument("--per-file", type=int, default=100_000)
    p.add_argument("--relation-rate", type=float, default=0.3,
                   help="chance that an allowed entity pair gets a (random) gold relation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes writing files in parallel (same output for any number)")
    args = p.parse_args(argv)

    def body() -> None:
        if args.sentences < 1 or args.per_file < 1:
            raise RelextError("--sentences and --per-file must be at least 1")
        given = Path(args.source)
        source = Source.load(given if given.is_dir() else resolve_model(args.source))
        like = args.like or source.data_dir
        if not Path(like).is_dir():
            raise RelextError(f"real corpus {like} not found: give --like DIR (and --corpus)")
        shape = Shape.of_corpus(args.corpus or source.corpus, like)
        files = write(args.sentences, args.out, source, shape, args.seed, args.per_file,
                      args.relation_rate, args.workers)
        print(f"wrote {args.sentences:,} sentences to {len(files)} file(s) in {args.out}")

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
