"""Sentences → relation instances → model-ready feature rows. Pure functions, no Ray.

Every entity pair of a sentence is an instance (Ye et al. 2019, §3.2.2):

* ``unordered``: one instance per pair {e1, e2} with e1 before e2 in the sentence; positive if
  the pair is annotated in either direction, labelled with the relation type.
* ``ordered``: instances (e1, e2) and (e2, e1); only the annotated direction is positive.

Instances whose entity-type combination never occurs in a training relation are filtered out
(ordered combinations in ordered mode, unordered ones in unordered mode).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from relext_ray.corpus.records import Sentence
from relext_ray.vocab import OTHER, OUTSIDE, UNK, Vocab, Vocabularies

Mode = Literal["ordered", "unordered"]
MODES: tuple[Mode, ...] = ("unordered", "ordered")


@dataclass(frozen=True, slots=True)
class Instance:
    """A candidate pair: mention indices into the sentence, and its gold label.

    ``direction``: +1 when the relation goes e1 → e2, -1 when it goes e2 → e1 (unordered
    mode only), 0 for Other.
    """

    sentence_id: str
    e1: int
    e2: int
    label: str = OTHER
    direction: int = 0

    @property
    def id(self) -> str:
        return f"{self.sentence_id}|{self.e1}|{self.e2}"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def candidate_pairs(sentence: Sentence, mode: Mode) -> tuple[list[Instance], int]:
    """All instances of a sentence with gold labels, and how many annotations conflicted.

    A conflict is a second relation on a pair that already has one (the first one wins).
    """
    _check_mode(mode)
    order = sorted(range(len(sentence.entities)),
                   key=lambda i: (sentence.entities[i].start, sentence.entities[i].end, i))
    gold: dict[tuple[int, int], str] = {}
    conflicts = 0
    for rel in sentence.relations:
        key = (rel.head, rel.tail)
        if mode == "unordered" and (rel.tail, rel.head) in gold:
            key = (rel.tail, rel.head)
        if key in gold:
            conflicts += 1
            continue
        gold[key] = rel.type
    out: list[Instance] = []
    sid = sentence.id
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1:]:
            if mode == "unordered":
                if (a, b) in gold:
                    out.append(Instance(sid, a, b, gold[(a, b)], 1))
                elif (b, a) in gold:
                    out.append(Instance(sid, a, b, gold[(b, a)], -1))
                else:
                    out.append(Instance(sid, a, b))
            else:
                for h, t in ((a, b), (b, a)):
                    label = gold.get((h, t))
                    out.append(Instance(sid, h, t, label, 1) if label else Instance(sid, h, t))
    return out, conflicts


def type_combo(head_type: str, tail_type: str, mode: Mode) -> tuple[str, str]:
    if mode == "unordered" and tail_type < head_type:
        return tail_type, head_type
    return head_type, tail_type


@dataclass(frozen=True)
class TypeFilter:
    """The entity-type combinations seen in training relations; others cannot hold a relation."""

    mode: Mode
    combos: frozenset[tuple[str, str]]

    def keeps(self, head_type: str, tail_type: str) -> bool:
        return type_combo(head_type, tail_type, self.mode) in self.combos

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "combos": sorted(list(c) for c in self.combos)}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> TypeFilter:
        _check_mode(obj["mode"])
        return cls(obj["mode"], frozenset(tuple(c) for c in obj["combos"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TypeFilter:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def relation_type_combos(sentences: Iterable[Sentence], mode: Mode) -> Counter[tuple[str, str]]:
    """How often each type combination holds a relation (mergeable across shards)."""
    counts: Counter[tuple[str, str]] = Counter()
    for s in sentences:
        for r in s.relations:
            counts[type_combo(s.entities[r.head].type, s.entities[r.tail].type, mode)] += 1
    return counts


def extract(sentence: Sentence, mode: Mode, type_filter: TypeFilter | None
            ) -> tuple[list[Instance], list[Instance], int]:
    """(kept instances, filtered-out instances, label conflicts) of one sentence."""
    pairs, conflicts = candidate_pairs(sentence, mode)
    if type_filter is None:
        return pairs, [], conflicts
    ents = sentence.entities
    kept, dropped = [], []
    for inst in pairs:
        (kept if type_filter.keeps(ents[inst.e1].type, ents[inst.e2].type) else dropped).append(inst)
    return kept, dropped, conflicts


def bio_tags(sentence: Sentence) -> list[str]:
    """B-/I-<type> for every mention in the sentence, O elsewhere.

    Nested mentions: the longer (outer) mention wins the tokens it covers, and an inner mention
    keeps only tokens no longer mention claimed; adjacent mentions stay apart because each one
    starts with its own B- tag.
    """
    tags = [OUTSIDE] * len(sentence.tokens)
    by_length = sorted(sentence.entities, key=lambda e: (-(e.end - e.start), e.start, e.type))
    for ent in by_length:
        free = [i for i in range(ent.start, ent.end) if tags[i] == OUTSIDE]
        if not free:
            continue
        tags[free[0]] = f"B-{ent.type}"
        for i in free[1:]:
            tags[i] = f"I-{ent.type}"
    return tags


def relative_positions(length: int, starts: np.ndarray | int, ends: np.ndarray | int,
                       max_distance: int) -> np.ndarray:
    """Signed distance of every token to each span [start, end), 0 inside, clipped to ±max.

    With arrays of k spans the result is a (k, length) matrix, one row per span.
    """
    idx = np.arange(length)
    s = np.asarray(starts)[..., None]
    e = np.asarray(ends)[..., None]
    d = np.where(idx < s, idx - s, np.where(idx >= e, idx - (e - 1), 0))
    return np.clip(d, -max_distance, max_distance)


def tag_ids(tags: list[str], vocab: Vocab) -> list[int]:
    unk = {"B": vocab.get(f"B-{UNK}"), "I": vocab.get(f"I-{UNK}")}
    return [vocab.get(t, unk.get(t[:1], vocab.get(OUTSIDE))) for t in tags]


FEATURE_COLUMNS = (
    "instance_id", "sentence_id", "e1", "e2", "e1_start", "e1_end", "e1_type", "e2_start",
    "e2_end", "e2_type", "length", "label", "label_id", "direction",
)
LIST_COLUMNS = ("token_ids", "pos1", "pos2", "tag_ids")


def features(sentence: Sentence, instances: list[Instance], vocabs: Vocabularies,
             max_distance: int, lowercase: bool = False) -> dict[str, Any]:
    """Model-ready features of a sentence's instances, column-wise.

    Scalar columns are lists with one value per instance; the list columns (``token_ids``,
    ``pos1``, ``pos2``, ``tag_ids``) are (k, n) integer matrices, one row per instance. Token
    and tag ids are computed once per sentence and shared by its instances.
    """
    k, n = len(instances), len(sentence.tokens)
    ents = sentence.entities
    toks = [t.lower() for t in sentence.tokens] if lowercase else sentence.tokens
    e1 = [ents[i.e1] for i in instances]
    e2 = [ents[i.e2] for i in instances]
    token_row = np.fromiter((vocabs.tokens.id(t) for t in toks), dtype=np.int32, count=n)
    tag_row = np.asarray(tag_ids(bio_tags(sentence), vocabs.tags), dtype=np.int16)
    return {
        "instance_id": [i.id for i in instances],
        "sentence_id": [sentence.id] * k,
        "e1": [i.e1 for i in instances],
        "e2": [i.e2 for i in instances],
        "e1_start": [e.start for e in e1],
        "e1_end": [e.end for e in e1],
        "e1_type": [e.type for e in e1],
        "e2_start": [e.start for e in e2],
        "e2_end": [e.end for e in e2],
        "e2_type": [e.type for e in e2],
        "length": [n] * k,
        # -1: a relation type the training split never had (the model cannot predict it).
        "label": [i.label for i in instances],
        "label_id": [vocabs.labels.get(i.label, -1) for i in instances],
        "direction": [i.direction for i in instances],
        "token_ids": np.broadcast_to(token_row, (k, n)),
        "pos1": relative_positions(n, [e.start for e in e1], [e.end for e in e1],
                                   max_distance).astype(np.int8).reshape(k, n),
        "pos2": relative_positions(n, [e.start for e in e2], [e.end for e in e2],
                                   max_distance).astype(np.int8).reshape(k, n),
        "tag_ids": np.broadcast_to(tag_row, (k, n)),
    }


LIST_DTYPES = {"token_ids": np.int32, "pos1": np.int8, "pos2": np.int8, "tag_ids": np.int16}


@dataclass
class StackedFeatures:
    """Features of many sentences' kept instances: scalar columns as lists, list columns as
    flat arrays sharing one ``offsets`` array (the Arrow list layout)."""

    scalars: dict[str, list[Any]]
    flat: dict[str, np.ndarray]
    offsets: np.ndarray
    instances: list[tuple[Sentence, Instance]]
    filtered: int
    filtered_positives: int = 0


def stack_features(sentences: Iterable[Sentence], mode: Mode, type_filter: TypeFilter | None,
                   vocabs: Vocabularies, max_distance: int,
                   lowercase: bool = False) -> StackedFeatures:
    """Extract, filter and featurise every sentence; the shared path of prepare and predict."""
    scalars: dict[str, list[Any]] = {name: [] for name in FEATURE_COLUMNS}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in LIST_COLUMNS}
    lengths: list[int] = []
    kept_pairs: list[tuple[Sentence, Instance]] = []
    filtered = filtered_positives = 0
    for s in sentences:
        kept, dropped, _ = extract(s, mode, type_filter)
        filtered += len(dropped)
        filtered_positives += sum(i.label != OTHER for i in dropped)
        if not kept:
            continue
        f = features(s, kept, vocabs, max_distance, lowercase)
        for name in FEATURE_COLUMNS:
            scalars[name].extend(f[name])
        for name in LIST_COLUMNS:
            parts[name].append(f[name].ravel())
        lengths.extend([len(s.tokens)] * len(kept))
        kept_pairs.extend((s, i) for i in kept)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = {name: (np.concatenate(parts[name]) if parts[name]
                   else np.zeros(0, LIST_DTYPES[name])).astype(LIST_DTYPES[name], copy=False)
            for name in LIST_COLUMNS}
    return StackedFeatures(scalars, flat, offsets, kept_pairs, filtered, filtered_positives)
