"""Synthetic canonical JSONL corpora of any size, for throughput and memory tests.

    relext-synth --sentences 1000000 --out synth/ --from out/prepared/conll04

Vocabulary, entity types and relation types come from a prepared corpus or a model (``--from``:
a prepared directory, a checkpoint directory, ``runs:/`` or ``models:/``); sentence lengths,
entities per sentence and mention lengths are drawn from a real corpus (``--like``, by default
the one the prepared corpus or model was made from). Tokens follow the vocabulary's frequency
order (a Zipf law), so most are known to the model, as in real text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from relext_ray.corpus.sources import Unit, discover, read_unit
from relext_ray.errors import RelextError
from relext_ray.instances.pairs import TypeFilter, type_combo
from relext_ray.instances.vocab import PAD, UNK, Vocabularies


@dataclass
class Shape:
    """Empirical distributions of a real corpus's training split (``lengths`` and
    ``entity_counts`` are per sentence, index-aligned)."""

    lengths: np.ndarray
    entity_counts: np.ndarray
    mention_lengths: np.ndarray
    # The type of every training mention: types are drawn as often as the corpus has them, so
    # the share of pairs the type filter keeps (the work per sentence) is the corpus's too.
    entity_types: np.ndarray | None = None

    @classmethod
    def of_corpus(cls, corpus: str, data_dir: str | Path) -> Shape:
        lengths, counts, mentions, types = [], [], [], []
        for path in discover(corpus, data_dir)["train"]:
            for s in read_unit(Unit("train", corpus, str(path))).sentences:
                lengths.append(len(s.tokens))
                counts.append(len(s.entities))
                mentions.extend(e.end - e.start for e in s.entities)
                types.extend(e.type for e in s.entities)
        if not lengths:
            raise RelextError(f"no training sentences in {data_dir} to draw lengths from")
        return cls(np.array(lengths), np.array(counts), np.array(mentions or [1]),
                   np.array(types) if types else None)


@dataclass
class Source:
    """What a generated corpus must agree with: a model's (or prepared corpus's) vocabularies."""

    vocabs: Vocabularies
    type_filter: TypeFilter
    relation_types: list[str]
    corpus: str
    data_dir: str

    @classmethod
    def load(cls, directory: str | Path) -> Source:
        """From a prepared corpus or a checkpoint directory (both hold the vocabularies and the
        type filter; a checkpoint names its corpus in ``config.yaml``)."""
        path = Path(directory)
        if not (path / "meta.json").exists():
            raise RelextError(f"source not found: {path} holds no prepared corpus or checkpoint "
                              "(no meta.json)")
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if (path / "model.pt").exists():
            data = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))["data"]
        else:
            data = meta["config"]
        return cls(Vocabularies.load(path / "vocab"), TypeFilter.load(path / "type_filter.json"),
                   list(meta["labels"][1:]), data["corpus"], str(data["data_dir"]))


def generate(n: int, source: Source, shape: Shape, rng: np.random.Generator,
             relation_rate: float = 0.3, first: int = 0) -> Iterator[dict[str, Any]]:
    """Yield ``n`` canonical records (dicts), deterministic for the generator's seed."""
    words = [t for t in source.vocabs.tokens.items if t not in (PAD, UNK)]
    if not words:
        raise RelextError("the source vocabulary has no tokens")
    cdf = np.cumsum(1.0 / np.arange(1, len(words) + 1))
    cdf /= cdf[-1]
    entity_types = sorted({t for combo in source.type_filter.combos for t in combo})
    if not entity_types or not source.relation_types:
        raise RelextError("the source has no entity or relation types (no training relations)")
    known = set(entity_types)
    observed = [t for t in (shape.entity_types if shape.entity_types is not None else [])
                if t in known]
    type_pool = observed or entity_types  # the corpus's frequencies, else uniform
    for k in range(n):
        # length and entity count of one real sentence together: long sentences hold more
        # mentions, and the pairs per sentence (the work) follow from both
        i = int(rng.integers(len(shape.lengths)))
        length = int(shape.lengths[i])
        picks = np.minimum(np.searchsorted(cdf, rng.random(length)), len(words) - 1)
        tokens = [words[i] for i in picks]
        wanted = int(shape.entity_counts[i])
        entities: list[dict] = []
        taken = np.zeros(length, dtype=bool)
        for _ in range(wanted):
            span = int(min(rng.choice(shape.mention_lengths), length))
            start = int(rng.integers(0, length - span + 1))
            if taken[start:start + span].any():
                continue  # keep mentions apart, as in the corpora
            taken[start:start + span] = True
            entities.append({"start": start, "end": start + span,
                             "type": type_pool[int(rng.integers(len(type_pool)))]})
        entities.sort(key=lambda e: e["start"])
        relations = []
        for a in range(len(entities)):
            for b in range(len(entities)):
                if a == b:
                    continue
                combo = type_combo(entities[a]["type"], entities[b]["type"],
                                   source.type_filter.mode)
                if (source.type_filter.mode == "unordered" and b < a) \
                        or combo not in source.type_filter.combos:
                    continue
                if rng.random() < relation_rate:
                    relations.append({"head": a, "tail": b, "type": source.relation_types[
                        int(rng.integers(len(source.relation_types)))]})
        yield {"id": f"synth:{first + k}", "tokens": tokens, "entities": entities,
               "relations": relations}


def _write_file(args: tuple) -> Path:
    path, first, count, source, shape, seed, index, relation_rate = args
    rng = np.random.default_rng([seed, index])  # one stream per file: any worker count agrees
    with open(path, "w", encoding="utf-8") as fh:
        for record in generate(count, source, shape, rng, relation_rate, first):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def write(n: int, out: Path, source: Source, shape: Shape, seed: int = 1,
          per_file: int = 100_000, relation_rate: float = 0.3, workers: int = 1) -> list[Path]:
    """``n`` records in files of ``per_file``; the same bytes whatever ``workers`` is."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"synth-{i:05d}.jsonl", first, min(per_file, n - first), source, shape, seed,
             i, relation_rate) for i, first in enumerate(range(0, n, per_file))]
    if workers <= 1 or len(jobs) == 1:
        return [_write_file(j) for j in jobs]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_write_file, jobs))
