"""``ray job submit`` of the prepare job against the real head (CI and ``make test`` start one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_prepare_as_a_ray_job(tmp_path):
    dashboard = os.environ.get("RAY_DASHBOARD_ADDRESS")
    if not dashboard:
        pytest.skip("no Ray head with a job server: run through `make test` (it starts one) "
                    "or set RAY_DASHBOARD_ADDRESS=http://127.0.0.1:<dashboard port>")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    out = tmp_path / "jobout"
    res = subprocess.run(
        [ray_cli, "job", "submit", "--address", dashboard, "--working-dir", str(ROOT), "--",
         "python", "jobs/prepare.py", "--corpus", "jsonl", "--data-dir", "relext_ray/corpus/sample_data",
         "--out", str(out), "--mode", "ordered"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "succeeded" in res.stdout + res.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["train"]["sentences"] == 400
    assert list((out / "train" / "sentences").glob("*.parquet"))
    assert list((out / "train" / "pairs").glob("*.parquet"))
