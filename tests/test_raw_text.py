"""Raw text in, relations out: a model trained with its tagger extracts from plain strings in
process (``relext_ray.load``), and batch prediction on a real Ray cluster reads raw ``.txt``,
entity-less JSONL and records with gold mentions in one job, with offsets into the source."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import relext_ray
from relext_ray.config import load_experiment
from relext_ray.corpus.sample import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
LINES = ["Hana Silva settled in Accra after Quito.",
         "John Harper finally is the chairman of Summit Group.",
         "Officials said that Cedar Group named Tomas Petrov as its director."]


@pytest.fixture(scope="module")
def tagged_model(tmp_path_factory, ray_session) -> Path:
    """The demo model with its tagger, trained briefly on the sample corpus."""
    from relext_ray.training.run import run

    tmp = tmp_path_factory.mktemp("tagged_model")
    cfg = load_experiment(ROOT / "tune_configs" / "demo.yaml", [
        f"data.data_dir={SAMPLE_DIR}", f"data.prepared_dir={tmp / 'prepared'}",
        f"train.checkpoint_dir={tmp / 'ckpt'}", "train.epochs=3", "tracking.enabled=false",
        "tagger.enabled=true", "tagger.epochs=8", "tagger.word_dim=32", "tagger.hidden=32"])
    result = run(cfg)
    assert result.train_counts["tagger_test_f1"] > 0.5  # the sample's names are learnable
    assert "tagger_test_f1_Peop" in result.metrics()
    return result.checkpoint


def test_load_extracts_from_raw_strings_and_records(tagged_model):
    extractor = relext_ray.load(tagged_model)
    text = LINES[0] + " " + LINES[1]
    gold = {"tokens": ["Hana", "Silva", "lives", "in", "Accra", "."],
            "entities": [{"start": 0, "end": 2, "type": "Peop"},
                         {"start": 4, "end": 5, "type": "Loc"}]}
    raw, record, given = extractor.extract([text, {"id": "r1", "text": LINES[2]}, gold])
    assert raw["entities"], "the tagger found no mention in plain sample-like text"
    for e in raw["entities"]:
        assert text[e["char_start"]:e["char_end"]].split() == e["text"].split()
        assert 0.0 < e["score"] <= 1.0
    assert {e["sentence"] for e in raw["entities"]} <= {0, 1}
    for r in raw["relations"]:
        assert r["head"] != r["tail"] and r["type"] != "Other"
    assert record["id"] == "r1"
    assert all(LINES[2][e["char_start"]:e["char_end"]] == e["text"] for e in record["entities"])
    # gold mentions are used as given: no tagger score, no character spans
    assert [(e["start"], e["end"], e["score"]) for e in given["entities"]] == [
        (0, 2, None), (4, 5, None)]


def test_predict_reads_raw_text_entityless_and_gold_records_in_one_job(tagged_model, tmp_path):
    from relext_ray.prediction.job import predict

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    records = [{"id": "t1", "text": LINES[1]},
               {"id": "k1", "tokens": [*LINES[2].rstrip(".").split(), "."]},
               {"id": "g1", "tokens": ["Hana", "Silva", "lives", "in", "Accra", "."],
                "entities": [{"start": 0, "end": 2, "type": "Peop"},
                             {"start": 4, "end": 5, "type": "Loc"}]}]
    (corpus / "mixed.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    summary = predict(str(corpus), tagged_model, tmp_path / "out", concurrency=2, chunk_size=2,
                      progress=False)
    assert summary["sentences_read"] == len(LINES) + len(records)
    assert summary["sentences_predicted"] == summary["sentences_read"]
    assert summary["sentences_tagged"] == len(LINES) + 2  # all but the gold record
    assert summary["mentions_tagged"] > 0
    rows = pq.read_table(sorted((tmp_path / "out").glob("part-*.parquet"))).to_pylist()
    by_id = {}
    for r in rows:
        by_id.setdefault(r["sentence_id"], []).append(r)
    assert any(k.startswith("notes:") for k in by_id) and "g1" in by_id
    for r in rows:
        if r["sentence_id"].startswith("notes:"):
            line = LINES[int(r["sentence_id"].split(":")[1]) - 1]
            for side in ("head", "tail"):
                span = line[r[f"{side}_char_start"]:r[f"{side}_char_end"]]
                assert span.split() == r[f"{side}_text"].split()
                assert r[f"{side}_tagger_score"] is not None
        if r["sentence_id"] == "g1":
            assert r["head_tagger_score"] is None and r["head_char_start"] is None


def test_raw_text_without_a_tagger_is_rejected_with_the_reason(sample_model, tmp_path):
    from relext_ray.prediction.job import predict

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    (corpus / "blob.txt").write_bytes(b"\x00\x01binary\n")
    summary = predict(str(corpus), sample_model, tmp_path / "out", progress=False)
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text()
               .splitlines()]
    assert summary["sentences_read"] == len(LINES) + 1
    assert summary["sentences_rejected"] == len(LINES) + 1 and summary["pairs_scored"] == 0
    reasons = sorted(r["reason"] for r in rejects)
    assert sum("entity tagger" in r for r in reasons) == len(LINES)
    assert sum("NUL byte" in r for r in reasons) == 1
