"""A training run tracked on a real MLflow tracking server on loopback."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.tracking.runs import EXPERIMENT_KIND_TAG, TRAINING_KIND
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
