"""Shared fixtures: the real corpora (skipped with a reason when absent) and a real Ray cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RELEXT_DATA_DIR", ROOT.parent / "shared" / "data"))


def _corpus(sub: str) -> Path:
    path = DATA_DIR / sub
    if not path.is_dir():
        pytest.skip(
            f"real corpus not found at {path}: put the shared corpora in ../shared/data beside "
            "the repository, or set RELEXT_DATA_DIR to the folder holding conll04/ and "
            "chinese_literature/ (python -m relext_ray.corpus.download fetches them)"
        )
    return path


@pytest.fixture(scope="session")
def conll04_dir() -> Path:
    return _corpus("conll04")


@pytest.fixture(scope="session")
def chinese_literature_dir() -> Path:
    return _corpus("chinese_literature")


@pytest.fixture(scope="session")
def ray_session():
    """A Ray cluster for the whole session: the one in RAY_ADDRESS (CI, ``make test``), else local."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from relext_ray.cluster import init_ray

    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
