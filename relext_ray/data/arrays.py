"""Prepared Parquet tables → in-memory arrays: sentences stored once, pairs pointing at them.

A split is two tables: its sentences (token and BIO tag ids as flat value arrays plus offsets,
the Arrow list layout, so memory is the size of the data, not of the longest sentence) and its
pairs (the sentence each belongs to, the two mentions' spans, the label). A sentence with a
hundred pairs is held, and encoded, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from relext_ray.errors import RelextError
from relext_ray.instances.features import StackedFeatures

# What ``<prepared>/<split>/`` holds (``meta.json`` records it); prepared data of another layout
# is prepared again on use.
LAYOUT = "sentences+pairs"


@dataclass
class Sentences:
    """Token and tag ids of S sentences, flat, with their ids."""

    ids: np.ndarray  # [S] object
    offsets: np.ndarray  # [S+1] int64 into the value arrays
    tokens: np.ndarray  # flat int32
    tags: np.ndarray  # flat int16

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @staticmethod
    def concat(parts: list[Sentences]) -> Sentences:
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Sentences(np.concatenate([p.ids for p in parts]), offsets,
                         np.concatenate([p.tokens for p in parts]),
                         np.concatenate([p.tags for p in parts]))


@dataclass
class SplitArrays:
    """N pairs over shared sentences: the unit that training, evaluation and prediction see.

    Per-pair views (``lengths``, ``sentence_ids``) are computed through ``sentence``, so a
    subset (a fold, a training subsample) shares the sentence arrays instead of copying them.
    """

    sentences: Sentences
    sentence: np.ndarray  # [N] int64 index into ``sentences``
    spans: np.ndarray  # [N, 4] int64: e1 start, e1 end, e2 start, e2 end
    labels: np.ndarray  # [N] int64: 0 Other, 1..C, -1 unknown class
    instance_ids: np.ndarray  # [N] object

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """[N] the length of each pair's sentence."""
        return self.sentences.lengths[self.sentence]

    @property
    def sentence_ids(self) -> np.ndarray:
        """[N] the id of each pair's sentence (folds and document shares go by it)."""
        return self.sentences.ids[self.sentence]

    def subset(self, index: np.ndarray) -> SplitArrays:
        """The pairs at ``index`` (their sentences are shared, not copied)."""
        index = np.asarray(index, dtype=np.int64)
        return SplitArrays(self.sentences, self.sentence[index], self.spans[index],
                           self.labels[index], self.instance_ids[index])

    @staticmethod
    def concat(parts: list[SplitArrays]) -> SplitArrays:
        shift = np.cumsum([0] + [len(p.sentences) for p in parts[:-1]])
        return SplitArrays(
            Sentences.concat([p.sentences for p in parts]),
            np.concatenate([p.sentence + k for p, k in zip(parts, shift, strict=True)]),
            np.concatenate([p.spans for p in parts]), np.concatenate([p.labels for p in parts]),
            np.concatenate([p.instance_ids for p in parts]))

    @classmethod
    def from_features(cls, st: StackedFeatures) -> SplitArrays:
        """The arrays of freshly featurised sentences (the prediction path)."""
        c = st.pairs
        spans = np.array([c["e1_start"], c["e1_end"], c["e2_start"], c["e2_end"]],
                         dtype=np.int64).T.reshape(-1, 4)
        return cls(Sentences(np.asarray(st.sentence_ids, dtype=object), st.offsets,
                             st.tokens.astype(np.int32, copy=False),
                             st.tags.astype(np.int16, copy=False)),
                   np.asarray(c["sentence"], dtype=np.int64), spans,
                   np.asarray(c["label_id"], dtype=np.int64),
                   np.asarray(c["instance_id"], dtype=object))


def _read(path: Path, key: str) -> pa.Table:
    files = sorted(path.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {path}")
    return pq.read_table(files).sort_by(key)


def _flat(t: pa.Table, name: str, dtype: type) -> np.ndarray:
    return t.column(name).combine_chunks().flatten().to_numpy().astype(dtype, copy=False)


def load_split(prepared: str | Path, split: str) -> SplitArrays:
    """Read ``prepared/<split>/{sentences,pairs}/*.parquet``: sentences sorted by id, pairs by
    instance id (the same order every time, whatever the sharding)."""
    root = Path(prepared) / split
    st = _read(root / "sentences", "sentence_id")
    pairs = _read(root / "pairs", "instance_id")
    ids = st.column("sentence_id").combine_chunks()
    if len(pc.unique(ids)) != len(ids):
        counts = pc.value_counts(ids)
        dup = next(v["values"] for v in counts.to_pylist() if v["counts"] > 1)
        raise RelextError(f"{root / 'sentences'}: sentence id {dup!r} occurs more than once; "
                          f"sentence ids must be unique within a split")
    index = pc.index_in(pairs.column("sentence_id"), value_set=ids)
    if index.null_count:
        missing = pairs.column("sentence_id").filter(pc.is_null(index))[0].as_py()
        raise RelextError(f"{root / 'pairs'}: pairs of sentence {missing!r}, which "
                          f"{root / 'sentences'} does not hold")
    offsets = np.zeros(st.num_rows + 1, dtype=np.int64)
    np.cumsum(st.column("length").to_numpy(), out=offsets[1:])
    spans = np.stack([pairs.column(c).to_numpy().astype(np.int64)
                      for c in ("e1_start", "e1_end", "e2_start", "e2_end")], axis=1)
    sentences = Sentences(np.asarray(ids.to_pylist(), dtype=object), offsets,
                          _flat(st, "token_ids", np.int32), _flat(st, "tag_ids", np.int16))
    return SplitArrays(
        sentences, index.to_numpy(zero_copy_only=False).astype(np.int64),
        spans.reshape(-1, 4), pairs.column("label_id").to_numpy().astype(np.int64),
        np.asarray(pairs.column("instance_id").to_pylist(), dtype=object),
    )
