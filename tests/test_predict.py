"""Batch prediction on a real Ray cluster: complete and equal to the model called directly,
loadable from MLflow URIs, every bad record accounted for, and a killed replica survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from relext_ray.config import load_experiment
from relext_ray.corpus.conll04 import read_conll04
from relext_ray.corpus.jsonl import read_jsonl
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import RelextError

ROOT = Path(__file__).resolve().parents[1]
KEY = ("sentence_id", "head", "tail")


@pytest.fixture(scope="module")
def conll04_model(tmp_path_factory, conll04_dir, ray_session):
    """A small CoNLL04 model trained here (one epoch is enough to predict both ways)."""
    from relext_ray.training.run import run

    tmp = tmp_path_factory.mktemp("conll04_model")
    cfg = load_experiment(ROOT / "tune_configs" / "conll04.yaml", [
        f"data.data_dir={conll04_dir}", f"data.prepared_dir={tmp / 'prepared'}",
        f"train.checkpoint_dir={tmp / 'ckpt'}", "train.epochs=1", "model.word_dim=50",
        "tracking.enabled=false"])
    return run(cfg).checkpoint


def read_output(out: Path) -> list[dict]:
    files = sorted(out.glob("part-*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


def by_key(rows: list[dict]) -> dict[tuple, dict]:
    keyed = {tuple(r[k] for k in KEY): r for r in rows}
    assert len(keyed) == len(rows), "a pair appears more than once"
    return keyed


@pytest.mark.shared_data
def test_conll04_test_split_equals_the_model_called_directly(conll04_model, conll04_dir,
                                                             tmp_path):
    from relext_ray.prediction.predictor import Predictor
    from relext_ray.tracking.runs import predict_tracked as predict
    from relext_ray.training.metrics import scores_from_confusion

    path = conll04_dir / "conll04_test.json"
    summary = predict(str(path), str(conll04_model), tmp_path / "out", concurrency=2,
                      chunk_size=64, progress=False, track=False)
    rows = read_output(tmp_path / "out")

    sentences = read_conll04(path).sentences
    direct = Predictor.load(conll04_model).score(sentences)
    expected = direct.table.to_pylist()
    assert len(rows) == len(expected) == summary["pairs_scored"] > 0
    got, want = by_key(rows), by_key(expected)
    assert got.keys() == want.keys()
    for k, w in want.items():
        assert got[k]["relation"] == w["relation"]
        assert got[k]["score"] == pytest.approx(w["score"], abs=1e-5)
        assert got[k]["head_text"] == w["head_text"] and got[k]["tail_type"] == w["tail_type"]
    assert summary["pairs_filtered"] == direct.pairs_filtered > 0
    assert summary["sentences_read"] == summary["sentences_predicted"] == len(sentences)
    assert summary["sentences_rejected"] == 0
    counts = {}
    for r in rows:
        counts[r["relation"]] = counts.get(r["relation"], 0) + 1
    assert {k: v for k, v in summary["relations_predicted"].items() if v} == counts
    want_scores = scores_from_confusion(direct.confusion, direct_labels(conll04_model),
                                        direct.filtered_positives)
    assert summary["metrics"]["f1"] == pytest.approx(want_scores.f1)
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["pairs_scored"] == len(rows)


def direct_labels(checkpoint: Path) -> list[str]:
    return json.loads((checkpoint / "meta.json").read_text())["labels"]


def test_mlflow_uris_load_and_the_job_is_tracked(sample_model, mlflow_server, monkeypatch,
                                                 tmp_path):
    import mlflow

    from relext_ray.tracking.runs import experiment_id, log_model
    from relext_ray.tracking.runs import predict_tracked as predict

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    with mlflow.start_run(experiment_id=experiment_id("relext-predict-test")) as run:
        log_model(sample_model, register_as="relext-predict-test")
    source = str(SAMPLE_DIR / "sample_test.jsonl")
    local = predict(source, str(sample_model), tmp_path / "local", progress=False, track=False)
    reference = by_key(read_output(tmp_path / "local"))
    for i, uri in enumerate((f"runs:/{run.info.run_id}/model", "models:/relext-predict-test/1")):
        out = tmp_path / f"uri{i}"
        summary = predict(source, uri, out, progress=False, experiment="relext-predict-test")
        got = by_key(read_output(out))
        assert got.keys() == reference.keys()
        assert all(got[k]["relation"] == reference[k]["relation"] for k in got)
        tracked = mlflow.MlflowClient().get_run(summary["mlflow_run_id"])
        assert tracked.data.params["model"] == uri
        assert tracked.data.metrics["pairs_scored"] == local["pairs_scored"]
        assert "summary.json" in {a.path for a in
                                  mlflow.MlflowClient().list_artifacts(tracked.info.run_id)}


def test_bad_records_are_rejected_with_file_line_and_reason(sample_model, tmp_path):
    from relext_ray.tracking.runs import predict_tracked as predict

    good = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences[:3]
    lines = [b"\xef\xbb\xbf" + json.dumps(good[0].to_dict()).encode(),  # 1: after a BOM
             b'{"tokens": ["a", "b"], "entities": [',                      # 2: broken JSON
             b'\xff\xfe not utf-8',                                         # 3: not UTF-8
             json.dumps({"entities": []}).encode(),                        # 4: no tokens
             json.dumps({"tokens": ["a"], "entities": [
                 {"start": 0, "end": 5, "type": "Peop"}]}).encode(),       # 5: span past end
             b"",                                                           # blank: no record
             json.dumps(good[1].to_dict()).encode() + b"\r",                # CRLF line end
             json.dumps(good[2].to_dict()).encode()]
    crafted = tmp_path / "in" / "crafted.jsonl"
    crafted.parent.mkdir()
    crafted.write_bytes(b"\n".join(lines) + b"\n")
    summary = predict(str(tmp_path / "in"), str(sample_model), tmp_path / "out", chunk_size=3,
                      progress=False, track=False)
    assert (summary["sentences_read"], summary["sentences_predicted"],
            summary["sentences_rejected"], summary["blank_lines"]) == (7, 3, 4, 1)
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in rejects) == [2, 3, 4, 5]
    assert all(r["file"] == str(crafted.resolve()) for r in rejects)
    reasons = {r["line"]: (r["field"], r["reason"]) for r in rejects}
    assert "invalid JSON" in reasons[2][1] and "UTF-8" in reasons[3][1]
    assert reasons[4][0] == "tokens" and reasons[5][0].startswith("entities")
    rows = read_output(tmp_path / "out")
    assert {r["sentence_id"] for r in rows} == {s.id for s in good}
    assert len(rows) == summary["pairs_scored"]


def test_a_huge_record_ends_the_job_normally(sample_model, tmp_path):
    """20,000 tokens and 400 mentions (80,000+ pairs of kept types): rejected with the reason,
    the rest scored, the replica's peak memory reported."""
    from relext_ray.tracking.runs import predict_tracked as predict

    good = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences[:4]
    types = sorted({e.type for s in good for e in s.entities})
    huge = {"id": "huge", "tokens": [f"w{i % 97}" for i in range(20_000)],
            "entities": [{"start": 50 * k, "end": 50 * k + 2, "type": types[k % len(types)]}
                         for k in range(400)]}
    path = tmp_path / "in" / "huge.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join([json.dumps(good[0].to_dict()), json.dumps(huge),
                               *(json.dumps(g.to_dict()) for g in good[1:])]) + "\n")
    meta = json.loads((Path(sample_model) / "meta.json").read_text())
    summary = predict(str(path), str(sample_model), tmp_path / "out", progress=False,
                      track=False)
    assert summary["max_tokens"] == 2 * meta["max_train_tokens"] < 20_000
    assert (summary["sentences_read"], summary["sentences_predicted"],
            summary["sentences_rejected"], summary["sentences_too_long"]) == (5, 4, 1, 1)
    (reject,) = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert (reject["line"], reject["field"]) == (2, "tokens")
    assert "20,000 tokens, more than the limit" in reject["reason"]
    assert {r["sentence_id"] for r in read_output(tmp_path / "out")} == {g.id for g in good}
    assert summary["replica_peak_rss_mb"] > 0


