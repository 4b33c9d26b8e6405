"""The Ray Data pipeline end to end, on a real Ray cluster and real Parquet files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from relext_ray.config import PrepareConfig
from relext_ray.corpus.jsonl import write_jsonl
from relext_ray.corpus.sample import SAMPLE_DIR, generate
from relext_ray.instances.vocab import Vocabularies

pytestmark = pytest.mark.usefixtures("ray_session")


def run(tmp_path: Path, name: str, **kw) -> tuple[dict, Path]:
    from relext_ray.data.pipeline import prepare

    out = tmp_path / name
    stats = prepare(PrepareConfig(out=out, **kw))
    assert json.loads((out / "stats.json").read_text()) == stats
    return stats, out


def table(out: Path, split: str):
    """The split's pairs."""
    return pq.read_table(out / split / "pairs").sort_by("instance_id")


def sentence_table(out: Path, split: str):
    return pq.read_table(out / split / "sentences").sort_by("sentence_id")


def check_consistent(stats: dict, out: Path) -> None:
    """The Parquet rows are exactly the instances the statistics count."""
    for split, st in stats.items():
        t = table(out, split) if (out / split).exists() else None
        rows = t.num_rows if t is not None else 0
        assert rows == st["positives"] + st["negatives"], split
        if t is not None:
            labels = t.column("label").to_pylist()
            assert sum(lb != "Other" for lb in labels) == st["positives"]
            assert len(set(t.column("instance_id").to_pylist())) == rows  # no duplicates
            # every pair's sentence is stored once; every stored sentence has a kept pair
            ids = sentence_table(out, split).column("sentence_id").to_pylist()
            assert len(ids) == len(set(ids)) == len(set(t.column("sentence_id").to_pylist()))
        assert st["records_read"] == st["records_kept"] + st["rejected"]


def test_sample_corpus(tmp_path):
    stats, out = run(tmp_path, "s", corpus="jsonl", data_dir=SAMPLE_DIR, mode="unordered")
    assert list(stats) == ["train", "dev", "test"]
    assert stats["train"]["sentences"] == 400 and stats["train"]["rejected"] == 0
    check_consistent(stats, out)
    t = sentence_table(out, "train")
    assert t.schema.field("token_ids").type.value_type == pa.int32()
    assert t.schema.field("tag_ids").type.value_type == pa.int16()
    row = t.slice(0, 1).to_pylist()[0]
    assert len(row["token_ids"]) == len(row["tag_ids"]) == row["length"]
    assert "pos1" not in table(out, "train").schema.names  # positions come from the spans
    vocabs = Vocabularies.load(out / "vocab")
    assert vocabs.tokens.items[:2] == ("<pad>", "<unk>")
    assert vocabs.labels.items[0] == "Other"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["mode"] == "unordered" and meta["labels"] == list(vocabs.labels.items)
    assert (out / "rejects.jsonl").read_text() == ""


def _same_output(a: Path, b: Path) -> None:
    for split in ("train", "dev", "test"):
        assert table(a, split).equals(table(b, split)), split
        assert sentence_table(a, split).equals(sentence_table(b, split)), split
    for f in ("stats.json", "type_filter.json", "vocab/tokens.json", "vocab/tags.json",
              "vocab/labels.json"):
        assert (a / f).read_text() == (b / f).read_text(), f


def test_output_does_not_depend_on_shard_count(tmp_path):
    common = dict(corpus="jsonl", data_dir=SAMPLE_DIR, mode="ordered", chunk_size=37)
    _, one = run(tmp_path, "one", num_shards=1, **common)
    _, many = run(tmp_path, "many", num_shards=5, concurrency=2, **common)
    assert len(list((many / "train" / "pairs").glob("*.parquet"))) > 1
    _same_output(one, many)


@pytest.mark.shared_data
def test_real_conll04_shard_invariance(tmp_path, conll04_dir):
    _, one = run(tmp_path, "one", corpus="conll04", data_dir=conll04_dir, num_shards=1)
    _, many = run(tmp_path, "many", corpus="conll04", data_dir=conll04_dir, num_shards=4,
                  chunk_size=100)
    _same_output(one, many)


@pytest.mark.shared_data
def test_real_conll04_prepared_for_a_model_trained_on_train_and_dev(tmp_path, conll04_dir):
    """``training_splits`` (train.fit_on train+dev): dev's words and type combinations are the
    model's too; the splits themselves are read alike."""
    from relext_ray.data.prepared import PreparedData
    from relext_ray.instances.vocab import UNK

    stats, held_out = run(tmp_path, "train", corpus="conll04", data_dir=conll04_dir)
    both_stats, both = run(tmp_path, "both", corpus="conll04", data_dir=conll04_dir,
                           training_splits=("train", "dev"))
    a, b = PreparedData.load(held_out), PreparedData.load(both)

    def unknown(d: PreparedData) -> int:
        return int((d.splits["dev"].sentences.tokens == d.vocabs.tokens.id(UNK)).sum())

    assert unknown(a) > 100 and unknown(b) == 0
    assert set(a.vocabs.tokens.items) < set(b.vocabs.tokens.items)
    assert a.type_filter.combos <= b.type_filter.combos
    assert {s: stats[s]["sentences"] for s in stats} == {
        s: both_stats[s]["sentences"] for s in both_stats}
    assert json.loads((both / "meta.json").read_text())["config"]["training_splits"] == [
        "train", "dev"]


