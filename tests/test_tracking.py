"""A training run tracked on a real MLflow tracking server on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import RelextError
from relext_ray.tracking.runs import EXPERIMENT_KIND_TAG, TRAINING_KIND
from tests.test_prepare import wait_until_all_print
from tests.test_train import demo_config


@pytest.mark.usefixtures("ray_session")
def test_run_on_a_tracking_server(tmp_path, mlflow_server, monkeypatch):
    from relext_ray.corpus.jsonl import read_jsonl
    from relext_ray.tracking.runs import run_tracked

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    cfg = demo_config(tmp_path, "tracking.enabled=true", "tracking.experiment=relext-test",
                      "tracking.register_as=relext-demo-test")
    result, run_id, model_uri = run_tracked(cfg, run_name="tracked")
    assert run_id and model_uri

    mlflow.set_tracking_uri(mlflow_server)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("relext-test")
    assert exp.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    r = client.get_run(run_id)
    assert r.data.params["loss.m_pos"] == "2.5" and r.data.params["model.use_tag"] == "True"
    assert r.data.metrics["test_f1"] == pytest.approx(result.test.f1)
    history = client.get_metric_history(run_id, "dev_f1")
    assert [m.step for m in history] == [1, 2]
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "stats.json", "test_confusion.png", "test_pr_curve.png",
            "test_per_class.md", "test_scores.json"} <= names

    assert model_uri == "models:/relext-demo-test/1"
    # A model from code: loading runs the stored pyfunc.py, and there is nothing to unpickle.
    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    assert (local / "pyfunc.py").is_file() and not list(local.rglob("*.pkl"))
    assert "mlflow.pyfunc.loaders.code_model" in (local / "MLmodel").read_text()

    sentences = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences[:5]
    records = [s.to_dict() for s in sentences]
    for uri in (f"runs:/{run_id}/model", "models:/relext-demo-test/1"):
        model = mlflow.pyfunc.load_model(uri)
        out = model.predict(records)
        assert len(out) > 0 and set(out["sentence_id"]) <= {s.id for s in sentences}
        assert {"head_text", "tail_text", "relation", "score"} <= set(out.columns)


def test_ui_link_opens_the_training_view():
    from relext_ray.tracking.runs import ui_link

    assert ui_link("http://127.0.0.1:5000/", "7") == \
        "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"


class _Killed(Exception):
    """Stands for the process dying right after an epoch's state reached the disk."""


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("kill_at", [("relation", 2), ("tagger", 1)])
def test_a_stopped_run_resumed_ends_as_an_uninterrupted_one(tmp_path, mlflow_server, capsys,
                                                             monkeypatch, kill_at):
    """``relext-train --resume``: the same scores, weights and tagger as a run that never
    stopped, in the same MLflow run, each epoch logged once; the progress is cleared at the end."""
    from relext_ray.tracking.runs import run_tracked
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.progress import RunProgress

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    settings = ("tracking.enabled=true", "tracking.experiment=relext-resume-test",
                "train.epochs=3", "train.patience=3", "tagger.enabled=true", "tagger.epochs=2",
                "tagger.patience=2")
    straight_cfg = demo_config(tmp_path / "straight", *settings)
    straight, _, _ = run_tracked(straight_cfg, progress=None)

    cfg = demo_config(tmp_path / "stopped", *settings)
    part, epoch = kill_at

    class DiesAfter(RunProgress):
        def saver(self, which):
            keep = super().saver(which)

            def save_then_die(metrics, state):
                keep(metrics, state)
                if which == part and state.epoch == epoch:
                    raise _Killed

            return save_then_die

    progress = DiesAfter(RunProgress.of(cfg).path)
    assert not progress.start(cfg, resume=True)  # nothing saved yet: a fresh start
    with pytest.raises(_Killed):
        run_tracked(cfg, progress=progress)
    first_run = progress.mlflow_run_id
    assert first_run and f"{part} after epoch {epoch}" in progress.describe()

    # A different config is refused, with the setting named.
    other = demo_config(tmp_path / "stopped", *settings, "loss.gamma=3.0")
    with pytest.raises(RelextError, match=r"loss\.gamma"):
        RunProgress.of(other).start(other, resume=True)

    # Without --resume a run starts afresh, and says what it discards.
    elsewhere = RunProgress(tmp_path / "copy.resume")
    shutil.copytree(progress.path, elsewhere.path)
    capsys.readouterr()
    assert not elsewhere.start(cfg, resume=False)
    note = capsys.readouterr().err
    assert f"{part} after epoch {epoch}" in note and "is discarded" in note
    assert elsewhere.describe() == "no epoch finished yet"

    resumed_progress = RunProgress.of(cfg)
    assert resumed_progress.start(cfg, resume=True)
    resumed, run_id, _ = run_tracked(cfg, progress=resumed_progress)
    assert run_id == first_run
    assert not resumed_progress.path.exists()

    def timeless(history):
        return [{k: v for k, v in h.items() if "seconds" not in k} for h in history]

    assert timeless(resumed.history) == timeless(straight.history)
    assert resumed.test.to_dict() == straight.test.to_dict()
    assert {k: v for k, v in resumed.train_counts.items() if "seconds" not in k} == \
        {k: v for k, v in straight.train_counts.items() if "seconds" not in k}
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a.model.state_dict().items():
        assert torch.equal(tensor, b.model.state_dict()[name]), name
    for name, tensor in a.tagger.model.state_dict().items():
        assert torch.equal(tensor, b.tagger.model.state_dict()[name]), name

    client = mlflow.MlflowClient(mlflow_server)
    assert [m.step for m in client.get_metric_history(run_id, "dev_f1")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "tagger_dev_f1")] == [1, 2]
    assert client.get_run(run_id).data.metrics["test_f1"] == pytest.approx(straight.test.f1)


_OPEN_STORE = """
from relext_ray.tracking.runs import experiment_id
print("EXPERIMENT", experiment_id("side-by-side"), flush=True)
"""


def test_runs_started_side_by_side_on_a_fresh_store_both_start(tmp_path):
    """Two runs that open a new local MLflow store at once take turns creating its tables
    (both creating them, one fails in the middle of a migration)."""
    from relext_ray.locks import exclusive

    db = tmp_path / "fresh.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    logs = [tmp_path / f"run{i}.err" for i in range(2)]
    with exclusive(db.with_name(db.name + ".lock"), "held by the test"):
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_STORE], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=log.open("w")) for log in logs]
        wait_until_all_print(procs, logs, "another process is opening the MLflow store")
        assert not db.exists()  # nobody got past the lock
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    ids = {line.split()[1] for o in outputs for line in o.splitlines() if line.startswith("EXPERIMENT")}
    assert len(ids) == 1  # the same experiment: created once, found by the other
