"""The Ray Data pipeline: corpus files → sentence and pair shards (Parquet), vocabularies,
statistics.

Stages (each a pure batch function from ``batches``):

1. units of work (file slices, brat documents) → parsed sentences, rejects, reader counters;
2. training sentences → vocabulary and type-combination counts, merged on the driver;
3. sentences of each split → ``OUT/<split>/sentences/*.parquet`` (each sentence once: token and
   BIO tag ids) and ``OUT/<split>/pairs/*.parquet`` (the kept pairs: mentions, spans, label);
4. sentences → instance statistics → ``OUT/stats.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data.expressions import col

from relext_ray import __version__, console
from relext_ray.cluster.connect import init_ray
from relext_ray.config import PrepareConfig
from relext_ray.corpus.duplicates import ID_SCHEMA, plan_renames
from relext_ray.corpus.sources import SPLITS, Unit, plan_units
from relext_ray.data.arrays import LAYOUT
from relext_ray.data.local import brat_options
from relext_ray.data.statistics import STAT_KEYS
from relext_ray.data.transforms import (
    FeatureContext,
    apply_renames,
    instance_counts,
    pair_rows,
    parse_units,
    sentence_rows,
    training_counts,
)
from relext_ray.instances.pairs import TypeFilter
from relext_ray.instances.vocab import Vocabularies, label_vocab, tag_vocab, token_vocab
from relext_ray.locks import preparing

# Repetitive strings compress well as dictionaries; the id lists would only grow a dictionary.
DICTIONARY_COLUMNS = {"sentences": ("document",),
                      "pairs": ("sentence_id", "e1_type", "e2_type", "label")}
OUTPUT_FILES = ("stats.json", "rejects.jsonl", "meta.json", "type_filter.json", "vocab")


class _StageTimer:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._t, 3)
        self._t = now


def _compute(cfg: PrepareConfig) -> dict[str, Any]:
    return {"compute": ray.data.TaskPoolStrategy(size=cfg.concurrency)} if cfg.concurrency else {}


def _payloads(ds: ray.data.Dataset) -> list[tuple[str, dict[str, Any]]]:
    return [(row["split"], json.loads(row["payload"])) for row in ds.iter_rows()]


def _clear_outputs(out: Path) -> None:
    """Remove what an earlier run wrote, and only that."""
    for name in (*SPLITS, *OUTPUT_FILES):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _unique_ids(sentences: ray.data.Dataset, splits: list[str],
                stats: dict[str, Counter[str]], par: dict[str, Any]) -> ray.data.Dataset:
    """Sentences whose ids repeat within a split renamed (``corpus.duplicates``), counted in
    the statistics (``duplicate_ids``, ``records_renamed``)."""
    tables = list(sentences.select_columns(["split", *ID_SCHEMA.names]).iter_batches(
        batch_size=None, batch_format="pyarrow"))
    if not tables:
        return sentences
    ids = pa.concat_tables(tables)
    renames: dict[str, str] = {}
    for split in splits:
        mine = ids.filter(pc.equal(ids.column("split"), split)).select(ID_SCHEMA.names)
        by_line, repeated = plan_renames(mine.cast(ID_SCHEMA))
        stats[split]["duplicate_ids"] += len(repeated)
        for unit, lines in by_line.items():
            for line, new in lines.items():
                renames[f"{unit}:{line}"] = new
                stats[split]["records_renamed"] += 1
    if not renames:
        return sentences
    return sentences.map_batches(apply_renames, batch_format="pyarrow",
                                 fn_kwargs={"renames": renames}, **par)


def build_vocabularies(train: ray.data.Dataset, cfg: PrepareConfig
                       ) -> tuple[Vocabularies, TypeFilter]:
    tokens: Counter[str] = Counter()
    entity_types: Counter[str] = Counter()
    relation_types: Counter[str] = Counter()
    combos: set[tuple[str, str]] = set()
    partial = train.map_batches(training_counts, batch_format="pyarrow",
                                fn_kwargs={"mode": cfg.mode, "lowercase": cfg.lowercase},
                                **_compute(cfg))
    for _, part in _payloads(partial):
        tokens.update(part["tokens"])
        entity_types.update(part["entity_types"])
        relation_types.update(part["relation_types"])
        combos.update((a, b) for a, b, _ in part["combos"])
    vocabs = Vocabularies(
        tokens=token_vocab(tokens, min_freq=cfg.min_freq),
        tags=tag_vocab(entity_types),
        labels=label_vocab(relation_types),
    )
    return vocabs, TypeFilter(cfg.mode, frozenset(combos))


def prepare(cfg: PrepareConfig) -> dict[str, dict[str, int]]:
    """Run the whole pipeline; return the statistics that are also written to ``stats.json``.

    One preparation at a time writes into a folder (:func:`relext_ray.locks.preparing`):
    another one started meanwhile waits for it.
    """
    t0 = time.perf_counter()
    units = plan_units(cfg.corpus, cfg.data_dir, cfg.chunk_size)  # bad input: no folder made
    with preparing(Path(cfg.out)):
        return _prepare(cfg, units, t0)


def _prepare(cfg: PrepareConfig, units: list[Unit], t0: float) -> dict[str, dict[str, int]]:
    timer = _StageTimer()
    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = console.progress_enabled()
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out)

    par = _compute(cfg)
    items = [{"index": i, **asdict(u)} for i, u in enumerate(units)]
    parsed = (
        ray.data.from_items(items, override_num_blocks=min(cfg.num_shards, len(items)))
        .map_batches(parse_units, batch_format="pyarrow", batch_size=None,
                     fn_kwargs={"brat": brat_options(cfg), "max_tokens": cfg.max_tokens}, **par)
        .materialize()
    )
    timer.lap("read")
    splits = [s for s in SPLITS if any(u.split == s for u in units)]
    sentences = parsed.filter(expr=col("kind") == "sentence", **par)

    stats: dict[str, Counter[str]] = {s: Counter() for s in splits}
    for split, counts in _payloads(parsed.filter(expr=col("kind") == "counts", **par)):
        stats[split].update(counts)
    with open(out / "rejects.jsonl", "w", encoding="utf-8") as fh:
        for kind, key in (("reject", "rejected"), ("too_long", "too_long")):
            for split, reject in _payloads(parsed.filter(expr=col("kind") == kind, **par)):
                stats[split][key] += 1
                fh.write(json.dumps(reject, ensure_ascii=False) + "\n")
    sentences = _unique_ids(sentences, splits, stats, par)
    timer.lap("rejects")

    train = sentences.filter(expr=col("split").is_in(list(cfg.training_splits)), **par)
    vocabs, type_filter = build_vocabularies(train, cfg)
    vocabs.save(out / "vocab")
    type_filter.save(out / "type_filter.json")
    timer.lap("vocabulary")
    ctx = FeatureContext(cfg.mode, type_filter, vocabs, cfg.lowercase)

    for split in splits:
        of_split = sentences.filter(expr=col("split") == split, **par)
        for table, rows in (("sentences", sentence_rows), ("pairs", pair_rows)):
            (
                of_split.map_batches(rows, batch_format="pyarrow", fn_kwargs={"ctx": ctx}, **par)
                # Same concurrency fuses the write into the map tasks: N workers means N.
                .write_parquet(str(out / split / table), concurrency=cfg.concurrency,
                               use_dictionary=list(DICTIONARY_COLUMNS[table]))
            )
    timer.lap("instances")
    for split, counts in _payloads(
        sentences.map_batches(instance_counts, batch_format="pyarrow", fn_kwargs={"ctx": ctx},
                              **par)
    ):
        stats[split].update(counts)
    timer.lap("statistics")

    result = {s: {k: int(stats[s].get(k, 0)) for k in STAT_KEYS} for s in splits}
    (out / "stats.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    meta = {
        "relext_ray_version": __version__,
        "layout": LAYOUT,
        "config": json.loads(cfg.model_dump_json()),
        "splits": splits,
        "num_tokens": len(vocabs.tokens),
        "num_tags": len(vocabs.tags),
        "labels": list(vocabs.labels.items),
        "seconds": round(time.perf_counter() - t0, 3),
        "stage_seconds": timer.laps,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    return result


