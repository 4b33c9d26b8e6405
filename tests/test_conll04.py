import json

import pytest

from relext_ray.corpus.conll04 import entities_from_tags, read_conll04
from relext_ray.corpus.records import Entity
from relext_ray.errors import RecordError


def test_bilou_tags():
    tags = ["U-Loc", "O", "B-Org", "I-Org", "L-Org", "B-Peop", "L-Peop", "U-Other"]
    assert entities_from_tags(tags, len(tags)) == [
        Entity(0, 1, "Loc"), Entity(2, 5, "Org"), Entity(5, 7, "Peop"), Entity(7, 8, "Other"),
    ]


def test_plain_bio_tags_are_accepted():
    tags = ["B-Peop", "I-Peop", "B-Peop", "O", "B-Loc"]
    assert entities_from_tags(tags, 5) == [Entity(0, 2, "Peop"), Entity(2, 3, "Peop"),
                                           Entity(4, 5, "Loc")]


@pytest.mark.parametrize(
    ("tags", "field"),
    [(["O", "I-Org"], "tags[1]"), (["B-Org", "L-Loc"], "tags[1]"), (["X-Org", "O"], "tags[0]"),
     (["O"], "tags")],
)
def test_bad_tags(tags, field):
    with pytest.raises(RecordError) as err:
        entities_from_tags(tags, 2)
    assert err.value.field == field


def test_both_variants_give_the_same_sentence(tmp_path):
    tokens = ["Anna", "Berg", "works", "for", "Acme", "in", "Oslo"]
    rel = [{"head": 0, "tail": 1, "type": "Work_For"}]
    tagged = {"tokens": tokens, "tags": ["B-Peop", "L-Peop", "O", "O", "U-Org", "O", "U-Loc"],
              "relations": rel}
    spert = {"tokens": tokens, "relations": rel, "entities": [
        {"type": "Peop", "start": 0, "end": 2}, {"type": "Org", "start": 4, "end": 5},
        {"type": "Loc", "start": 6, "end": 7}]}
    (tmp_path / "a_train.json").write_text(json.dumps([tagged]))
    (tmp_path / "b_train.json").write_text(json.dumps([spert]))
    a = read_conll04(tmp_path / "a_train.json").sentences[0]
    b = read_conll04(tmp_path / "b_train.json").sentences[0]
    assert (a.tokens, a.entities, a.relations) == (b.tokens, b.entities, b.relations)
    assert len(a.entities) == 3 and a.relations[0].type == "Work_For"


def test_bad_records_are_rejected_and_counted(tmp_path):
    good = {"tokens": ["a", "b"], "tags": ["U-Peop", "U-Org"],
            "relations": [{"head": 0, "tail": 1, "type": "Work_For"}]}
    records = [
        good,
        {"tokens": ["a"], "tags": ["U-Peop"], "relations": [{"head": 0, "tail": 3, "type": "K"}]},
        {"tags": ["O"]},
        {"tokens": ["a", "b"], "tags": ["O"]},
        {"tokens": ["a", "b"], "entities": [{"type": "Loc", "start": 1, "end": 0}]},
        good,
    ]
    path = tmp_path / "x_dev.json"
    path.write_text(json.dumps(records))
    res = read_conll04(path)
    assert len(res.sentences) == 2
    assert [(r.line, r.field) for r in res.rejects] == [
        (2, "relations[0].tail"), (3, "tokens"), (4, "tags"), (5, "entities[0]")]
    assert all(r.file == str(path) for r in res.rejects)
    assert res.counts["records_read"] == res.counts["records_kept"] + len(res.rejects) == 6


def test_invalid_json_file_is_one_reject(tmp_path):
    path = tmp_path / "x_train.json"
    path.write_text('[{"tokens": ["a"],\n "tags": ["O"] ')
    res = read_conll04(path)
    assert res.sentences == [] and len(res.rejects) == 1
    assert "invalid JSON at line 2" in res.rejects[0].reason


def test_chunks_partition_the_file(conll04_dir):
    path = conll04_dir / "conll04_dev.json"
    whole = read_conll04(path).sentences
    parts = [s for start in range(0, 231, 50) for s in read_conll04(path, start, start + 50).sentences]
    assert parts == whole


@pytest.mark.shared_data
@pytest.mark.parametrize(("split", "sentences", "entities", "relations"),
                         [("train", 922, 3377, 1283), ("dev", 231, 893, 343), ("test", 288, 1079, 422)])
def test_real_conll04(conll04_dir, split, sentences, entities, relations):
    res = read_conll04(conll04_dir / f"conll04_{split}.json")
    assert res.rejects == []
    assert len(res.sentences) == sentences
    assert sum(len(s.entities) for s in res.sentences) == entities
    assert sum(len(s.relations) for s in res.sentences) == relations
    types = {e.type for s in res.sentences for e in s.entities}
    assert types == {"Loc", "Org", "Peop", "Other"}


def test_a_byte_order_mark_and_crlf_are_accepted(tmp_path):
    record = {"tokens": ["Anna", "works"], "entities": [{"type": "Peop", "start": 0, "end": 1}],
              "relations": []}
    path = tmp_path / "bom_train.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([record, record], indent=1)
                     .replace("\n", "\r\n").encode())
    res = read_conll04(path)
    assert res.rejects == [] and len(res.sentences) == 2
