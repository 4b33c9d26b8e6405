"""Files that readers see whole or not at all.

A killed writer (a worker lost mid-part, a session ended mid-checkpoint) must never leave half
a file where a reader, or a resumed job, looks for it: every such write goes to a temporary
file beside the target and is then put in its place in one ``os.replace`` (atomic on POSIX
filesystems, the target's folder being the temporary's).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file beside ``path``, then put it in place of ``path``.

    Args:
        path: The file to create or replace.
        write: Writes the whole content to the path it is given.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` (UTF-8), or, if the writer dies, what it held before."""
    replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
