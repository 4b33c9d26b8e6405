"""What reaches the terminal: our own lines, progress bars in a terminal, and errors.

The libraries under us (Ray, Ray Data, Ray Tune, MLflow, Optuna, alembic) log at INFO and
WARNING about things a user of our commands cannot act on: token authentication being on, a
progress bar being off, artifacts being downloaded. By default those loggers are set to ERROR
and Python warnings from third-party modules are hidden; ``--verbose`` (the CLIs) or
``RELEXT_LOG_LEVEL=INFO`` (any level name) brings everything back. Errors always show.

Ray's workers do not print to the driver's terminal (``log_to_driver=False``): their logs stay
in Ray's session folder, and what they find is reported by the driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LEVEL_ENV = "RELEXT_LOG_LEVEL"
RAY_DATA_LOGGING = Path(__file__).with_name("ray_data_logging.yaml")
PROGRESS_ENV = "RELEXT_PROGRESS"
QUIET = "ERROR"
# Loggers of the libraries we drive; their children follow them.
LIBRARIES = ("ray", "ray.data", "ray.tune", "ray.train", "ray.air", "mlflow", "alembic",
             "optuna", "urllib3", "filelock", "py.warnings")
# Read by the libraries themselves, in this process and in the processes it starts.
_LIBRARY_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" bars
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # we print our own links
    # Tune's console output: its classic reporter, which verbose=0 silences completely (the
    # newer one prints its experiment box and paths at any verbosity); our own lines replace it.
    "RAY_AIR_NEW_OUTPUT": "0",
}


def level() -> str:
    """The level for the libraries' loggers: ``RELEXT_LOG_LEVEL``, else ERROR."""
    name = os.environ.get(LEVEL_ENV, QUIET).strip().upper() or QUIET
    return name if isinstance(logging.getLevelName(name), int) else QUIET


def is_verbose() -> bool:
    return logging.getLevelName(level()) < logging.WARNING


def add_options(parser: Any, progress: bool = True) -> None:
    """``--verbose`` (and ``--no-progress``) on a command's parser; see :func:`from_options`."""
    parser.add_argument("--verbose", action="store_true",
                        help=f"show the libraries' log lines and warnings ({LEVEL_ENV}=INFO)")
    if progress:
        parser.add_argument("--no-progress", action="store_true",
                            help="no progress bars (they are off anyway when not in a terminal)")


def from_options(args: Any) -> None:
    """Apply a parsed ``--verbose`` / ``--no-progress``."""
    configure(getattr(args, "verbose", False),
              False if getattr(args, "no_progress", False) else None)


def configure(verbose: bool = False, progress: bool | None = None) -> None:
    """Set what the libraries print, for this process and the Ray workers it starts.

    Args:
        verbose: Show the libraries' INFO lines and all warnings (sets ``RELEXT_LOG_LEVEL``).
        progress: Progress bars on (True) or off (False); None keeps what the environment
            says (``RELEXT_PROGRESS``), or on in a terminal.
    """
    if verbose:
        os.environ[LEVEL_ENV] = "INFO"
    if progress is not None:
        os.environ[PROGRESS_ENV] = "1" if progress else "0"
    quiet = not is_verbose()
    if quiet:
        for key, value in _LIBRARY_ENV.items():
            os.environ.setdefault(key, value)
        # Ray Data (re)configures its logger from this file; its log file keeps everything.
        os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        if name == "ray.data":  # configured already: quiet its terminal handler only
            for handler in logger.handlers:
                if not isinstance(handler, logging.FileHandler):
                    handler.setLevel(level())
        else:
            logger.setLevel(level())
    if quiet:
        # Warnings are for the people who can change the code that raises them.
        for module in ("ray", "mlflow", "optuna", "torch", "pydantic", "setuptools",
                       "sqlalchemy", "alembic", "pkg_resources", "google"):
            warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")


# Ray's core logs this when Ray Data starts a restartable actor pool, whatever the pool's
# arguments (Ray Data hands every actor its context through the object store): nothing a user
# can act on, and the replicas do restart (the node-kill tests check it).
RAY_POOL_NOTICE = re.compile(rb"core_worker\.cc:\d+: Actor with class name: .* has constructor "
                             rb"arguments in the object store and max_restarts > 0")


@contextlib.contextmanager
def native_lines_dropped(pattern: re.Pattern[bytes] = RAY_POOL_NOTICE) -> Iterator[None]:
    """While the block runs, drop the lines matching ``pattern`` that reach file descriptor 2.

    Native code (Ray's C++ core) writes to the descriptor, not to ``sys.stderr``, so no logger
    setting reaches it; here the descriptor goes through a pipe, and a thread passes everything
    else on to the real stderr at once, partial lines (progress bars) included. Verbose runs
    see everything.
    """
    if is_verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        pending = b""
        while chunk := os.read(read, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not pattern.search(line))
            if pending and not pending.startswith(b"["):  # native log lines start with "["
                out, pending = out + pending, b""
            if out:
                os.write(saved, out)
        if pending and not pattern.search(pending):
            os.write(saved, pending)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the thread drains and ends
        thread.join(timeout=10)
        if not thread.is_alive():  # else a process we started holds the pipe: leave both open
            os.close(read)
            os.close(saved)


def progress_enabled() -> bool:
    """Progress bars are drawn only in a terminal, unless ``RELEXT_PROGRESS`` says otherwise."""
    value = os.environ.get(PROGRESS_ENV)
    if value is not None:
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress_bar(total: int, desc: str, unit: str = "it", **kwargs: Any) -> Any:
    """A ``tqdm`` bar on stderr that disappears when done, or a silent one (same interface)
    when progress is off, so callers never branch."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=not progress_enabled(), unit_scale=True, **kwargs)
