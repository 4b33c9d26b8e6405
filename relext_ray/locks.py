"""One writer at a time for what runs started side by side share on disk.

Two trainings that find the same prepared folder missing would otherwise write their shards
into it at once (every sentence twice), and two that open a new local MLflow store would both
create its tables. The lock is an ``flock`` on a file, so it holds between the processes of
one machine and on a shared POSIX filesystem; it is re-entrant within a process, so a caller
may hold it around its own check-then-prepare and still call ``prepare``, which takes it too.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

PREPARE_LOCK = ".prepare.lock"  # inside a prepared folder
log = logging.getLogger(__name__)

_guard = threading.Lock()
_threads: dict[str, threading.RLock] = {}
_files: dict[str, IO[str]] = {}
_depth: dict[str, int] = {}


@contextmanager
def exclusive(lock_file: Path, waiting: str) -> Iterator[None]:
    """Hold the lock for the ``with`` block, waiting while another process holds it.

    Args:
        lock_file: The lock's file; it and its folder are created if missing.
        waiting: The line printed (a warning) when another process holds the lock.
    """
    lock_file = Path(lock_file).resolve()
    key = str(lock_file)
    with _guard:
        rlock = _threads.setdefault(key, threading.RLock())
    with rlock:
        if _depth.get(key, 0) == 0:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            fh = open(lock_file, "a", encoding="utf-8")  # noqa: SIM115 (held past this block)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s", waiting)
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


def preparing(folder: Path) -> AbstractContextManager[None]:
    """The prepared folder's lock: one preparation at a time writes into it."""
    folder = Path(folder).resolve()
    return exclusive(folder / PREPARE_LOCK,
                     f"{folder} is being prepared by another process: waiting for it")
