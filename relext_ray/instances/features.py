"""Model-ready features: a sentence's token ids and entity BIO tags of every mention (once per
sentence), its kept pairs column-wise; stacked for many sentences (the shared path of prepare
and predict). Relative positions are not features: batches compute them from the spans."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from relext_ray.corpus.records import Sentence
from relext_ray.instances.pairs import Instance, TypeFilter, extract
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


PAIR_COLUMNS = (
    "instance_id", "sentence_id", "e1", "e2", "e1_start", "e1_end", "e1_type", "e2_start",
    "e2_end", "e2_type", "label", "label_id", "direction",
)


def sentence_ids(sentence: Sentence, vocabs: Vocabularies,
                 lowercase: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A sentence's token ids ([n] int32) and entity BIO tag ids ([n] int16): computed once per
    sentence, whatever its number of pairs."""
    toks = [t.lower() for t in sentence.tokens] if lowercase else sentence.tokens
    n = len(toks)
    token_row = np.fromiter((vocabs.tokens.id(t) for t in toks), dtype=np.int32, count=n)
    tag_row = np.asarray(tag_ids(bio_tags(sentence), vocabs.tags), dtype=np.int16)
    return token_row, tag_row


def pair_columns(sentence: Sentence, instances: list[Instance],
                 vocabs: Vocabularies) -> dict[str, list[Any]]:
    """A sentence's kept pairs, column-wise (``PAIR_COLUMNS``): mention indices, spans, types
    and labels. Positions are not stored: a batch computes them from the spans."""
    ents = sentence.entities
    e1 = [ents[i.e1] for i in instances]
    e2 = [ents[i.e2] for i in instances]
    return {
        "instance_id": [i.id for i in instances],
        "sentence_id": [sentence.id] * len(instances),
        "e1": [i.e1 for i in instances],
        "e2": [i.e2 for i in instances],
        "e1_start": [e.start for e in e1],
        "e1_end": [e.end for e in e1],
        "e1_type": [e.type for e in e1],
        "e2_start": [e.start for e in e2],
        "e2_end": [e.end for e in e2],
        "e2_type": [e.type for e in e2],
        # -1: a relation type the training split never had (the model cannot predict it).
        "label": [i.label for i in instances],
        "label_id": [vocabs.labels.get(i.label, -1) for i in instances],
        "direction": [i.direction for i in instances],
    }


@dataclass
class StackedFeatures:
    """Many sentences' kept pairs, sentences stored once.

    Sentences with at least one kept pair hold flat ``tokens`` / ``tags`` arrays sharing one
    ``offsets`` array (the Arrow list layout); ``pairs`` holds ``PAIR_COLUMNS`` plus
    ``sentence``, each pair's index into the sentences.
    """

    sentence_ids: list[str]
    offsets: np.ndarray
    tokens: np.ndarray
    tags: np.ndarray
    pairs: dict[str, list[Any]]
    instances: list[tuple[Sentence, Instance]]
    filtered: int
    filtered_positives: int = 0

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def stack_features(sentences: Iterable[Sentence], mode: Mode, type_filter: TypeFilter | None,
                   vocabs: Vocabularies, lowercase: bool = False) -> StackedFeatures:
    """Extract, filter and featurise every sentence; the shared path of prepare and predict."""
    pairs: dict[str, list[Any]] = {name: [] for name in (*PAIR_COLUMNS, "sentence")}
    token_parts: list[np.ndarray] = []
    tag_parts: list[np.ndarray] = []
    ids: list[str] = []
    kept_pairs: list[tuple[Sentence, Instance]] = []
    filtered = filtered_positives = 0
    for s in sentences:
        kept, dropped, _ = extract(s, mode, type_filter)
        filtered += len(dropped)
        filtered_positives += sum(i.label != OTHER for i in dropped)
        if not kept:
            continue
        tokens, tags = sentence_ids(s, vocabs, lowercase)
        cols = pair_columns(s, kept, vocabs)
        for name in PAIR_COLUMNS:
            pairs[name].extend(cols[name])
        pairs["sentence"].extend([len(ids)] * len(kept))
        ids.append(s.id)
        token_parts.append(tokens)
        tag_parts.append(tags)
        kept_pairs.extend((s, i) for i in kept)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in token_parts], out=offsets[1:])
    tokens = np.concatenate(token_parts) if token_parts else np.zeros(0, np.int32)
    tags = np.concatenate(tag_parts) if tag_parts else np.zeros(0, np.int16)
    return StackedFeatures(ids, offsets, tokens, tags, pairs, kept_pairs, filtered,
                           filtered_positives)