def test_a_record_that_kills_its_replica_is_rejected_and_the_rest_scored(sample_model, tmp_path,
                                                                        monkeypatch):
    """The replica really dies (``os._exit``, as when killed for memory) each time it scores one
    record: after two whole attempts its unit is scored record by record, that record alone is
    rejected, and the job completes."""
    from relext_ray.prediction.predictor import Predictor
    from relext_ray.tracking.runs import predict_tracked as predict

    sentences = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences[:12]
    path = tmp_path / "in" / "poison.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in sentences))
    poison = sentences[5]
    monkeypatch.setenv("RELEXT_TEST_POISON_RECORD", poison.id)
    summary = predict(str(path), str(sample_model), tmp_path / "out", chunk_size=4,
                      progress=False, track=False)
    assert (summary["sentences_read"], summary["sentences_predicted"],
            summary["sentences_rejected"], summary["sentences_failed"]) == (12, 11, 1, 1)
    (reject,) = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 6 and reject["reason"].startswith("replica died while scoring")
    assert not (tmp_path / "out" / ".attempts").exists()
    rows = by_key(read_output(tmp_path / "out"))
    others = [s for s in sentences if s.id != poison.id]
    direct = by_key(Predictor.load(sample_model).score(others).table.to_pylist())
    assert rows.keys() == direct.keys()
    assert all(abs(rows[k]["score"] - direct[k]["score"]) < 1e-5 for k in rows)


