"""Seeds averaged into one model: the scores it computes, the checkpoint, predict, MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from relext_ray.corpus.jsonl import read_jsonl
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import RelextError
from tests.test_train import demo_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, ray_session) -> list[Path]:
    """Two seeds of the demo model on one prepared corpus, and one of another configuration."""
    from relext_ray.training.run import run

    tmp = tmp_path_factory.mktemp("seeds")
    out = []
    for seed, extra in ((1, ()), (2, ()), (3, ("model.use_tag=false",))):
        cfg = demo_config(tmp, f"train.seed={seed}", f"train.checkpoint_dir={tmp / f's{seed}'}",
                          *extra)
        out.append(run(cfg).checkpoint)
    return out


def test_an_ensemble_averages_its_members_shifted_scores_and_predicts_like_a_model(
        seeds, tmp_path, mlflow_server, monkeypatch, capsys):
    from relext_ray.cli.ensemble import main
    from relext_ray.data.prepared import PreparedData
    from relext_ray.prediction.predictor import Predictor
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.evaluate import decision_matrix, scores_at
    from relext_ray.training.metrics import best_threshold, scores_from_confusion

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    out = tmp_path / "ensemble"
    members = seeds[:2]
    assert main(["--model", str(members[0]), "--model", str(members[1]),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ensemble of 2" in printed and "member 2 (seed 2)" in printed

    # The ensemble's scores, recomputed from the members alone.
    ck = load_checkpoint(out)
    data = PreparedData.load(ck.config.prepared_dir, splits=("dev", "test"))
    dev, test = data.splits["dev"], data.splits["test"]
    labels = ck.meta["labels"]
    shifted = {"dev": [], "test": []}
    for m in members:
        member = load_checkpoint(m)
        d = decision_matrix(member.model, member.config, dev, data.max_distance, CPU)
        t = decision_matrix(member.model, member.config, test, data.max_distance, CPU)
        theta, _ = best_threshold(dev.labels, d, labels, data.missed_positives("dev"))
        shifted["dev"].append(d - theta)
        shifted["test"].append(t - theta)
    expected = np.mean(shifted["test"], axis=0)
    got = decision_matrix(ck.model, ck.config, test, data.max_distance, CPU)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    theta, _ = best_threshold(dev.labels, np.mean(shifted["dev"], axis=0), labels,
                              data.missed_positives("dev"))
    assert ck.meta["theta"] == pytest.approx(theta)
    assert ck.meta["ensemble"]["members"] == 2 and ck.meta["ensemble"]["seeds"] == [1, 2]
    test_scores = scores_at(got, test, ck.meta["theta"], labels, data.missed_positives("test"))

    # predict reads it as any checkpoint: the same test F1 through the prediction path
    sentences = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences
    scored = Predictor.load(out).score(sentences)
    via_predict = scores_from_confusion(scored.confusion, labels, scored.filtered_positives)
    assert via_predict.f1 == pytest.approx(test_scores.f1)

    # the MLflow run: sources, the members' scores, the ensemble's, and a loadable model
    client = mlflow.MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name(ck.config.tracking.experiment
                                                             or f"relext-{ck.config.name}")
                               .experiment_id], "tags.job = 'ensemble'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["test_f1"] == pytest.approx(test_scores.f1)
    assert {"member1_test_f1", "member2_test_f1", "member_test_f1_mean"} <= set(run.data.metrics)
    assert str(members[1]) in run.data.params["members"]
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    rows = model.predict([s.to_dict() for s in sentences[:5]])
    assert len(rows) > 0


def test_members_that_cannot_be_averaged_are_refused(seeds, tmp_path):
    from relext_ray.training.ensemble import build_ensemble

    with pytest.raises(RelextError, match="another model configuration"):
        build_ensemble([seeds[0], seeds[2]], tmp_path / "e")
    with pytest.raises(RelextError, match="at least two"):
        build_ensemble([seeds[0]], tmp_path / "e")
    assert not (tmp_path / "e").exists()
