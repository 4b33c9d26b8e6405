"""Batch prediction's pure parts: which files to read, and a replica that turns units of input
into scored pairs plus the counts that account for every sentence.

No Ray here; ``relext_ray.predict`` hands ``UnitScorer`` to Ray Data's actor pool. A replica's
output mixes pair rows (``kind = "pair"``) with one accounting row per unit and one row per
reject (``kind = "counts"`` / ``"reject"``, details as JSON in ``payload``), so that a retried
unit brings its accounting with it: nothing is counted that was not delivered.
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from relext_ray.batches import rows_of
from relext_ray.corpus.brat import BratOptions
from relext_ray.corpus.sources import Unit, file_units, read_unit
from relext_ray.errors import RelextError

FORMATS = {".jsonl": "jsonl", ".json": "conll04", ".txt": "brat"}
KINDS = ("pair", "counts", "reject")
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


def stream_schema(labels: list[str], all_scores: bool) -> pa.Schema:
    from relext_ray.inference import prediction_schema

    base = prediction_schema(labels, all_scores)
    return pa.schema([("kind", pa.string()), ("payload", pa.string()), *base])


class UnitScorer:
    """One replica: loads the model once, then reads, featurises and scores units of input."""

    def __init__(self, checkpoint: bytes | list[Any], theta: float | None = None,
                 all_scores: bool = False, batch_size: int = 512,
                 brat: BratOptions | None = None, device: str = "auto") -> None:
        """``checkpoint``: packed bytes, or ``[ObjectRef]`` to them (the driver puts the model in
        the object store once; a restarted replica fetches it again from there)."""
        import torch

        if not isinstance(checkpoint, bytes):
            import ray

            checkpoint = ray.get(checkpoint[0])

        from relext_ray.inference import Predictor
        from relext_ray.train import configure_threads, resolve_device

        configure_threads(None)
        self.predictor = Predictor.load(unpack_directory(checkpoint), resolve_device(device))
        cfg = self.predictor.checkpoint.config
        self.predictor.checkpoint.config = cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"eval_batch_size": batch_size})})
        self.theta, self.all_scores = theta, all_scores
        self.brat = brat or BratOptions()
        self.schema = stream_schema(self.predictor.labels, all_scores)
        torch.set_grad_enabled(False)

    def __call__(self, batch: Mapping[str, Any]) -> pa.Table:
        tables = []
        for split, corpus, path, start, stop in rows_of(batch, ("split", "corpus", "path", "start",
                                                              "stop")):
            unit = Unit(split, corpus, path, int(start), None if stop is None else int(stop))
            tables.append(self.score_unit(unit))
        return pa.concat_tables(tables) if tables else self.schema.empty_table()

    def score_unit(self, unit: Unit) -> pa.Table:
        result = read_unit(unit, self.brat)
        scored = self.predictor.score(result.sentences, self.theta, self.all_scores)
        pairs = scored.table
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
                   "confusion": scored.confusion.tolist()}
        side = [("counts", json.dumps(payload))]
        side += [("reject", json.dumps(r.to_dict(), ensure_ascii=False)) for r in result.rejects]
        n = pairs.num_rows
        pair_part = pa.Table.from_arrays(
            [pa.array(["pair"] * n, pa.string()), pa.nulls(n, pa.string()), *pairs.columns],
            schema=self.schema)
        side_part = pa.Table.from_arrays(
            [pa.array([k for k, _ in side], pa.string()), pa.array([p for _, p in side]),
             *(pa.nulls(len(side), f.type) for f in list(self.schema)[2:])],
            schema=self.schema)
        return pa.concat_tables([pair_part, side_part])


class Accounting:
    """Sums what replicas report, for the summary; checks the rules that must always hold."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.counts: Counter[str] = Counter()
        self.relations: Counter[str] = Counter()
        self.confusion = np.zeros((len(labels) + 1, len(labels)), dtype=np.int64)
        self.rows_written = 0

    def add(self, payload: dict[str, Any]) -> None:
        self.counts.update(payload["counts"])
        self.relations.update(payload["relations"])
        self.confusion += np.asarray(payload["confusion"], dtype=np.int64)

    def check(self) -> None:
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
        out["relations_predicted"] = {k: int(self.relations.get(k, 0)) for k in self.labels}
        if out["gold_relations"]:
            s = scores_from_confusion(self.confusion, self.labels, out["filtered_positives"])
            out["metrics"] = {**s.summary(), "per_class": s.per_class,
                              "error_breakdown": s.error_breakdown}
        else:
            out["metrics"] = None
        return out
