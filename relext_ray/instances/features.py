"""Model-ready features of a sentence's instances: token ids, entity BIO tags of every mention,
relative positions; stacked column-wise for many sentences (the shared path of prepare and
predict)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from relext_ray.corpus.records import Sentence
from relext_ray.instances.pairs import Instance, TypeFilter, extract
from relext_ray.instances.positions import relative_positions
from relext_ray.instances.vocab import OTHER, OUTSIDE, UNK, Vocab, Vocabularies
from relext_ray.registry import Mode


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
