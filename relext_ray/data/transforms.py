"""Batch transforms handed to Ray Data's ``map_batches``: columns in, Arrow table out.

They are pure (no Ray inside), so they run and test the same in a worker or in a unit test.
Parsed records travel between stages as JSON text: one flat, schema-stable column whatever the
record holds, which keeps Arrow from guessing types from a first batch that happens to be empty.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from relext_ray.corpus.brat import BratOptions
from relext_ray.corpus.records import Entity, Relation, Sentence, reject_long
from relext_ray.corpus.sources import Unit, read_unit
from relext_ray.data.subsample import document_of
from relext_ray.instances.features import StackedFeatures, stack_features
from relext_ray.instances.pairs import TypeFilter, extract, relation_type_combos
from relext_ray.instances.vocab import Vocabularies
from relext_ray.registry import Mode

PARSED_SCHEMA = pa.schema([
    ("split", pa.string()),
    ("kind", pa.string()),  # "sentence" | "reject" | "too_long" | "counts"
    ("payload", pa.string()),
    # sentences only: where they came from (unit index, line) and their id, for duplicate ids
    ("unit", pa.int32()),
    ("line", pa.int32()),
    ("id", pa.string()),
])

# A split is two tables: its sentences (stored once) and its pairs, keyed by sentence id.
SENTENCE_SCHEMA = pa.schema([
    ("sentence_id", pa.string()),
    ("document", pa.string()),
    ("length", pa.int32()),
    ("token_ids", pa.list_(pa.int32())),
    ("tag_ids", pa.list_(pa.int16())),
])

PAIR_SCHEMA = pa.schema([
    ("instance_id", pa.string()),
    ("sentence_id", pa.string()),
    ("e1", pa.int32()),
    ("e2", pa.int32()),
    ("e1_start", pa.int32()),
    ("e1_end", pa.int32()),
    ("e1_type", pa.string()),
    ("e2_start", pa.int32()),
    ("e2_end", pa.int32()),
    ("e2_type", pa.string()),
    ("label", pa.string()),
    ("label_id", pa.int32()),
    ("direction", pa.int8()),
])

COUNTS_SCHEMA = pa.schema([("split", pa.string()), ("payload", pa.string())])


def column_of(batch: Mapping[str, Any], name: str) -> list[Any]:
    col = batch[name]
    return col.to_pylist() if hasattr(col, "to_pylist") else list(col)


def rows_of(batch: Mapping[str, Any], names: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    return zip(*(column_of(batch, n) for n in names), strict=True)


def sentence_from_json(text: str) -> Sentence:
    """Trusted JSON (written by ``parse_units``), so no validation here."""
    d = json.loads(text)
    return Sentence(
        d["id"],
        tuple(d["tokens"]),
        tuple(Entity(e["start"], e["end"], e["type"]) for e in d["entities"]),
        tuple(Relation(r["head"], r["tail"], r["type"]) for r in d["relations"]),
    )


def parse_units(batch: Mapping[str, Any], brat: BratOptions,
                max_tokens: int | None = None) -> pa.Table:
    """Units of work → one row per sentence, per reject, per sentence over ``max_tokens``
    (``too_long``, a reject row) and per unit's counters."""
    cols: dict[str, list[Any]] = {name: [] for name in PARSED_SCHEMA.names}

    def add(split: str, kind: str, payload: str, unit: int | None = None,
            line: int | None = None, sid: str | None = None) -> None:
        for name, value in zip(PARSED_SCHEMA.names, (split, kind, payload, unit, line, sid),
                               strict=True):
            cols[name].append(value)

    names = ("index", "split", "corpus", "path", "start", "stop")
    for index, split, corpus, path, start, stop in rows_of(batch, names):
        unit = Unit(split, corpus, path, int(start), None if stop is None else int(stop))
        result = read_unit(unit, brat)
        for r in reject_long(result, path, max_tokens):
            add(split, "too_long", json.dumps(replace(r, split=split).to_dict(),
                                              ensure_ascii=False))
        for s, line in zip(result.sentences, result.lines, strict=True):
            add(split, "sentence", json.dumps(s.to_dict(), ensure_ascii=False), int(index), line,
                s.id)
        for r in result.rejects:
            add(split, "reject", json.dumps(r.to_dict(), ensure_ascii=False))
        add(split, "counts", json.dumps(result.counts))
    return pa.table(cols, schema=PARSED_SCHEMA)


