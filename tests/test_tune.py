"""The search: config validation, and the smoke search submitted as a Ray job, read back from a
real MLflow tracking server through its REST API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from relext_ray.config import load_search
from relext_ray.corpus.jsonl import read_jsonl
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import RelextError
from relext_ray.prediction.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tune_configs" / "smoke.yaml"


def test_smoke_config_is_valid():
    cfg = load_search(SMOKE)
    assert cfg.experiment.train.epochs == 3
    assert set(cfg.search.space) >= {"loss.m_pos", "loss.m_neg", "loss.gamma", "loss.theta",
                                     "loss.alpha", "loss.beta"}
    assert cfg.search.scheduler.type == "asha"


def _with_space(tmp_path: Path, key: str, dist: dict) -> Path:
    tree = yaml.safe_load(SMOKE.read_text())
    tree["base"] = str(SMOKE.parent / tree["base"])
    tree["search"]["space"][key] = dist
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.mark.parametrize(("key", "dist", "message"), [
    ("loss.m_plus", {"type": "uniform", "low": 0, "high": 1}, "is not a config value"),
    ("loss.gamma", {"type": "loguniform", "low": 0, "high": 1}, "loguniform needs low > 0"),
    ("loss.alpha", {"type": "uniform", "low": 2, "high": 1}, "uniform needs low < high"),
    ("model.use_tag", {"type": "choice", "values": []}, "non-empty"),
])
def test_bad_search_spaces_are_named(tmp_path, key, dist, message):
    with pytest.raises(RelextError, match=message):
        load_search(_with_space(tmp_path, key, dist))


@pytest.mark.parametrize(("override", "message"), [
    ("search.resources_per_trial.gpu=-1", r"search\.resources_per_trial\.gpu"),
    ("search.max_concurent=2", r"search\.max_concurent: Extra inputs are not permitted"),
])
def test_bad_search_settings_are_named(override, message):
    with pytest.raises(RelextError, match=message):
        load_search(SMOKE, [override])


def _tagger_search(tmp_path: Path, space: dict | None = None) -> Path:
    """A tagger search on the sample corpus (the demo config), written beside the test."""
    tree = {"name": "tagger_smoke", "base": str(ROOT / "tune_configs" / "demo.yaml"),
            "overrides": ["tagger.epochs=4", "tagger.patience=4", "tagger.word_dim=16",
                          "train.epochs=2", "tracking.experiment=relext-tagger-search-test"],
            "search": {"task": "tagger", "space": space or {
                "tagger.hidden": {"type": "choice", "values": [8, 32]},
                "tagger.lr": {"type": "loguniform", "low": 0.002, "high": 0.02}},
                "num_samples": 3, "max_concurrent": 2,
                "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},
                "resources_per_trial": {"cpu": 1, "gpu": 0}}}
    path = tmp_path / "tagger_search.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_a_search_task_and_its_space_must_agree(tmp_path):
    cfg = load_search(ROOT / "tune_configs" / "conll04_tagger_search.yaml")
    assert cfg.search.task == "tagger" and cfg.schedule == (50, 8)
    assert load_search(SMOKE).schedule == (3, 3)  # a relation search: train.epochs/patience
    with pytest.raises(RelextError, match=r"'tagger' trains the tagger alone.*loss\.m_pos"):
        load_search(_tagger_search(tmp_path, {
            "tagger.hidden": {"type": "choice", "values": [8]},
            "loss.m_pos": {"type": "uniform", "low": 1, "high": 2}}))
    with pytest.raises(RelextError, match="relation trials do not train the tagger"):
        load_search(_with_space(tmp_path, "tagger.hidden", {"type": "choice", "values": [8]}))


@pytest.mark.slow
def test_a_tagger_search_ranks_trials_by_dev_entity_f1(tmp_path, mlflow_server):
    """``search.task: tagger`` on a real Ray cluster: trials train the tagger alone, report dev
    entity F1 each epoch under the search's names, and the final run trains the relation model
    with the best tagger values, both in the registered checkpoint."""
    if not os.environ.get("RAY_ADDRESS"):
        pytest.skip("no shared Ray head: run through `make test` (it starts one)")
    res = subprocess.run(
        [sys.executable, "jobs/tune.py", "--config", str(_tagger_search(tmp_path)),
         "--set", f"search.storage_path={tmp_path / 'tune'}",
         "--set", f"experiment.data.prepared_dir={tmp_path / 'prepared'}",
         "--set", f"experiment.train.checkpoint_dir={tmp_path / 'best'}"],
        cwd=ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server},
        capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    runs = _runs(mlflow_server, "relext-tagger-search-test")
    parent = next(r for r in runs if r["info"]["run_name"] == "search-tagger_smoke")
    params = {p["key"]: p["value"] for p in parent["data"]["params"]}
    assert params["search.task"] == "tagger"
    trials = [r for r in runs if r["info"]["run_name"].startswith("trial_")]
    assert len(trials) == 3 and all(r["info"]["status"] == "FINISHED" for r in trials)
    for r in trials:
        rid = r["info"]["run_id"]
        hist = {k: [m["value"] for m in sorted(
            _get(mlflow_server, "metrics/get-history", run_id=rid,
                 metric_key=k).get("metrics", []), key=lambda m: m["step"])]
            for k in ("dev_f1", "best_dev_f1")}
        assert hist["dev_f1"] and 0.0 <= min(hist["dev_f1"]) <= max(hist["dev_f1"]) <= 1.0
        assert hist["best_dev_f1"][-1] == pytest.approx(max(hist["dev_f1"]))
        assert "loss_class" not in {m["key"] for m in r["data"]["metrics"]}  # no relation fit
    best = next(r for r in runs if r["info"]["run_name"] == "best-tagger_smoke")
    best_metrics = {m["key"]: m["value"] for m in best["data"]["metrics"]}
    assert {"tagger_test_f1", "test_f1"} <= set(best_metrics)
    spec = json.loads((tmp_path / "best" / "tagger.json").read_text())
    assert str(spec["config"]["hidden"]) == _tags(parent)["best.tagger.hidden"]
    assert (tmp_path / "best" / "model.pt").exists()


def test_fractional_gpus_are_accepted():
    assert load_search(SMOKE, ["search.resources_per_trial.gpu=0.25"]) \
        .search.resources_per_trial.gpu == 0.25


def _get(base: str, path: str, **params) -> dict:
    url = f"{base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_smoke_search_as_a_ray_job(tmp_path, mlflow_server, monkeypatch):
    dashboard = os.environ.get("RAY_DASHBOARD_ADDRESS")
    if not dashboard:
        pytest.skip("no Ray head with a job server: run through `make test` (it starts one)")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    runtime_env = json.dumps({"env_vars": {"MLFLOW_TRACKING_URI": mlflow_server,
                                           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}})
    res = subprocess.run(
        [ray_cli, "job", "submit", "--address", dashboard, "--working-dir", str(ROOT),
         "--runtime-env-json", runtime_env, "--",
         "python", "jobs/tune.py", "--config", "tune_configs/smoke.yaml",
         "--set", f"search.storage_path={tmp_path / 'tune'}",
         "--set", f"experiment.data.prepared_dir={tmp_path / 'prepared'}",
         "--set", f"experiment.train.checkpoint_dir={tmp_path / 'best'}",
         "--set", "search.register_as=relext-smoke-test"],
        capture_output=True, text=True, timeout=900,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]

    exp = _get(mlflow_server, "experiments/get-by-name", experiment_name="relext-smoke")
    exp_id = exp["experiment"]["experiment_id"]
    tags = {t["key"]: t["value"] for t in exp["experiment"].get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    runs = _post(mlflow_server, "runs/search", {"experiment_ids": [exp_id],
                                                "max_results": 100})["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    parent = by_name["search-smoke"]
    pid = parent["info"]["run_id"]

    def parent_of(r):
        return {t["key"]: t["value"] for t in r["data"].get("tags", [])}.get("mlflow.parentRunId")

    children = [r for r in runs if parent_of(r) == pid]
    trials = [r for r in children if r["info"]["run_name"].startswith("trial_")]
    assert len(trials) == 4
    assert all(r["info"]["status"] == "FINISHED" for r in trials)
    assert any(r["info"]["run_name"] == "best-smoke" for r in children)
    for r in trials:
        rtags = {t["key"]: t["value"] for t in r["data"]["tags"]}
        assert rtags["stop_reason"] in ("completed", "early_stopping", "stopped_by_scheduler")
        assert {m["key"] for m in r["data"]["metrics"]} >= {"dev_f1", "best_dev_f1", "loss"}
    versions = _get(mlflow_server, "registered-models/get", name="relext-smoke-test")
    assert versions["registered_model"]["latest_versions"]
    aliases = {a["alias"]: a["version"] for a in versions["registered_model"].get("aliases", [])}
    assert aliases.get("champion") == "1", versions

    import mlflow

    from relext_ray.tracking.runs import predict_tracked as predict

    mlflow.set_tracking_uri(mlflow_server)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    summary = predict(str(SAMPLE_DIR / "sample_test.jsonl"), "models:/relext-smoke-test/1",
                      tmp_path / "predictions", progress=False, track=False)
    assert summary["pairs_scored"] > 0 and summary["metrics"]["f1"] > 0

    # The usage line as written: no model, no output named.
    from relext_ray.cli.predict import main

    monkeypatch.chdir(tmp_path)
    assert main(["--input", str(SAMPLE_DIR / "sample_test.jsonl"), "--no-progress",
                 "--no-tracking"]) == 0
    used = json.loads((tmp_path / "predictions" / "sample_test" / "summary.json").read_text())
    assert used["model"].endswith("@champion") and used["pairs_scored"] > 0

    model = mlflow.pyfunc.load_model("models:/relext-smoke-test/1")
    sentences = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences[:8]
    out = model.predict([s.to_dict() for s in sentences])
    # the registered model is the retrained best configuration, saved in the checkpoint dir
    expected, _ = Predictor.load(tmp_path / "best").predict(sentences)
    assert len(out) == len(expected) > 0
    assert list(out["relation"]) == [r["relation"] for r in expected]
    assert list(out["score"]) == pytest.approx([r["score"] for r in expected], abs=1e-5)


def _runs(base: str, experiment: str) -> list[dict]:
    exp_id = _get(base, "experiments/get-by-name",
                  experiment_name=experiment)["experiment"]["experiment_id"]
    return _post(base, "runs/search", {"experiment_ids": [exp_id], "max_results": 200}).get("runs", [])


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _steps(base: str, run: dict, key: str = "dev_f1") -> list[int]:
    history = _get(base, "metrics/get-history", run_id=run["info"]["run_id"], metric_key=key)
    return sorted(int(m["step"]) for m in history.get("metrics", []))


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"])
def test_a_killed_search_resumes_without_rerunning_finished_trials(tmp_path, mlflow_server, stop):
    """Stop the search driver once two trials have finished, then ``--resume``. SIGKILL: the
    driver dies at once. SIGINT (Ctrl-C): Tune stops its trials and the driver exits with an
    error saying how to continue, without retraining, registering or reporting a best."""
    import signal
    import time

    if not os.environ.get("RAY_ADDRESS"):
        pytest.skip("no shared Ray head: run through `make test` (it starts one)")
    experiment, samples = f"relext-resume-test-{stop}", 4
    args = [sys.executable, "jobs/tune.py", "--config", "tune_configs/smoke.yaml",
            "--set", f"search.storage_path={tmp_path / 'tune'}",
            "--set", f"search.num_samples={samples}", "--set", "search.max_concurrent=1",
            "--set", f"experiment.data.prepared_dir={tmp_path / 'prepared'}",
            "--set", f"experiment.train.checkpoint_dir={tmp_path / 'best'}",
            "--set", f"experiment.tracking.experiment={experiment}",
            "--set", f"search.register_as=relext-resume-test-{stop}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115
    driver = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def trials() -> list[dict]:
        try:
            runs = _runs(mlflow_server, experiment)
        except OSError:
            return []
        return [r for r in runs if r["info"]["run_name"].startswith("trial_")]

    deadline = time.time() + 600
    finished: list[dict] = []
    while time.time() < deadline and driver.poll() is None:
        finished = [r for r in trials() if r["info"]["status"] == "FINISHED"]
        if len(finished) >= 2:
            driver.send_signal(getattr(signal, stop))
            break
        time.sleep(0.3)
    driver.wait(timeout=180)
    log.close()
    first = (tmp_path / "first.log").read_text()
    if stop == "SIGKILL":
        assert driver.returncode == -signal.SIGKILL, first[-3000:]
    else:
        assert driver.returncode == 2 and "continue it with --resume" in first, first[-3000:]
        assert not [r for r in _runs(mlflow_server, experiment)
                    if r["info"]["run_name"] == "best-smoke"], "a stopped search retrained"
    assert 2 <= len(finished) < samples
    before = {_tags(r)["trial_id"]: _steps(mlflow_server, r) for r in finished}

    res = subprocess.run([*args, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "resuming the search" in res.stdout

    runs = _runs(mlflow_server, experiment)
    parents = [r for r in runs if r["info"]["run_name"] == "search-smoke"]
    assert len(parents) == 1, "the parent run is continued, not duplicated"
    parent = parents[0]
    assert parent["info"]["status"] == "FINISHED" and _tags(parent)["resumed"] == "1"
    children = [r for r in runs if _tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    trial_runs = [r for r in children if r["info"]["run_name"].startswith("trial_")]
    ids = [_tags(r)["trial_id"] for r in trial_runs]
    assert len(ids) == len(set(ids)) == samples
    assert all(r["info"]["status"] == "FINISHED" for r in trial_runs)
    assert any(r["info"]["run_name"] == "best-smoke" for r in children)
    for r in trial_runs:
        steps = _steps(mlflow_server, r)
        assert steps == list(range(1, len(steps) + 1)), f"an epoch ran twice: {steps}"
        tid = _tags(r)["trial_id"]
        if tid in before:
            # Its epochs are kept, never trained again. (A stop decided in the last moments
            # before the kill may not be in Tune's saved state; such a trial continues from
            # its last checkpoint.)
            assert steps[:len(before[tid])] == before[tid], "a finished trial was run again"

    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(tmp_path / "tune" / "smoke"))
    assert len(analysis.trials) == samples
    assert {t.trial_id for t in analysis.trials} == set(ids)
    _check_study(tmp_path / "tune" / "smoke", set(ids))


def _check_study(search_dir: Path, trial_ids: set[str]) -> None:
    """The exported Optuna study holds each trial of the search once, finished."""
    import optuna

    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{search_dir / 'optuna.db'}")
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    assert sorted(t.user_attrs["tune_trial_id"] for t in study.trials) == sorted(trial_ids)


def test_resume_and_overwrite_are_checked(tmp_path):
    from relext_ray.search.tuner import search

    cfg = load_search(SMOKE, [f"search.storage_path={tmp_path}"])
    with pytest.raises(RelextError, match="nothing to resume"):
        search(cfg, resume=True)
    (tmp_path / "smoke").mkdir()
    with pytest.raises(RelextError, match=r"already exists.*--resume.*--overwrite"):
        search(cfg)


def test_trials_request_the_configured_cpus_and_fractional_gpus():
    """No GPU here: check what each trial asks Ray for (its placement-group bundle)."""
    from relext_ray.search.space import tune_space
    from relext_ray.search.trainable import make_trainable

    cfg = load_search(SMOKE, ["search.resources_per_trial.gpu=0.25",
                              "search.resources_per_trial.cpu=2"])
    trainable = make_trainable({}, cfg.search)
    assert trainable._resources.bundles == [{"CPU": 2.0, "GPU": 0.25}]
    space = tune_space(cfg.search.space)
    assert set(space) == set(cfg.search.space)
    assert space["model.use_tag"].categories == [True, False]
    assert (space["loss.gamma"].lower, space["loss.gamma"].upper) == (0.5, 4.0)
