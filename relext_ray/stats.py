"""``python -m relext_ray.stats DIR...``: one Markdown table of several prepared corpora.

Reads each prepared directory's ``stats.json`` and ``meta.json``; the README's instance table is
this command's output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from relext_ray.errors import RelextError, cli_exit

COLUMNS = ("sentences", "entities", "positives", "negatives", "filtered_out",
           "cross_sentence_relations_dropped", "rejected")


def load(prepared: Path) -> tuple[dict, dict]:
    try:
        stats = json.loads((prepared / "stats.json").read_text(encoding="utf-8"))
        meta = json.loads((prepared / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RelextError(f"not a prepared directory (missing {Path(exc.filename).name}): "
                          f"{prepared}") from None
    return stats, meta


def table(dirs: list[Path], names: list[str] | None = None) -> str:
    head = ["corpus", "mode", "split", *COLUMNS, "neg:pos"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for i, d in enumerate(dirs):
        stats, meta = load(d)
        name = names[i] if names else meta["config"]["corpus"]
        for split, st in stats.items():
            ratio = f"{st['negatives'] / st['positives']:.1f}" if st["positives"] else "–"
            cells = [name, meta["config"]["mode"], split, *(f"{st[c]:,}" for c in COLUMNS), ratio]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.stats", description=__doc__)
    p.add_argument("dirs", nargs="+", type=Path, help="prepared directories")
    p.add_argument("--names", help="comma-separated corpus names for the rows")
    args = p.parse_args(argv)
    names = args.names.split(",") if args.names else None
    if names and len(names) != len(args.dirs):
        p.error("--names needs one name per directory")
    return cli_exit(lambda: print(table(args.dirs, names)))


if __name__ == "__main__":
    sys.exit(main())
