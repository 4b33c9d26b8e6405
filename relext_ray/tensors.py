"""Prepared Parquet shards → in-memory arrays → padded tensor batches.

A split is held as flat value arrays plus offsets (the Arrow list layout), so memory is the
size of the data, not of the longest sentence. Batches group instances of similar length, so
little compute is spent on padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from relext_ray.models.model import Batch


@dataclass
class SplitArrays:
    offsets: np.ndarray  # [N+1] int64 into the value arrays
    tokens: np.ndarray  # flat int32
    pos1: np.ndarray  # flat int8, signed clipped distances
    pos2: np.ndarray
    tags: np.ndarray  # flat int16
    spans: np.ndarray  # [N, 4] int64: e1 start, e1 end, e2 start, e2 end
    labels: np.ndarray  # [N] int64: 0 Other, 1..C, -1 unknown class
    sentence_ids: np.ndarray  # [N] object, for folds by sentence
    instance_ids: np.ndarray  # [N] object

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, index: np.ndarray) -> SplitArrays:
        """The instances at ``index`` as a new, compact SplitArrays."""
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in index]) \
            if len(index) else np.zeros(0, dtype=np.int64)
        return SplitArrays(offsets, self.tokens[gather], self.pos1[gather], self.pos2[gather],
                           self.tags[gather], self.spans[index], self.labels[index],
                           self.sentence_ids[index], self.instance_ids[index])

    @staticmethod
    def concat(parts: list[SplitArrays]) -> SplitArrays:
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return SplitArrays(offsets, cat("tokens"), cat("pos1"), cat("pos2"), cat("tags"),
                           cat("spans"), cat("labels"), cat("sentence_ids"), cat("instance_ids"))


def load_split(prepared: str | Path, split: str) -> SplitArrays:
    """Read ``prepared/<split>/*.parquet`` sorted by instance id (the same order every time)."""
    path = Path(prepared) / split
    files = sorted(path.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {path}")
    t = pq.read_table(files).sort_by("instance_id")

    def flat(name: str, dtype: type) -> np.ndarray:
        return t.column(name).combine_chunks().flatten().to_numpy().astype(dtype, copy=False)

    offsets = np.zeros(t.num_rows + 1, dtype=np.int64)
    np.cumsum(t.column("length").to_numpy(), out=offsets[1:])
    spans = np.stack([t.column(c).to_numpy().astype(np.int64)
                      for c in ("e1_start", "e1_end", "e2_start", "e2_end")], axis=1)
    return SplitArrays(
        offsets, flat("token_ids", np.int32), flat("pos1", np.int8), flat("pos2", np.int8),
        flat("tag_ids", np.int16), spans, t.column("label_id").to_numpy().astype(np.int64),
        np.asarray(t.column("sentence_id").to_pylist(), dtype=object),
        np.asarray(t.column("instance_id").to_pylist(), dtype=object),
    )


def make_batch(a: SplitArrays, index: np.ndarray, max_distance: int) -> Batch:
    """Pad the instances at ``index``; position ids are distance + max_distance + 1 (0 = pad)."""
    lengths = a.lengths[index]
    width = int(lengths.max()) if len(index) else 1
    n = len(index)
    tokens = np.zeros((n, width), dtype=np.int64)
    pos1 = np.zeros((n, width), dtype=np.int64)
    pos2 = np.zeros((n, width), dtype=np.int64)
    tags = np.zeros((n, width), dtype=np.int64)
    shift = max_distance + 1
    for row, (i, length) in enumerate(zip(index, lengths, strict=True)):
        s = slice(a.offsets[i], a.offsets[i] + length)
        tokens[row, :length] = a.tokens[s]
        pos1[row, :length] = a.pos1[s].astype(np.int64) + shift
        pos2[row, :length] = a.pos2[s].astype(np.int64) + shift
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
    for index in batch_indices(a.lengths, batch_size, rng):
        yield index, make_batch(a, index, max_distance)
