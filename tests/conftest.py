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
            "chinese_literature/ (relext-download fetches them)"
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

    from relext_ray.cluster.connect import init_ray

    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory, ray_session) -> Path:
    """A model trained (one epoch) on the bundled sample corpus, without an entity tagger: its
    checkpoint directory."""
    from relext_ray.config import load_experiment
    from relext_ray.corpus.sample import SAMPLE_DIR
    from relext_ray.training.run import run

    tmp = tmp_path_factory.mktemp("sample_model")
    cfg = load_experiment(ROOT / "tune_configs" / "demo.yaml", [
        f"data.data_dir={SAMPLE_DIR}", f"data.prepared_dir={tmp / 'prepared'}",
        f"train.checkpoint_dir={tmp / 'ckpt'}", "train.epochs=1", "tracking.enabled=false",
        "tagger.enabled=false"])  # (tests/test_raw_text.py trains one with its tagger)
    return run(cfg).checkpoint


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on loopback with its own SQLite store and artifact folder."""
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = open(root / "server.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(
        [exe, "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT,
        # Tracking only: the server's background job runners are not needed here.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
