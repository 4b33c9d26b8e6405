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
from typing import Any

from relext_ray.corpus.records import Sentence
from relext_ray.instances.vocab import OTHER
from relext_ray.registry import MODES, Mode


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