def test_duplicate_ids_are_made_unique_and_reported(sample_model, tmp_path):
    from relext_ray.prediction.predictor import Predictor
    from relext_ray.tracking.runs import predict_tracked as predict

    good = read_jsonl(SAMPLE_DIR / "sample_test.jsonl").sentences[:4]
    records = [{**g.to_dict(), "id": i} for g, i in zip(good, ["x", "y", "x", "x"], strict=True)]
    path = tmp_path / "in" / "dups.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = predict(str(path), str(sample_model), tmp_path / "out", chunk_size=2,
                      progress=False, track=False)
    assert (summary["duplicate_ids"], summary["records_renamed"]) == (1, 2)
    assert summary["duplicate_id_examples"] == {"x": 3}
    rows = read_output(tmp_path / "out")
    assert {r["sentence_id"] for r in rows} == {"x", "y", "x#2", "x#3"}
    # each renamed record keeps its own pairs: the row counts of the four sentences differ
    # only as the sentences do
    per_id = {i: sum(r["sentence_id"] == i for r in rows) for i in ("x", "y", "x#2", "x#3")}
    expected = [len(Predictor.load(sample_model).score([g]).table) for g in good]
    assert list(per_id.values()) == expected


def test_renames_never_clash_with_an_id_the_input_uses():
    import pyarrow as pa

    from relext_ray.corpus.duplicates import ID_SCHEMA, plan_renames

    ids = pa.table({"unit": [0, 0, 1, 1], "line": [1, 2, 1, 2], "id": ["a", "a#2", "a", "b"]},
                   schema=ID_SCHEMA)
    renames, occurrences = plan_renames(ids)
    assert occurrences == {"a": 2}
    assert renames == {1: {1: "a#4"}}  # a#2 is taken by a record of the input
    assert plan_renames(ids.slice(1, 3)) == ({}, {})


def test_jsonl_output_one_file_per_unit_in_input_order(sample_model, tmp_path):
    from relext_ray.prediction.predictor import Predictor
    from relext_ray.tracking.runs import predict_tracked as predict

    path = SAMPLE_DIR / "sample_test.jsonl"
    summary = predict(str(path), str(sample_model), tmp_path / "o", out_format="jsonl",
                      chunk_size=10, concurrency=2, all_scores=True, progress=False, track=False)
    files = sorted((tmp_path / "o").glob("part-*.jsonl"))
    sentences = read_jsonl(path).sentences
    assert summary["units"] == -(-len(sentences) // 10) == summary["files"] == len(files)
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(rows) == summary["pairs_scored"]
    # Units are slices of the input and part names follow them: sentence order is kept.
    order = {s.id: i for i, s in enumerate(sentences)}
    seen = [order[r["sentence_id"]] for r in rows]
    assert seen == sorted(seen)
    direct = Predictor.load(sample_model).score(sentences, all_scores=True).table.to_pylist()
    assert by_key(rows).keys() == by_key(direct).keys()
    assert set(rows[0]["scores"]) == set(direct_labels(sample_model)[1:])
    assert not list((tmp_path / "o").glob(".part-*"))


def test_accounting_checks_the_part_files_on_disk(tmp_path):
    import pyarrow as pa

    from relext_ray.prediction.accounting import Accounting
    from relext_ray.prediction.parts import write_part

    labels = ["Other", "R"]
    account = Accounting(labels)
    for i, n in enumerate((3, 2)):
        write_part(pa.table({"x": list(range(n))}), tmp_path / f"part-0000{i}.parquet", "parquet")
        account.add({"counts": {"pairs_scored": n}, "relations": {}, "confusion": [[0, 0]] * 3,
                     "file": f"part-0000{i}.parquet", "rows": n})
    account.check(tmp_path)
    with pytest.raises(RelextError, match="reported twice"):
        account.add({"counts": {}, "relations": {}, "confusion": [[0, 0]] * 3,
                     "file": "part-00001.parquet", "rows": 2})
    write_part(pa.table({"x": [1]}), tmp_path / "part-00009.parquet", "parquet")
    with pytest.raises(RelextError, match=r"unexpected \['part-00009.parquet'\]"):
        account.check(tmp_path)
    (tmp_path / "part-00009.parquet").unlink()
    write_part(pa.table({"x": [1]}), tmp_path / "part-00001.parquet", "parquet")
    with pytest.raises(RelextError, match="holds 1 rows, 2 reported"):
        account.check(tmp_path)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_spec": "no/such/dir"}, "--input not found"),
    ({"input_spec": "{root}/tests"}, "no input files"),
    ({"model": "no/such/model"}, "--model not found"),
    ({"model": "{root}/tune_configs"}, "not a relext_ray model"),
])
def test_bad_arguments_are_named(sample_model, tmp_path, kwargs, message):
    from relext_ray.tracking.runs import predict_tracked as predict

    args = {"input_spec": str(SAMPLE_DIR / "sample_test.jsonl"), "model": str(sample_model),
            "output": tmp_path / "out"}
    args.update({k: v.format(root=ROOT) for k, v in kwargs.items()})
    with pytest.raises(RelextError, match=message):
        predict(**args, progress=False, track=False)


