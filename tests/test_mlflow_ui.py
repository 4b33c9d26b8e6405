"""The MLflow UI as people review a search: a real ``mlflow server`` on loopback, pages rendered
by headless Chromium (JavaScript run, DOM read back), after a real search logged to it.

Checked: the experiment's training-runs view lists the search's parent run and its nested trial
runs; a trial's run page charts its per-epoch ``dev_f1``; the retrained best run's artifacts
hold the confusion matrix. Chromium may only resolve 127.0.0.1 (every other host name fails),
and its background services are off, so no other address is contacted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from relext_ray.corpus.sample import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium to render the MLflow UI: "
                       "`apt-get install chromium` (CI installs it)"),
]
LOOPBACK_ONLY = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1600,1000",
]
# Every frame runs layout and paint before it is drawn, so the observers that the UI waits on
# (its chart grid renders the cards in view once it has measured itself) fire within virtual
# time. Without it about half of fresh renders of a run's model-metrics page came back with the
# section but no charts, whatever the budget (20 s and 60 s alike).
RENDER_EVERY_FRAME = ["--run-all-compositor-stages-before-draw"]


def render(url: str, profile: Path, screenshot: Path | None = None,
           budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    args = [CHROMIUM, *LOOPBACK_ONLY, *RENDER_EVERY_FRAME, f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}"]
    res = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    if screenshot is not None:
        subprocess.run([*args, f"--screenshot={screenshot}", url], capture_output=True,
                       timeout=180, check=True)
    return res.stdout


def visible(page: str) -> str:
    """The page's text without its markup and inline images: what a failed check shows."""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))[:3000]


def _api(base: str, path: str, body: dict | None = None, **query: str) -> dict:
    url = f"{base}/api/2.0/mlflow/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_the_ui_shows_a_search_its_trials_their_curves_and_the_confusion_matrix(
        tmp_path, mlflow_server, ray_session, monkeypatch):
    from relext_ray.config import load_search
    from relext_ray.search.tuner import search

    experiment = "relext-ui-check"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    search(load_search(ROOT / "tune_configs" / "smoke.yaml", [
        f"experiment.data.data_dir={SAMPLE_DIR}",
        f"experiment.data.prepared_dir={tmp_path / 'prepared'}",
        f"experiment.train.checkpoint_dir={tmp_path / 'best'}",
        f"experiment.tracking.experiment={experiment}",
        "experiment.train.epochs=2", "search.num_samples=2",
        f"search.storage_path={tmp_path / 'tune'}", "search.register_as=relext-ui-check"]))

    exp_id = _api(mlflow_server, "experiments/get-by-name",
                  experiment_name=experiment)["experiment"]["experiment_id"]
    runs = _api(mlflow_server, "runs/search", {"experiment_ids": [exp_id]})["runs"]
    by_name = {r["info"]["run_name"]: r["info"]["run_id"] for r in runs}
    trials = sorted(n for n in by_name if n.startswith("trial_"))
    assert "search-smoke" in by_name and "best-smoke" in by_name and len(trials) == 2
    profile = tmp_path / "chromium"
    shots = Path(os.environ.get("RELEXT_UI_SCREENSHOTS", tmp_path / "screens"))
    shots.mkdir(parents=True, exist_ok=True)
    view = "?workflowType=machine_learning"  # the training-runs view, not the GenAI one
    run_page = f"{mlflow_server}/#/experiments/{exp_id}/runs"

    # The training-runs view: one top-level row, the parent, holding all four runs.
    page = render(f"{mlflow_server}/#/experiments/{exp_id}{view}", profile, shots / "runs.png")
    assert f'href="#/experiments/{exp_id}/runs/{by_name["search-smoke"]}"' in page, page[-3000:]
    text = re.sub(r"<[^>]+>", "", page)
    assert re.search(r"\b4\s*matching runs", text), "the runs view does not count all four runs"
    assert not any(name in page for name in trials), "trial runs are not nested under the parent"

    # A trial's run page names its parent, and charts its per-epoch dev F1.
    trial_id = by_name[trials[0]]
    page = render(f"{run_page}/{trial_id}{view}", profile)
    assert "Parent run" in page and f'runs/{by_name["search-smoke"]}"' in page, page[-3000:]
    page = render(f"{run_page}/{trial_id}/model-metrics{view}", profile, shots / "trial.png")
    assert trials[0] in page and "dev_f1" in page and 'class="main-svg"' in page, (
        [trials[0] in page, "dev_f1" in page, 'class="main-svg"' in page], visible(page))

    # The retrained best run: the confusion matrix among its artifacts, the image loaded.
    page = render(f"{run_page}/{by_name['best-smoke']}/artifacts/test_confusion.png{view}",
                  profile, shots / "artifacts.png")
    assert re.search(r'<img alt="test_confusion\.png" src="blob:', page), page[-3000:]
    assert all((shots / f).stat().st_size > 10_000 for f in ("runs.png", "trial.png",
                                                             "artifacts.png"))
