"""Relative positions and their embedding ids: the one place that fixes the contract.

A token's distance to a mention is signed, 0 inside the mention and clipped to ±``max_distance``
(computed from the mention's span when a batch is built). The model embeds it as
``distance + max_distance + 1``, so id 0 stays free for padding and there are
``2 * max_distance + 2`` ids."""

from __future__ import annotations

import numpy as np


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


def position_ids(distances: np.ndarray, max_distance: int) -> np.ndarray:
    """Embedding ids of signed, clipped distances: ``distance + max_distance + 1`` (0 = pad)."""
    return distances.astype(np.int64) + (max_distance + 1)


def num_position_ids(max_distance: int) -> int:
    """How many position ids there are: ``2 * max_distance + 1`` distances and the pad id."""
    return 2 * max_distance + 2
