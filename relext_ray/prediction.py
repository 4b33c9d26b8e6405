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

import glob
import io
import json
import os
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from relext_ray.batches import rows_of
from relext_ray.corpus.brat import BratOptions
from relext_ray.corpus.sources import Unit, file_units, read_unit
from relext_ray.errors import RelextError

FORMATS = {".jsonl": "jsonl", ".json": "conll04", ".txt": "brat"}
OUTPUT_FORMATS = ("parquet", "jsonl")
ACCOUNT_SCHEMA = pa.schema([("kind", pa.string()), ("payload", pa.string())])
COUNT_KEYS = (
    "sentences_read", "sentences_predicted", "sentences_rejected", "documents_rejected",
    "annotations_rejected", "pairs_scored", "pairs_filtered", "filtered_positives",
    "gold_relations", "units",
)


def input_files(spec: str | Path, fmt: str | None = None) -> list[tuple[Path, str]]:
    """The files behind ``--input`` (a file, a directory searched recursively, or a glob) and
    the format of each: ``fmt`` if given, else from the suffix."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        where = f"glob {text!r}"
    else:
        path = Path(text)
        if not path.exists():
            raise RelextError(f"--input not found: {path}")
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() \
            else [path]
        where = str(path)
    wanted = {s: f for s, f in FORMATS.items() if fmt is None or f == fmt}
    if fmt is not None and fmt not in FORMATS.values():
        raise RelextError(f"unknown --format {fmt!r}; choose one of "
                          f"{', '.join(sorted(set(FORMATS.values())))}")
    files = [(p.resolve(), wanted[p.suffix]) for p in candidates if p.suffix in wanted]
    if not files:
        kinds = ", ".join(f"{s} ({f})" for s, f in wanted.items())
        raise RelextError(f"no input files in {where}: expected {kinds}")
    return files


def plan_input(spec: str | Path, fmt: str | None = None, chunk_size: int = 1000) -> list[Unit]:
    """Units of at most ``chunk_size`` records (one per brat document) over the input files."""
    if chunk_size < 1:
        raise RelextError(f"--chunk-size must be at least 1, got {chunk_size}")
    return [unit for path, corpus in input_files(spec, fmt)
            for unit in file_units("predict", corpus, path, chunk_size)]


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
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    if fmt == "parquet":
        pq.write_table(table, tmp)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist())
    os.replace(tmp, path)


def part_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


class UnitScorer:
    """One replica: loads the model once, then reads, featurises, scores and writes units."""

    def __init__(self, checkpoint: bytes | list[Any], output: str | Path, units: int,
                 out_format: str = "parquet", theta: float | None = None,
                 all_scores: bool = False, batch_size: int = 512,
                 brat: BratOptions | None = None, device: str = "auto") -> None:
        """``checkpoint``: packed bytes, or ``[ObjectRef]`` to them (the driver puts the model in
        the object store once; a restarted replica fetches it again from there). ``output``
        must be reachable from every node that runs a replica (a shared filesystem)."""
        import torch

        if not isinstance(checkpoint, bytes):
            import ray

            checkpoint = ray.get(checkpoint[0])

        from relext_ray.inference import Predictor, prediction_schema
        from relext_ray.train import configure_threads, resolve_device

        configure_threads(None)
        self.predictor = Predictor.load(unpack_directory(checkpoint), resolve_device(device))
        cfg = self.predictor.checkpoint.config
        self.predictor.checkpoint.config = cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"eval_batch_size": batch_size})})
        self.output, self.units, self.fmt = Path(output), units, out_format
        self.theta, self.all_scores = theta, all_scores
        self.brat = brat or BratOptions()
        self.schema = prediction_schema(self.predictor.labels, all_scores)
        self.node = _node_address()
        torch.set_grad_enabled(False)

    def __call__(self, batch: Mapping[str, Any]) -> pa.Table:
        rows: list[tuple[str, str]] = []
        for index, split, corpus, path, start, stop in rows_of(
                batch, ("index", "split", "corpus", "path", "start", "stop")):
            unit = Unit(split, corpus, path, int(start), None if stop is None else int(stop))
            rows += self.score_unit(int(index), unit)
        return pa.Table.from_arrays([pa.array([k for k, _ in rows], pa.string()),
                                     pa.array([p for _, p in rows], pa.string())],
                                    schema=ACCOUNT_SCHEMA)

    def score_unit(self, index: int, unit: Unit) -> list[tuple[str, str]]:
        """Score one unit and write its part file; return its accounting and reject rows."""
        began = time.time()
        result = read_unit(unit, self.brat)
        scored = self.predictor.score(result.sentences, self.theta, self.all_scores)
        pairs = scored.table.cast(self.schema)
        name = None
        if pairs.num_rows:
            name = part_name(index, self.units, self.fmt)
            write_part(pairs, self.output / name, self.fmt)
        sentence_rejects = [] if unit.corpus == "brat" else result.rejects
        counts: Counter[str] = Counter(
            units=1,
            sentences_read=len(result.sentences) + len(sentence_rejects),
            sentences_predicted=len(result.sentences),
            sentences_rejected=len(sentence_rejects),
            documents_rejected=sum(r.field == "file" for r in result.rejects)
            if unit.corpus == "brat" else 0,
            annotations_rejected=sum(r.field != "file" for r in result.rejects)
            if unit.corpus == "brat" else 0,
            pairs_scored=pairs.num_rows,
            pairs_filtered=scored.pairs_filtered,
            filtered_positives=scored.filtered_positives,
            gold_relations=sum(len(s.relations) for s in result.sentences),
        )
        per_class = Counter(pairs.column("relation").to_pylist())
        payload = {"counts": dict(counts), "relations": dict(per_class),
                   "confusion": scored.confusion.tolist(), "file": name,
                   "rows": pairs.num_rows, "node": self.node, "span": [began, time.time()]}
        return [("counts", json.dumps(payload))] + [
            ("reject", json.dumps(r.to_dict(), ensure_ascii=False)) for r in result.rejects]


def _node_address() -> str:
    """The Ray node this replica runs on (its IP), for the summary's per-node unit counts."""
    import ray

    return ray.util.get_node_ip_address() if ray.is_initialized() else "local"


