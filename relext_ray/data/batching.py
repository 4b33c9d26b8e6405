"""Padded tensor batches of instances, grouped by length so little compute is spent on padding."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from relext_ray.data.arrays import SplitArrays
from relext_ray.instances.positions import position_ids


def make_batch(a: SplitArrays, index: np.ndarray, max_distance: int) -> Batch:
    """Pad the instances at ``index`` into one batch.

    Args:
        a: The split's arrays.
        index: [B] instance indices into ``a``.
        max_distance: The corpus's position clip (``instances.positions`` maps distances to
            embedding ids).

    Returns:
        A ``Batch`` of [B, L] int64 tensors (L = the longest of the B sentences; 0 pads), [B, 4]
        spans and [B] labels, in the order of ``index``.
    """
    lengths = a.lengths[index]
    width = int(lengths.max()) if len(index) else 1
    n = len(index)
    tokens = np.zeros((n, width), dtype=np.int64)
    pos1 = np.zeros((n, width), dtype=np.int64)
    pos2 = np.zeros((n, width), dtype=np.int64)
    tags = np.zeros((n, width), dtype=np.int64)
    for row, (i, length) in enumerate(zip(index, lengths, strict=True)):
        s = slice(a.offsets[i], a.offsets[i] + length)
        tokens[row, :length] = a.tokens[s]
        pos1[row, :length] = position_ids(a.pos1[s], max_distance)
        pos2[row, :length] = position_ids(a.pos2[s], max_distance)
        tags[row, :length] = a.tags[s]
    return Batch(torch.from_numpy(tokens), torch.from_numpy(pos1), torch.from_numpy(pos2),
                 torch.from_numpy(tags), torch.from_numpy(a.spans[index]),
                 torch.from_numpy(a.labels[index]))


def batch_indices(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                  pool: int = 50) -> list[np.ndarray]:
    """Index batches of similar length.

    Training (``rng`` given): shuffle, sort within pools of ``pool`` batches by length, cut,
    shuffle the batches. Evaluation (no ``rng``): sorted by length, no shuffling.
    """
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    step = batch_size * pool
    out = []
    for start in range(0, len(order), step):
        chunk = order[start:start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


def iterate(a: SplitArrays, batch_size: int, max_distance: int,
            rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, Batch]]:
    """All of ``a`` in batches: ([B] instance indices, the padded batch) pairs; shuffled with
    ``rng`` (training), sorted by length without it (evaluation)."""
    for index in batch_indices(a.lengths, batch_size, rng):
        yield index, make_batch(a, index, max_distance)


@dataclass
class Batch:
    """Padded tensors of one batch; ``spans`` is [B, 4]: e1 start, e1 end, e2 start, e2 end."""

    tokens: torch.Tensor
    pos1: torch.Tensor
    pos2: torch.Tensor
    tags: torch.Tensor
    spans: torch.Tensor
    labels: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        return self.tokens != 0

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in (
            self.tokens, self.pos1, self.pos2, self.tags, self.spans, self.labels)))
