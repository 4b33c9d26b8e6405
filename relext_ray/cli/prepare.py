"""``relext-prepare``: a corpus → prepared instance shards, vocabularies, stats."""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from relext_ray import console
from relext_ray.config import PrepareConfig, default, readable
from relext_ray.errors import cli_exit
from relext_ray.registry import CORPORA, MODES


def _wrap_width(value: str) -> int | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else value
    return int(value)


def _d(name: str) -> object:
    return default(PrepareConfig, name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="relext-prepare",
        description="Read a corpus with Ray Data, extract every entity pair as an instance, "
        "and write Parquet shards per split, vocabularies, the type filter and stats.json.",
    )
    p.add_argument("--corpus", required=True, choices=CORPORA)
    p.add_argument("--data-dir", required=True, help="directory holding the corpus splits")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--mode", default=_d("mode"), choices=MODES)
    p.add_argument("--num-shards", type=int, default=_d("num_shards"),
                   help=f"input blocks (default {_d('num_shards')})")
    p.add_argument("--max-distance", type=int, default=_d("max_distance"),
                   help=f"clip relative positions to ±this (default {_d('max_distance')})")
    p.add_argument("--min-freq", type=int, default=_d("min_freq"),
                   help=f"tokens rarer than this in training become <unk> (default "
                        f"{_d('min_freq')})")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="sentences of more tokens go to rejects.jsonl (default: no limit)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="parallel Ray tasks per stage (default: as many as the cluster allows)")
    p.add_argument("--wrap-width", type=_wrap_width, default=_d("wrap_width"),
                   help="brat: width at which lines are soft-wrapped: auto (default), none, or N")
    p.add_argument("--terminators", default=_d("terminators"),
                   help="brat: sentence-ending characters")
    p.add_argument("--json", action="store_true", help="print stats as JSON instead of a table")
    console.add_options(p)
    return p


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    try:
        return PrepareConfig(
            corpus=args.corpus, data_dir=args.data_dir, out=args.out, mode=args.mode,
            num_shards=args.num_shards, max_distance=args.max_distance,
            min_freq=args.min_freq, lowercase=args.lowercase, concurrency=args.concurrency,
            wrap_width=args.wrap_width, terminators=args.terminators, max_tokens=args.max_tokens,
        )
    except ValidationError as exc:
        raise readable(exc, "options") from None


def run(args: argparse.Namespace) -> None:
    cfg = config_from_args(args)
    from relext_ray.data.pipeline import prepare  # imports Ray: keep --help fast
    from relext_ray.data.statistics import format_stats

    stats = prepare(cfg)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"\nPrepared {cfg.corpus} ({cfg.mode} mode) from {cfg.data_dir} into {cfg.out}\n")
        print(format_stats(stats))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.from_options(args)
    return cli_exit(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