class Accounting:
    """Sums what replicas report, for the summary; checks the rules that must always hold."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.counts: Counter[str] = Counter()
        self.relations: Counter[str] = Counter()
        self.confusion = np.zeros((len(labels) + 1, len(labels)), dtype=np.int64)
        self.files: dict[str, int] = {}
        self.units_per_node: Counter[str] = Counter()
        self.span = [float("inf"), float("-inf")]

    @property
    def rows_written(self) -> int:
        return sum(self.files.values())

    def add(self, payload: dict[str, Any]) -> None:
        self.counts.update(payload["counts"])
        self.relations.update(payload["relations"])
        self.confusion += np.asarray(payload["confusion"], dtype=np.int64)
        if "node" in payload:
            self.units_per_node[payload["node"]] += 1
            self.span = [min(self.span[0], payload["span"][0]),
                         max(self.span[1], payload["span"][1])]
        if payload.get("file"):
            if payload["file"] in self.files:
                raise RelextError(f"accounting: {payload['file']} reported twice")
            self.files[payload["file"]] = int(payload["rows"])

    def check(self, out: Path | None = None, fmt: str = "parquet") -> None:
        """The sums agree; with ``out``, the part files on disk are exactly the reported ones
        and hold the reported rows (Parquet footers, or JSONL lines, are read back)."""
        if out is not None:
            on_disk = {p.name for p in out.glob(f"part-*.{fmt}")}
            if on_disk != set(self.files):
                raise RelextError(f"accounting: part files in {out} differ from those reported: "
                                  f"unexpected {sorted(on_disk - set(self.files))[:5]}, missing "
                                  f"{sorted(set(self.files) - on_disk)[:5]}")
            for name, rows in self.files.items():
                if (found := part_rows(out / name, fmt)) != rows:
                    raise RelextError(f"accounting: {out / name} holds {found} rows, "
                                      f"{rows} reported")
        c = self.counts
        if c["sentences_read"] != c["sentences_predicted"] + c["sentences_rejected"]:
            raise RelextError(f"accounting: {c['sentences_read']} sentences read but "
                              f"{c['sentences_predicted']} predicted + {c['sentences_rejected']} "
                              "rejected")
        if self.rows_written != c["pairs_scored"]:
            raise RelextError(f"accounting: {self.rows_written} rows written but "
                              f"{c['pairs_scored']} pairs scored")

    def summary(self) -> dict[str, Any]:
        from relext_ray.metrics import scores_from_confusion

        out: dict[str, Any] = {k: int(self.counts.get(k, 0)) for k in COUNT_KEYS}
        out["rows_written"] = self.rows_written
        out["files"] = len(self.files)
        out["units_per_node"] = dict(sorted(self.units_per_node.items()))
        # First unit started to last unit finished: throughput without the replicas' start-up.
        scoring = self.span[1] - self.span[0] if self.units_per_node else 0.0
        out["scoring_seconds"] = round(scoring, 3)
        out["scoring_pairs_per_second"] = round(self.rows_written / scoring, 1) if scoring else 0.0
        out["relations_predicted"] = {k: int(self.relations.get(k, 0)) for k in self.labels}
        if out["gold_relations"]:
            s = scores_from_confusion(self.confusion, self.labels, out["filtered_positives"])
            out["metrics"] = {**s.summary(), "per_class": s.per_class,
                              "error_breakdown": s.error_breakdown}
        else:
            out["metrics"] = None
        return out
