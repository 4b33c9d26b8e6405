"""Sentence ids made unique: prepared data and predictions are keyed by sentence id, so two
records under one id would merge silently.

A first pass collects every unit's ids (cheap next to the work that follows); the driver finds
the ids that occur more than once. The first occurrence in input order (unit, then line) keeps
its id; each later one becomes ``<id>#2``, ``<id>#3``, ... (a suffix no record of the input
uses), and the summary reports how many ids were duplicated and how many records were renamed.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from relext_ray.corpus.records import ReadResult

ID_SCHEMA = pa.schema([("unit", pa.int32()), ("line", pa.int32()), ("id", pa.string())])


def plan_renames(ids: pa.Table) -> tuple[dict[int, dict[int, str]], dict[str, int]]:
    """The new id of every later occurrence of a duplicated id.

    Args:
        ids: ``ID_SCHEMA`` rows of the whole input.

    Returns:
        ``{unit: {line: new id}}`` and ``{duplicated id: occurrences}``.
    """
    column = ids.column("id")
    counts = pc.value_counts(column)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if not len(repeated):
        return {}, {}
    occurrences = dict(zip(repeated.field("values").to_pylist(),
                           repeated.field("counts").to_pylist(), strict=True))
    rows = ids.filter(pc.is_in(column, value_set=repeated.field("values"))) \
        .sort_by([("unit", "ascending"), ("line", "ascending")]).to_pylist()
    seen: dict[str, int] = {}
    planned: list[tuple[dict[str, Any], int]] = []
    for row in rows:
        k = seen.get(row["id"], 0) + 1
        seen[row["id"]] = k
        if k > 1:
            planned.append((row, k))
    # ``<id>#<k>`` of two different ids never coincide (k has no '#'); only an id the input
    # already uses can clash, and then the number goes up.
    wanted = pa.array([f"{row['id']}#{k}" for row, k in planned], pa.string())
    clash = pc.is_in(wanted, value_set=column).to_pylist()
    renames: dict[int, dict[int, str]] = {}
    for (row, k), candidate, clashes in zip(planned, wanted.to_pylist(), clash, strict=True):
        while clashes:
            k += occurrences[row["id"]]
            candidate = f"{row['id']}#{k}"
            clashes = pc.any(pc.equal(column, candidate)).as_py()
        renames.setdefault(row["unit"], {})[row["line"]] = candidate
    return renames, occurrences


def rename(result: ReadResult, renames: dict[int, str]) -> None:
    """Give the sentences of ``result`` at the lines of ``renames`` their new ids."""
    if renames:
        result.sentences = [s.renamed(renames[line]) if line in renames else s
                            for s, line in zip(result.sentences, result.lines, strict=True)]
