"""Where a corpus's splits live on disk, and the units of work that Ray Data reads in parallel.

A unit is a slice of one file (records ``[start, stop)``) or one brat document; its reading is a
pure function, so a unit can run anywhere and the result never depends on how units are grouped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from relext_ray.corpus.brat import DEFAULT_OPTIONS, BratOptions, read_brat
from relext_ray.corpus.conll04 import load_records, read_conll04
from relext_ray.corpus.jsonl import count_lines, read_jsonl
from relext_ray.corpus.records import ReadResult
from relext_ray.corpus.text import Tokenization, read_text, text_units
from relext_ray.errors import RelextError
from relext_ray.registry import CORPORA

SPLITS = ("train", "dev", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
    "testing": "test",
}
_SUFFIX = {"conll04": ".json", "jsonl": ".jsonl"}


@dataclass(frozen=True)
class Unit:
    split: str
    corpus: str
    path: str
    start: int = 0
    stop: int | None = None


def _split_of(name: str) -> str | None:
    """``conll04_train`` / ``train`` / ``Training`` → ``train``."""
    low = name.lower()
    return SPLIT_ALIASES.get(low) or SPLIT_ALIASES.get(low.rsplit("_", 1)[-1])


def discover(corpus: str, data_dir: str | Path) -> dict[str, list[Path]]:
    """Files of each split, train first; raise a one-line ``RelextError`` when none fit."""
    if corpus not in CORPORA:
        raise RelextError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    # Absolute: Ray workers on a cluster do not share the driver's working directory.
    root = Path(data_dir).resolve()
    if not root.is_dir():
        raise RelextError(f"data directory not found: {data_dir}")
    found: dict[str, list[Path]] = {}
    if corpus == "brat":
        if (root / "relation_extraction").is_dir():
            root = root / "relation_extraction"
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            split = _split_of(sub.name)
            if split:
                found.setdefault(split, []).extend(sorted(sub.glob("*.txt")))
        expected = "sub-directories Training/Validation/Testing (or train/dev/test) of .txt/.ann files"
    else:
        suffix = _SUFFIX[corpus]
        for path in sorted(root.glob(f"*{suffix}")):
            split = _split_of(path.stem)
            if split:
                found.setdefault(split, []).append(path)
        expected = f"files <name>_train{suffix}, <name>_dev{suffix}, <name>_test{suffix}"
    if not found.get("train"):
        raise RelextError(f"no training split for corpus {corpus!r} in {root}: expected {expected}")
    return {s: found[s] for s in SPLITS if s in found}


def plan_units(corpus: str, data_dir: str | Path, chunk_size: int = 256) -> list[Unit]:
    """Cut every split into units of at most ``chunk_size`` records (one per brat document)."""
    return [unit for split, paths in discover(corpus, data_dir).items() for path in paths
            for unit in file_units(split, corpus, path, chunk_size)]


def file_units(split: str, corpus: str, path: str | Path, chunk_size: int) -> list[Unit]:
    """One file's units: slices of ``chunk_size`` records, or the whole brat document."""
    if corpus == "brat":
        return [Unit(split, corpus, str(path))]
    if corpus == "text":
        return [Unit(split, corpus, str(path), a, b) for a, b in text_units(path, chunk_size)]
    if corpus == "conll04":
        records = load_records(path)
        n = len(records) if isinstance(records, list) else 1
    else:
        n = count_lines(path)
    return [Unit(split, corpus, str(path), start, start + chunk_size)
            for start in range(0, max(n, 1), chunk_size)]


def read_unit(unit: Unit, brat: BratOptions = DEFAULT_OPTIONS,
              tokenization: Tokenization = "words") -> ReadResult:
    """A unit's sentences and rejects; raw text (``.txt`` without ``.ann``, JSONL ``text``)
    is cut into tokens by ``tokenization``."""
    if unit.corpus == "conll04":
        result = read_conll04(unit.path, unit.start, unit.stop)
    elif unit.corpus == "jsonl":
        result = read_jsonl(unit.path, unit.start, unit.stop, tokenization)
    elif unit.corpus == "text":
        result = read_text(unit.path, unit.start, unit.stop, tokenization)
    else:
        result = read_brat(unit.path, brat)
    result.rejects = [replace(r, split=unit.split) for r in result.rejects]
    return result
