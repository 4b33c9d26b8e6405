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
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.run import run

    tmp = tmp_path_factory.mktemp("tagged_model")
    # vectors for a few words, one of them ("zanzibar") never seen in training
    vectors = tmp / "vectors.txt"
    vectors.write_text("\n".join(f"{w} " + " ".join(["0.1"] * 12)
                                 for w in ("the", "zanzibar", "said", "lives")) + "\n")
    cfg = load_experiment(ROOT / "tune_configs" / "demo.yaml", [
        f"data.data_dir={SAMPLE_DIR}", f"data.prepared_dir={tmp / 'prepared'}",
        f"train.checkpoint_dir={tmp / 'ckpt'}", "train.epochs=3", "tracking.enabled=false",
        "tagger.enabled=true", "tagger.epochs=8", "tagger.hidden=32",
        f"tagger.word_vectors={vectors}"])
    result = run(cfg)
    assert result.train_counts["tagger_test_f1"] > 0.5  # the sample's names are learnable
    assert "tagger_test_f1_Peop" in result.metrics()
    tagger = load_checkpoint(result.checkpoint).tagger
    assert tagger is not None and tagger.model.word.weight.shape[1] == 12  # the vectors' width
    assert tagger.vocab.word_id("Zanzibar") == tagger.vocab.words.id("zanzibar") > 1
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


def test_end_to_end_counts_are_strict_and_know_the_direction():
    from relext_ray.corpus.records import Entity, Relation, Sentence
    from relext_ray.prediction.end_to_end import end_to_end_counts, end_to_end_scores

    toks = ("Anna", "Berg", "works", "for", "Acme", ".")
    gold = Sentence("s", toks, (Entity(0, 2, "Peop"), Entity(4, 5, "Org")),
                    (Relation(0, 1, "Work_For"),))
    # the tagger found Acme, and "Berg" only: one mention right, the relation cannot be
    partial = Sentence("s", toks, (Entity(1, 2, "Peop"), Entity(4, 5, "Org")), tagged=True)
    rows = [{"sentence_id": "s", "head": 0, "tail": 1, "relation": "Work_For"}]
    c = end_to_end_counts([gold], [partial], rows, directed=True)
    assert (c["entity_tp"], c["relation_tp"], c["relation_predicted"]) == (1, 0, 1)
    exact = Sentence("s", toks, (Entity(4, 5, "Org"), Entity(0, 2, "Peop")), tagged=True)
    backwards = [{"sentence_id": "s", "head": 0, "tail": 1, "relation": "Work_For"}]
    assert end_to_end_counts([gold], [exact], backwards, directed=True)["relation_tp"] == 0
    assert end_to_end_counts([gold], [exact], backwards, directed=False)["relation_tp"] == 1
    s = end_to_end_scores(end_to_end_counts([gold], [exact], backwards, directed=False))
    assert s["entity_f1"] == 1.0 and s["end_to_end_f1"] == 1.0


def test_predict_end_to_end_equals_the_model_called_directly(tagged_model, tmp_path):
    """``--entities tagger`` on the sample's test split: the job's entity and end-to-end counts
    are those of the tagger and model called in this process."""
    from relext_ray.corpus.jsonl import read_jsonl
    from relext_ray.prediction.end_to_end import end_to_end_counts, untag
    from relext_ray.prediction.job import predict
    from relext_ray.prediction.predictor import Predictor

    path = SAMPLE_DIR / "sample_test.jsonl"
    summary = predict(str(path), tagged_model, tmp_path / "out", concurrency=2, chunk_size=30,
                      entities="tagger", progress=False)
    gold = read_jsonl(path).sentences
    p = Predictor.load(tagged_model)
    tagged = p.tag([untag(s) for s in gold])
    rows = p.score(tagged).table.to_pylist()
    direct = end_to_end_counts(gold, tagged, rows, directed=False)
    assert {k: summary[k] for k in direct} == dict(direct)
    assert summary["entity_gold"] == sum(len(s.entities) for s in gold)
    assert summary["relation_gold"] == sum(len(s.relations) for s in gold) > 0
    assert summary["sentences_tagged"] == len(gold)
    assert 0.0 < summary["end_to_end"]["entity_f1"] <= 1.0


def test_the_mlflow_model_takes_raw_text_too(tagged_model, tmp_path, monkeypatch):
    """The logged pyfunc carries the tagger: raw-text records score like the Python API."""
    import mlflow

    from relext_ray.tracking.runs import log_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns.db'}")
    with mlflow.start_run():
        uri = log_model(tagged_model)
    model = mlflow.pyfunc.load_model(uri)
    rows = model.predict([{"id": "t", "text": LINES[1]}])
    from relext_ray.corpus.jsonl import text_record

    predictor = relext_ray.load(tagged_model).predictor
    direct = predictor.score(text_record({"id": "t", "text": LINES[1]}, "t", "words")).table
    assert len(rows) == direct.num_rows > 0
    assert rows["head_char_start"].tolist() == direct.column("head_char_start").to_pylist()
