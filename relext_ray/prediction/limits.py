"""How long a record prediction takes: records over the limit go to the rejects, with the reason.

A sentence's pairs grow with the square of its mentions and each pair's work with its length, so
one record of 20,000 tokens and 400 mentions costs more than a corpus of normal ones. Records
longer than the limit are rejected rather than scored in windows: a window would give the model
inputs (positions, sentence edges) it never saw in training, and its scores would look like any
other. The default is twice the longest sentence the model was trained on (checkpoints record
it); checkpoints without that record use ``FALLBACK_MAX_TOKENS``.
"""

from __future__ import annotations

from typing import Any

FALLBACK_MAX_TOKENS = 512


def default_max_tokens(meta: dict[str, Any]) -> int:
    """Twice the longest training sentence of a checkpoint (``meta.json``)."""
    longest = meta.get("max_train_tokens")
    return 2 * int(longest) if longest else FALLBACK_MAX_TOKENS


def resolve_max_tokens(requested: int | None, meta: dict[str, Any]) -> int | None:
    """``requested`` (0: no limit), or the checkpoint's default."""
    if requested is None:
        return default_max_tokens(meta)
    if requested < 0:
        from relext_ray.errors import RelextError

        raise RelextError(f"--max-tokens must be 0 (no limit) or positive, got {requested}")
    return requested or None
