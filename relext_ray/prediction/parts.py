"""Batch prediction's pure parts: which files to read, and a replica that turns units of input
into part files of scored pairs plus the counts that account for every sentence.

No Ray here; ``relext_ray.predict`` hands ``UnitScorer`` to Ray Data's actor pool. A replica
writes unit ``i``'s pairs to ``part-<i>`` itself (to a temporary name, then renamed), so pairs
never pass through the driver and a retried unit replaces its file instead of adding a second
one. What travels back is small: one accounting row per unit and one row per reject
(``kind = "counts"`` / ``"reject"``, details as JSON in ``payload``); a unit's accounting comes
from the attempt whose output was kept, so nothing is counted that was not written.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from relext_ray.corpus.brat import BratOptions
from relext_ray.corpus.duplicates import ID_SCHEMA
from relext_ray.corpus.sources import Unit, read_unit
from relext_ray.data.transforms import rows_of
from relext_ray.files import replace_atomically

OUTPUT_FORMATS = ("parquet", "jsonl")
ACCOUNT_SCHEMA = pa.schema([("kind", pa.string()), ("payload", pa.string())])


def pack_directory(directory: str | Path) -> bytes:
    """A checkpoint as bytes: shipped to replicas on any node, no shared filesystem needed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(directory), arcname=".")
    return buf.getvalue()


def unpack_directory(data: bytes) -> Path:
    out = Path(tempfile.mkdtemp(prefix="relext-model-"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    return out


def part_name(index: int, units: int, fmt: str) -> str:
    """``part-00042.parquet``: unit order is input order, and names sort that way."""
    return f"part-{index:0{max(5, len(str(units - 1)))}d}.{fmt}"


def write_part(table: pa.Table, path: Path, fmt: str) -> None:
    """Write atomically: a killed attempt leaves only a temporary file, never half a part."""
    def write(tmp: Path) -> None:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n"
                              for r in table.to_pylist())

    replace_atomically(path, write)


def part_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))




def unit_ids(batch: Mapping[str, Any], brat: BratOptions) -> pa.Table:
    """Units → one row per sentence read (``corpus.duplicates.ID_SCHEMA``): the unit's index,
    the sentence's line, its id."""
    units, lines, ids = [], [], []
    for index, split, corpus, path, start, stop in rows_of(
            batch, ("index", "split", "corpus", "path", "start", "stop")):
        result = read_unit(Unit(split, corpus, path, int(start),
                                None if stop is None else int(stop)), brat)
        # one row per record: a raw text's sentences share their record's line and id
        seen: set[int] = set()
        for s, line in zip(result.sentences, result.lines, strict=True):
            if s.char_spans and line in seen:
                continue
            seen.add(line)
            units.append(int(index))
            lines.append(line)
            ids.append(s.record_id)
    return pa.table({"unit": pa.array(units, pa.int32()), "line": pa.array(lines, pa.int32()),
                     "id": pa.array(ids, pa.string())}, schema=ID_SCHEMA)
