"""Sentence batches: a set of sentences, the mentions of the pairs to score, and the pairs.

A batch holds each of its sentences once ([S, L] token and tag ids), each mention once with
its relative positions ([M, L] position ids), and index tensors pair → sentence and pair →
mentions. The factored encoders encode the sentences and the mentions once and only pool per
pair; the per-pair encoders gather the rows they need from the same batch.

Budgets bound every tensor a batch makes: at most ``max_pairs`` pairs, and at most
``max_tokens`` padded tokens of sentences (S × L) and of mentions (M × L). A sentence with more
pairs (or mentions) than that is split across batches, its pairs cut in tiles of mentions so
that each piece shares as many mentions as it can; memory is then set by the budgets, never by
a sentence's pair count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from relext_ray.data.arrays import SplitArrays
from relext_ray.instances.positions import position_ids, relative_positions


@dataclass
class Batch:
    """Tensors of one sentence batch (all int64; 0 pads).

    ``tokens``, ``tags``: [S, L]; ``lengths``: [S]; ``positions``: [M, L], the position ids of
    every token relative to mention m (0 beyond its sentence); ``mention_sentence``: [M] its
    sentence's row; ``sentence``, ``e1``, ``e2``: [P]
    each pair's row in ``tokens`` and its two mentions' rows in ``positions``; ``spans``: [P, 4]
    e1 start, e1 end, e2 start, e2 end; ``labels``: [P].
    """

    tokens: torch.Tensor
    tags: torch.Tensor
    lengths: torch.Tensor
    positions: torch.Tensor
    mention_sentence: torch.Tensor
    sentence: torch.Tensor
    e1: torch.Tensor
    e2: torch.Tensor
    spans: torch.Tensor
    labels: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """[S, L] True on real tokens."""
        return torch.arange(self.tokens.shape[1], device=self.tokens.device) < \
            self.lengths.unsqueeze(1)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))


def _mention_keys(sentence: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                  width: int) -> np.ndarray:
    """One int64 per (sentence, start, end): equal keys are the same mention."""
    w = width + 1
    return (sentence.astype(np.int64) * w + starts) * w + ends


def make_batch(a: SplitArrays, index: np.ndarray, max_distance: int) -> Batch:
    """The sentence batch of the pairs at ``index``.

    Args:
        a: The split's arrays.
        index: [P] pair indices into ``a`` (any order; the batch keeps it).
        max_distance: The corpus's position clip (``instances.positions`` maps distances to
            embedding ids).

    Returns:
        A ``Batch``: the pairs' distinct sentences padded to the longest of them (L), their
        distinct mentions, and the pairs in the order of ``index``.
    """
    index = np.asarray(index, dtype=np.int64)
    rows, local = np.unique(a.sentence[index], return_inverse=True)
    lengths = a.sentences.lengths[rows]
    width = int(lengths.max()) if len(rows) else 1
    tokens = np.zeros((len(rows), width), dtype=np.int64)
    tags = np.zeros((len(rows), width), dtype=np.int64)
    for r, (s, n) in enumerate(zip(rows, lengths, strict=True)):
        o = a.sentences.offsets[s]
        tokens[r, :n] = a.sentences.tokens[o:o + n]
        tags[r, :n] = a.sentences.tags[o:o + n]
    spans = a.spans[index]
    keys = np.concatenate([_mention_keys(local, spans[:, 0], spans[:, 1], width),
                           _mention_keys(local, spans[:, 2], spans[:, 3], width)])
    mentions, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    m_end = mentions % (width + 1)
    m_start = (mentions // (width + 1)) % (width + 1)
    m_sentence = mentions // ((width + 1) ** 2)
    positions = position_ids(relative_positions(width, m_start, m_end, max_distance),
                             max_distance).reshape(len(mentions), width)
    positions[np.arange(width)[None, :] >= lengths[m_sentence][:, None]] = 0
    p = len(index)
    return Batch(torch.from_numpy(tokens), torch.from_numpy(tags),
                 torch.from_numpy(lengths.astype(np.int64)), torch.from_numpy(positions),
                 torch.from_numpy(m_sentence.astype(np.int64)),
                 torch.from_numpy(local.reshape(-1).astype(np.int64)),
                 torch.from_numpy(inverse[:p].astype(np.int64)),
                 torch.from_numpy(inverse[p:].astype(np.int64)),
                 torch.from_numpy(spans), torch.from_numpy(a.labels[index]))


def _tiles(pairs: np.ndarray, spans: np.ndarray, length: int, max_pairs: int,
           max_tokens: int) -> list[np.ndarray]:
    """Cut one sentence's pairs into pieces within the budgets, ordered in tiles of g × g
    mentions so that consecutive pairs share their mentions."""
    per = max(1, max_tokens // max(length, 1))  # mentions a piece may hold
    _, m1 = np.unique(spans[:, 0] * (length + 1) + spans[:, 1], return_inverse=True)
    _, m2 = np.unique(spans[:, 2] * (length + 1) + spans[:, 3], return_inverse=True)
    g = max(1, per // 2)
    order = np.lexsort((m2, m1, m2.reshape(-1) // g, m1.reshape(-1) // g))
    pieces: list[np.ndarray] = []
    current: list[int] = []
    seen: set[tuple[int, int]] = set()
    for i in order:
        new = {(1, int(m1[i])), (2, int(m2[i]))} - seen
        if current and (len(current) >= max_pairs or len(seen) + len(new) > per):
            pieces.append(pairs[current])
            current, seen = [], set()
            new = {(1, int(m1[i])), (2, int(m2[i]))}
        current.append(int(i))
        seen |= new
    if current:
        pieces.append(pairs[current])
    return pieces


def _sentence_groups(sentence: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """[N] a group id per pair: each sentence's pairs cut at random into groups of ``size``."""
    order = np.lexsort((rng.random(len(sentence)), sentence))
    sorted_sentence = sentence[order]
    starts = np.flatnonzero(np.r_[True, sorted_sentence[1:] != sorted_sentence[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    groups = np.empty(len(order), dtype=np.int64)
    groups[order] = sorted_sentence.astype(np.int64) * (len(sentence) + 1) + rank // size
    return groups


def plan_batches(a: SplitArrays, max_pairs: int, max_tokens: int,
                 rng: np.random.Generator | None = None, pool: int = 50,
                 pairs_per_sentence: int | None = None) -> list[np.ndarray]:
    """Pair-index batches of whole sentences of similar length, within the budgets.

    Args:
        a: The pairs.
        max_pairs: Pairs per batch at most.
        max_tokens: Padded sentence tokens (S × L) and padded mention tokens (M × L) per batch
            at most; a single sentence over it is split into pieces of fewer mentions.
        rng: Training: shuffle the sentences, sort them by length within pools of about
            ``pool`` batches, pack, shuffle the batches. Without it (evaluation): sentences
            sorted by length.
        pool: Batches per length-sorting pool.
        pairs_per_sentence: Training only: at most this many pairs of one sentence in a batch
            (its pairs are cut, at random, into groups of this size that travel independently;
            1 draws pairs independently, as per-pair training does). None keeps a sentence's
            pairs together: the most sharing, the most alike pairs in a step.

    Returns:
        A list of [P] pair-index arrays covering every pair of ``a`` once.
    """
    if len(a) == 0:
        return []
    groups = a.sentence
    if rng is not None and pairs_per_sentence is not None:
        groups = _sentence_groups(a.sentence, pairs_per_sentence, rng)
    by_sentence = np.argsort(groups, kind="stable")
    sent, first, count = np.unique(groups[by_sentence], return_index=True, return_counts=True)
    lengths = a.lengths[by_sentence[first]]
    # distinct mentions per sentence (both sides), which the mention budget counts
    sp = a.spans[by_sentence]
    group = np.repeat(np.arange(len(sent)), count)
    width = int(lengths.max()) + 1
    keys = np.concatenate([(group * width + sp[:, 0]) * width + sp[:, 1],
                           (group * width + sp[:, 2]) * width + sp[:, 3]])
    mentions = np.bincount(np.unique(keys) // (width * width), minlength=len(sent))

    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:
        order = rng.permutation(len(sent))
        step = max(1, pool * max_pairs)
        cuts = np.searchsorted(np.cumsum(count[order]), np.arange(step, count.sum(), step))
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")]
                                for c in np.split(order, cuts) if len(c)])

    batches: list[np.ndarray] = []
    current: list[np.ndarray] = []
    n_pairs = n_sent = n_mentions = w = 0
    for g in order:
        pairs = by_sentence[first[g]:first[g] + count[g]]
        length, k, m = int(lengths[g]), int(count[g]), int(mentions[g])
        wide = max(w, length)
        if current and (n_pairs + k > max_pairs or (n_sent + 1) * wide > max_tokens
                        or (n_mentions + m) * wide > max_tokens):
            batches.append(np.concatenate(current))
            current, n_pairs, n_sent, n_mentions, w = [], 0, 0, 0, 0
            wide = length
        if k > max_pairs or m * length > max_tokens:
            batches.extend(_tiles(pairs, a.spans[pairs], length, max_pairs, max_tokens))
            continue
        current.append(pairs)
        n_pairs, n_sent, n_mentions, w = n_pairs + k, n_sent + 1, n_mentions + m, wide
    if current:
        batches.append(np.concatenate(current))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iterate(a: SplitArrays, max_pairs: int, max_tokens: int, max_distance: int,
            rng: np.random.Generator | None = None, pairs_per_sentence: int | None = None
            ) -> Iterator[tuple[np.ndarray, Batch]]:
    """All of ``a`` in sentence batches: ([P] pair indices, the batch) pairs; shuffled with
    ``rng`` (training), sorted by length without it (evaluation)."""
    for index in plan_batches(a, max_pairs, max_tokens, rng,
                              pairs_per_sentence=pairs_per_sentence):
        yield index, make_batch(a, index, max_distance)
