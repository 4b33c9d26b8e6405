"""What batch prediction reads: the files behind ``--input`` and their units of work."""

from __future__ import annotations

import glob
from pathlib import Path

from relext_ray.corpus.conll04 import load_records
from relext_ray.corpus.jsonl import count_lines
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


# The automatic unit size: up to this many records, and small enough that every replica gets
# several units, so that no replica idles while another finishes a large last unit.
MAX_CHUNK, MIN_CHUNK, UNITS_PER_REPLICA = 1000, 50, 8


def record_count(path: Path, corpus: str) -> int:
    """Records in one input file (brat: one document)."""
    if corpus == "brat":
        return 1
    if corpus == "conll04":
        records = load_records(path)
        return len(records) if isinstance(records, list) else 1
    return count_lines(path)


def auto_chunk(files: list[tuple[Path, str]], replicas: int) -> int:
    """Records per unit: ``UNITS_PER_REPLICA`` units per replica over the whole input, within
    [``MIN_CHUNK``, ``MAX_CHUNK``]."""
    total = sum(record_count(p, c) for p, c in files)
    return max(MIN_CHUNK, min(MAX_CHUNK, -(-total // (UNITS_PER_REPLICA * max(replicas, 1)))))


def plan_input(spec: str | Path, fmt: str | None = None, chunk_size: int | None = None,
               replicas: int = 1) -> tuple[list[Unit], int]:
    """Units of at most ``chunk_size`` records (one per brat document) over the input files,
    and the chunk size used (``None``: ``auto_chunk`` for ``replicas``)."""
    if chunk_size is not None and chunk_size < 1:
        raise RelextError(f"--chunk-size must be at least 1, got {chunk_size}")
    files = input_files(spec, fmt)
    size = chunk_size or auto_chunk(files, replicas)
    return [unit for path, corpus in files
            for unit in file_units("predict", corpus, path, size)], size
