"""Token, BIO-tag and label vocabularies: built on the training split, saved beside the data.

Ids are stable for a given training split: items are ordered by frequency, ties by the item
itself, so the same corpus always gives the same ids however it was sharded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PAD = "<pad>"
UNK = "<unk>"
UNK_ID = 1  # a token vocabulary is (PAD, UNK, ...): see token_vocab
OTHER = "Other"
OUTSIDE = "O"


@dataclass(frozen=True)
class Vocab:
    """A list of items whose index is the id; unknown items map to ``<unk>`` when it exists."""

    items: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {item: i for i, item in enumerate(self.items)})

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: str) -> bool:
        return item in self._index  # type: ignore[attr-defined]

    def get(self, item: str, default: int = -1) -> int:
        return self._index.get(item, default)  # type: ignore[attr-defined]

    def id(self, item: str) -> int:
        """The id of ``item``, or of ``<unk>``; a KeyError only for a vocabulary without one."""
        idx = self._index.get(item)  # type: ignore[attr-defined]
        if idx is None:
            idx = self._index[UNK]  # type: ignore[attr-defined]
        return idx

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(list(self.items), ensure_ascii=False, indent=0) + "\n",
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls(tuple(json.loads(Path(path).read_text(encoding="utf-8"))))


def _by_frequency(counts: Counter[str]) -> list[str]:
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def token_vocab(counts: Counter[str], min_freq: int = 1) -> Vocab:
    """``<pad>`` = 0, ``<unk>`` = 1, then tokens seen at least ``min_freq`` times."""
    kept = [t for t in _by_frequency(counts) if counts[t] >= min_freq and t not in (PAD, UNK)]
    return Vocab((PAD, UNK, *kept))


def tag_vocab(entity_types: Iterable[str]) -> Vocab:
    """``<pad>`` = 0, ``O`` = 1, ``B-<unk>``/``I-<unk>`` for types unseen in training, then B-/I- per type."""
    items = [PAD, OUTSIDE, f"B-{UNK}", f"I-{UNK}"]
    for etype in sorted(set(entity_types)):
        items += [f"B-{etype}", f"I-{etype}"]
    return Vocab(tuple(items))


def label_vocab(relation_types: Iterable[str]) -> Vocab:
    """``Other`` = 0, then the relation types in sorted order (1..C, as the model's columns + 1)."""
    return Vocab((OTHER, *sorted(set(relation_types) - {OTHER})))


@dataclass(frozen=True)
class Vocabularies:
    tokens: Vocab
    tags: Vocab
    labels: Vocab

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.tokens.save(d / "tokens.json")
        self.tags.save(d / "tags.json")
        self.labels.save(d / "labels.json")

    @classmethod
    def load(cls, directory: str | Path) -> Vocabularies:
        d = Path(directory)
        return cls(Vocab.load(d / "tokens.json"), Vocab.load(d / "tags.json"),
                   Vocab.load(d / "labels.json"))
