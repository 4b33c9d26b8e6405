"""One writer per prepared folder: runs started side by side on the same config take turns.

Two trainings (or a training and ``relext-prepare``) that find the same folder unprepared would
otherwise write their shards into it at once and leave every sentence twice. The lock is an
``flock`` on a file inside the folder, so it holds between processes of one machine and on a
shared POSIX filesystem; it is re-entrant within a process, so a caller may hold it around its
own check-then-prepare and still call ``prepare``, which takes it too.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

LOCK_NAME = ".prepare.lock"
log = logging.getLogger(__name__)

_guard = threading.Lock()
_threads: dict[str, threading.RLock] = {}
_files: dict[str, IO[str]] = {}
_depth: dict[str, int] = {}


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the folder's preparation lock for the ``with`` block (waiting for another holder).

    Args:
        folder: The prepared folder; created if missing, the lock file lives inside it.
    """
    folder = Path(folder).resolve()
    key = str(folder)
    with _guard:
        rlock = _threads.setdefault(key, threading.RLock())
    with rlock:
        if _depth.get(key, 0) == 0:
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / LOCK_NAME, "a", encoding="utf-8")  # noqa: SIM115 (held past this block)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s is being prepared by another process: waiting for it", folder)
                fcntl.flock(fh, fcntl.LOCK_EX)
            _files[key] = fh
        _depth[key] = _depth.get(key, 0) + 1
        try:
            yield
        finally:
            _depth[key] -= 1
            if _depth[key] == 0:
                fh = _files.pop(key)
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