def test_rejects_are_written_and_the_run_goes_on(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    sents = generate(seed=3, sizes={"train": 30, "dev": 10})
    write_jsonl(sents["train"], data / "c_train.jsonl")
    lines = [json.dumps(s.to_dict()) for s in sents["dev"]]
    lines[2] = "{broken"
    lines[5] = json.dumps({"tokens": ["a"], "entities": [{"start": 0, "end": 4, "type": "Peop"}]})
    lines[7] = json.dumps({"id": "x", "tokens": ["a", "b"],
                           "entities": [{"start": 0, "end": 1, "type": "Peop"}],
                           "relations": [{"head": 0, "tail": 9, "type": "Kill"}]})
    (data / "c_dev.jsonl").write_text("\n".join(lines) + "\n")
    stats, out = run(tmp_path, "o", corpus="jsonl", data_dir=data, num_shards=2)
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted((r["split"], r["line"], r["field"]) for r in rejects) == [
        ("dev", 3, ""), ("dev", 6, "entities[0]"), ("dev", 8, "relations[0].tail")]
    assert all(r["file"].endswith("c_dev.jsonl") and r["reason"] for r in rejects)
    assert stats["dev"]["rejected"] == 3 and stats["dev"]["sentences"] == 7
    assert stats["dev"]["records_read"] == 10 == stats["dev"]["records_kept"] + 3
    assert "test" not in stats
    check_consistent(stats, out)


def test_duplicate_ids_are_renamed_and_long_sentences_rejected(tmp_path):
    data = tmp_path / "dups"
    data.mkdir()
    sents = generate(seed=4, sizes={"train": 30, "dev": 12})
    write_jsonl(sents["train"], data / "c_train.jsonl")
    dev = [s.to_dict() for s in sents["dev"]]
    for k in (3, 7, 9):  # three records under the first record's id
        dev[k]["id"] = dev[0]["id"]
    longest = max(len(d["tokens"]) for d in dev)
    dev[5]["tokens"] = dev[5]["tokens"] + ["x"] * (longest + 5)
    (data / "c_dev.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dev))
    stats, out = run(tmp_path, "o", corpus="jsonl", data_dir=data, num_shards=3, chunk_size=4,
                     max_tokens=longest + 2)
    first = dev[0]["id"]
    assert (stats["dev"]["duplicate_ids"], stats["dev"]["records_renamed"]) == (1, 3)
    ids = sentence_table(out, "dev").column("sentence_id").to_pylist()
    assert {first, f"{first}#2", f"{first}#3", f"{first}#4"} <= set(ids)  # no merge
    (long_reject,) = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert (long_reject["line"], long_reject["field"]) == (6, "tokens")
    assert stats["dev"]["too_long"] == 1 and stats["dev"]["sentences"] == 11
    assert stats["dev"]["rejected"] == 0
    check_consistent(stats, out)


def test_rerun_replaces_earlier_output(tmp_path):
    _, out = run(tmp_path, "o", corpus="jsonl", data_dir=SAMPLE_DIR, num_shards=3)
    stats, out = run(tmp_path, "o", corpus="jsonl", data_dir=SAMPLE_DIR, num_shards=1)
    check_consistent(stats, out)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relext_ray.cli.prepare", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "message"), [
    (["--corpus", "conll04", "--data-dir", "/nonexistent/dir", "--out", "x"],
     "error: data directory not found: /nonexistent/dir"),
    (["--corpus", "jsonl", "--data-dir", str(SAMPLE_DIR.parent), "--out", "x"],
     "error: no training split for corpus 'jsonl'"),
    (["--corpus", "jsonl", "--data-dir", str(SAMPLE_DIR), "--out", "x", "--num-shards", "0"],
     "num_shards: Input should be greater than or equal to 1"),
])
def test_cli_errors_are_one_clear_message(args, message):
    res = _cli(*args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_unknown_corpus():
    res = _cli("--corpus", "ace05", "--data-dir", ".", "--out", "x")
    assert res.returncode == 2 and "invalid choice: 'ace05'" in res.stderr


def wait_until_all_print(procs: list[subprocess.Popen], logs: list[Path], text: str,
                         timeout: float = 120) -> None:
    """Until every process has written ``text`` to its log (each still running)."""
    deadline = time.monotonic() + timeout
    while not all(text in log.read_text() for log in logs):
        assert time.monotonic() < deadline, [log.read_text() for log in logs]
        assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
        time.sleep(0.2)


_ENSURE = """
import sys
import time
import relext_ray.data.pipeline as pipeline
from relext_ray.config import load_experiment
from relext_ray.data.prepared import ensure_prepared

real = pipeline.prepare
def counted(cfg):
    print("PREPARING", flush=True)
    return real(cfg)
pipeline.prepare = counted
cfg = load_experiment(sys.argv[1], ["data.prepared_dir=" + sys.argv[2], "data.data_dir=" + sys.argv[3]])
ensure_prepared(cfg)
"""


def test_runs_started_side_by_side_prepare_once(tmp_path):
    """Two runs that find the same folder unprepared take turns: one prepares, the other waits
    and reads it (written by both at once, every sentence would be there twice)."""
    from relext_ray.data.prepared import PreparedData
    from relext_ray.locks import preparing

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "prepared"
    args = [str(root / "tune_configs" / "demo.yaml"), str(out), str(SAMPLE_DIR)]
    logs = [tmp_path / f"run{i}.err" for i in range(2)]
    with preparing(out):  # both runs must meet a preparation in progress
        procs = [subprocess.Popen([sys.executable, "-c", _ENSURE, *args], stdout=subprocess.PIPE,
                                  stderr=log.open("w"), text=True) for log in logs]
        wait_until_all_print(procs, logs, "being prepared by another process")
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log.read_text() for log in logs]
    assert sorted(o.count("PREPARING") for o in outputs) == [0, 1]
    data = PreparedData.load(out)  # raises on a sentence id stored twice
    stats = json.loads((out / "stats.json").read_text())
    assert stats["train"]["sentences"] == 400
    check_consistent(stats, out)
    assert len(data.splits["train"].lengths) > 0