def test_earlier_predictions_are_not_overwritten_silently(sample_model, tmp_path):
    from relext_ray.tracking.runs import predict_tracked as predict

    args = (str(SAMPLE_DIR / "sample_test.jsonl"), str(sample_model), tmp_path / "out")
    predict(*args, progress=False, track=False)
    with pytest.raises(RelextError, match="--overwrite"):
        predict(*args, progress=False, track=False)
    again = predict(*args, overwrite=True, progress=False, track=False)
    assert len(read_output(tmp_path / "out")) == again["pairs_scored"]


def _replica_pids() -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return [a.pid for a in actors if "UnitScorer" in (a.class_name or "")]


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_killed_replica_loses_and_duplicates_nothing(conll04_model, tmp_path):
    """SIGKILL one of two replicas mid-run: the job completes, every pair exactly once."""
    from relext_ray.data.synth import Shape, Source, write
    from relext_ray.prediction.predictor import Predictor

    if not os.environ.get("RAY_ADDRESS"):
        pytest.skip("no shared Ray head: run through `make test` (it starts one)")
    source = Source.load(str(conll04_model))
    files = write(6000, tmp_path / "synth", source, Shape.of_corpus(source.corpus,
                                                                     source.data_dir))
    out = tmp_path / "out"
    log = open(tmp_path / "predict.log", "w")  # noqa: SIM115
    driver = subprocess.Popen(
        [sys.executable, "-m", "relext_ray.predict", "--input", str(tmp_path / "synth"),
         "--model", str(conll04_model), "--output", str(out), "--concurrency", "2",
         "--chunk-size", "100", "--no-tracking", "--no-progress"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    killed = None
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:
        pids = _replica_pids()
        if len(pids) == 2:
            time.sleep(3)  # let both replicas get into their units
            if driver.poll() is None:
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            break
        time.sleep(0.2)
    driver.wait(timeout=600)
    log.close()
    output = (tmp_path / "predict.log").read_text()
    assert killed is not None, "the job ended before a replica could be killed:\n" + output
    assert driver.returncode == 0, output[-4000:]
    from ray.util.state import list_actors

    replicas = [a for a in list_actors(detail=True, limit=10000)
                if "UnitScorer" in (a.class_name or "")]
    assert any(a.num_restarts >= 1 for a in replicas), "no replica was restarted"

    sentences = [s for f in files for s in read_jsonl(f).sentences]
    expected = Predictor.load(conll04_model).score(sentences).table.to_pylist()
    rows = read_output(out)
    assert len(rows) == len(expected)
    got, want = by_key(rows), by_key(expected)
    assert got.keys() == want.keys()
    assert all(got[k]["relation"] == want[k]["relation"] for k in want)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sentences_read"] == summary["sentences_predicted"] == len(sentences)
    assert summary["pairs_scored"] == len(rows)
    assert summary["units"] == int(np.ceil(len(sentences) / 100))


def test_without_a_model_one_line_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    from relext_ray.cli.predict import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.chdir(tmp_path)
    assert main(["--input", str(SAMPLE_DIR / "sample_test.jsonl")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "@champion" in err[0] and "--model" in err[0], err
    assert not (tmp_path / "predictions").exists()


def test_the_default_output_is_a_new_folder_named_after_the_input(tmp_path):
    from relext_ray.prediction.inputs import default_output

    root = tmp_path / "predictions"
    assert default_output("data/corpus/", root) == root / "corpus"
    assert default_output("data/test.jsonl", root) == root / "test"
    (root / "test").mkdir(parents=True)
    assert default_output("data/test.jsonl", root) == root / "test"  # empty: reused
    (root / "test" / "summary.json").write_text("{}")
    assert default_output("data/test.jsonl", root) == root / "test-2"
    assert default_output("data/*.jsonl", root) == root / "_"


def test_units_are_sized_so_every_replica_gets_several(tmp_path):
    """Without --chunk-size: eight units per replica, 50 to 1,000 records each."""
    from relext_ray.prediction.inputs import plan_input

    for n, replicas, chunk in ((100, 2, 50), (2_000, 2, 125), (40_000, 2, 1000), (2_000, 1, 250)):
        path = tmp_path / f"in{n}.jsonl"
        path.write_text('{"tokens": ["a"], "entities": []}\n' * n)
        units, size = plan_input(str(path), replicas=replicas)
        assert size == chunk and len(units) == -(-n // chunk)
    assert plan_input(str(path), chunk_size=7)[1] == 7