def apply_renames(batch: Mapping[str, Any], renames: dict[str, str]) -> pa.Table:
    """Sentence rows with the new ids of duplicated ones (``renames``: ``"unit:line"`` → id)."""
    t = batch if isinstance(batch, pa.Table) else pa.table(dict(batch))
    payloads = []
    for payload, unit, line in rows_of(t, ("payload", "unit", "line")):
        new = renames.get(f"{unit}:{line}")
        if new is not None:
            d = json.loads(payload)
            d["id"] = new
            payload = json.dumps(d, ensure_ascii=False)
        payloads.append(payload)
    return t.set_column(t.schema.get_field_index("payload"), "payload",
                        pa.array(payloads, pa.string()))


def training_counts(batch: Mapping[str, Any], mode: Mode, lowercase: bool) -> pa.Table:
    """Partial vocabulary and type-combination counts of a batch of training sentences."""
    tokens: Counter[str] = Counter()
    entity_types: Counter[str] = Counter()
    sentences = [sentence_from_json(p) for p in column_of(batch, "payload")]
    for s in sentences:
        tokens.update([t.lower() for t in s.tokens] if lowercase else s.tokens)
        entity_types.update(e.type for e in s.entities)
    combos = relation_type_combos(sentences, mode)
    relation_types = Counter(r.type for s in sentences for r in s.relations)
    payload = json.dumps({
        "tokens": tokens,
        "entity_types": entity_types,
        "relation_types": relation_types,
        "combos": [[a, b, n] for (a, b), n in combos.items()],
    }, ensure_ascii=False)
    return pa.table({"split": ["train"], "payload": [payload]}, schema=COUNTS_SCHEMA)


@dataclass(frozen=True)
class FeatureContext:
    """Everything a worker needs to turn sentences into rows; small enough to ship by value."""

    mode: Mode
    type_filter: TypeFilter
    vocabs: Vocabularies
    lowercase: bool = False


def _stacked(batch: Mapping[str, Any], ctx: FeatureContext) -> StackedFeatures:
    return stack_features((sentence_from_json(p) for p in column_of(batch, "payload")), ctx.mode,
                          ctx.type_filter, ctx.vocabs, ctx.lowercase)


def sentence_rows(batch: Mapping[str, Any], ctx: FeatureContext) -> pa.Table:
    """Sentences → one row per sentence with at least one kept pair (``SENTENCE_SCHEMA``)."""
    st = _stacked(batch, ctx)
    offsets = pa.array(st.offsets.astype(np.int32))
    return pa.Table.from_arrays([
        pa.array(st.sentence_ids, type=pa.string()),
        pa.array([document_of(i) for i in st.sentence_ids], type=pa.string()),
        pa.array(st.lengths.astype(np.int32)),
        pa.ListArray.from_arrays(offsets, pa.array(st.tokens, type=pa.int32())),
        pa.ListArray.from_arrays(offsets, pa.array(st.tags, type=pa.int16())),
    ], schema=SENTENCE_SCHEMA)


def pair_rows(batch: Mapping[str, Any], ctx: FeatureContext) -> pa.Table:
    """Sentences → one row per pair the type filter keeps (``PAIR_SCHEMA``)."""
    st = _stacked(batch, ctx)
    return pa.Table.from_arrays([pa.array(st.pairs[f.name], type=f.type) for f in PAIR_SCHEMA],
                                schema=PAIR_SCHEMA)


def instance_counts(batch: Mapping[str, Any], ctx: FeatureContext) -> pa.Table:
    """Per-split statistics of a batch of sentences: the numbers behind ``stats.json``."""
    per_split: dict[str, Counter[str]] = {}
    for split, payload in rows_of(batch, ("split", "payload")):
        s = sentence_from_json(payload)
        kept, dropped, conflicts = extract(s, ctx.mode, ctx.type_filter)
        c = per_split.setdefault(split, Counter())
        c["sentences"] += 1
        c["entities"] += len(s.entities)
        c["relations"] += len(s.relations)
        c["positives"] += sum(i.label != "Other" for i in kept)
        c["negatives"] += sum(i.label == "Other" for i in kept)
        c["filtered_out"] += len(dropped)
        c["filtered_out_positives"] += sum(i.label != "Other" for i in dropped)
        c["label_conflicts"] += conflicts
        c["unknown_labels"] += sum(i.label not in ctx.vocabs.labels for i in kept)
    return pa.table(
        {"split": list(per_split), "payload": [json.dumps(c) for c in per_split.values()]},
        schema=COUNTS_SCHEMA,
    )
