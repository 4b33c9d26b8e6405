"""What batch prediction reads: the files behind ``--input`` and their units of work."""

from __future__ import annotations

import glob
from pathlib import Path

from relext_ray.corpus.sources import Unit, file_units
from relext_ray.errors import RelextError
from relext_ray.registry import INPUT_FORMATS, INPUT_SUFFIXES


def input_files(spec: str | Path, fmt: str | None = None) -> list[tuple[Path, str]]:
    """The files behind ``--input`` (a file, a directory searched recursively, or a glob) and
    the format of each: ``fmt`` if given, else from the suffix."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        where = f"glob {text!r}"
    else:
        path = Path(text)
        if not path.exists():
            raise RelextError(f"--input not found: {path}")
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() \
            else [path]
        where = str(path)
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise RelextError(f"unknown --format {fmt!r}; choose one of "
                          f"{', '.join(INPUT_FORMATS)}")
    wanted = {s: f for s, f in INPUT_SUFFIXES.items()
              if fmt is None or f == fmt or (fmt == "text" and s == ".txt")}
    files = [(p.resolve(), _format(p, wanted[p.suffix], fmt)) for p in candidates
             if p.suffix in wanted]
    if not files:
        kinds = ", ".join(f"{s} ({f})" for s, f in wanted.items())
        raise RelextError(f"no input files in {where}: expected {kinds}")
    return files


def _format(path: Path, by_suffix: str, fmt: str | None) -> str:
    """A ``.txt`` is a brat document when its ``.ann`` lies beside it, else raw text."""
    if fmt is not None:
        return fmt
    if by_suffix == "brat" and not path.with_suffix(".ann").exists():
        return "text"
    return by_suffix


def default_output(spec: str | Path, root: Path = Path("predictions")) -> Path:
    """A new folder under ``root`` named after the input (``corpus/`` → ``predictions/corpus``;
    ``-2``, ``-3``, ... when that name holds files already)."""
    name = Path(str(spec).rstrip("/")).name or "input"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem) or "input"
    candidate, n = root / name, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = root / f"{name}-{n}"
    return candidate


def plan_input(spec: str | Path, fmt: str | None = None, chunk_size: int = 1000) -> list[Unit]:
    """Units of at most ``chunk_size`` records (one per brat document) over the input files."""
    if chunk_size < 1:
        raise RelextError(f"--chunk-size must be at least 1, got {chunk_size}")
    return [unit for path, corpus in input_files(spec, fmt)
            for unit in file_units("predict", corpus, path, chunk_size)]
