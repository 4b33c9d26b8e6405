"""The statistics of prepared corpora (``stats.json``) as tables."""

from __future__ import annotations

import json
from pathlib import Path

from relext_ray.errors import RelextError

# The first keys are the documented contract of stats.json; the rest explain them further.
STAT_KEYS = (
    "sentences",
    "entities",
    "positives",
    "negatives",
    "filtered_out",
    "cross_sentence_relations_dropped",
    "rejected",
    "records_read",
    "records_kept",
    "relations",
    "filtered_out_positives",
    "label_conflicts",
    "unknown_labels",
    "blank_lines",
    "documents",
    "discontinuous_spans",
    "cross_sentence_entities",
    "relations_ignored",
    "annotations_ignored",
    "too_long",
    "duplicate_ids",
    "records_renamed",
)


def format_stats(stats: dict[str, dict[str, int]], keys: tuple[str, ...] = STAT_KEYS) -> str:
    """A plain-text (and Markdown) table: one row per statistic, one column per split."""
    splits = list(stats)
    rows = [k for k in keys if any(stats[s].get(k, 0) for s in splits) or k in STAT_KEYS[:7]]
    header = ["", *splits]
    body = [[k, *(f"{stats[s].get(k, 0):,}" for s in splits)] for k in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in body)])


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
