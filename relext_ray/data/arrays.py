"""Prepared Parquet shards → in-memory arrays → padded tensor batches.

A split is held as flat value arrays plus offsets (the Arrow list layout), so memory is the
size of the data, not of the longest sentence. Batches group instances of similar length, so
little compute is spent on padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


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


