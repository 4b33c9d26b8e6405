import json

from relext_ray.corpus.jsonl import count_lines, read_jsonl, write_jsonl
from relext_ray.corpus.sample import SAMPLE_DIR, generate


def test_rejects_carry_file_line_and_field(tmp_path):
    good = {"id": "a", "tokens": ["x", "y"], "entities": [{"start": 0, "end": 1, "type": "T"}]}
    lines = [
        json.dumps(good),
        "{not json",
        "",
        json.dumps({"tokens": ["x"], "entities": [{"start": 0, "end": 3, "type": "T"}]}),
        json.dumps([1, 2]),
        json.dumps({"tokens": ["x"], "relations": [{"head": 0, "tail": 1, "type": "R"}]}),
        json.dumps({**good, "id": "b"}),
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    res = read_jsonl(path)
    assert [s.id for s in res.sentences] == ["a", "b"]
    assert [(r.line, r.field) for r in res.rejects] == [
        (2, ""), (4, "entities[0]"), (5, ""), (6, "relations[0].head")]
    assert "invalid JSON" in res.rejects[0].reason
    # the blank line is not a record
    assert res.counts["records_read"] == 6 == res.counts["records_kept"] + len(res.rejects)


def test_slices_and_line_count(tmp_path):
    path = tmp_path / "s.jsonl"
    write_jsonl(generate(seed=1, sizes={"x": 25})["x"], path)
    assert count_lines(path) == 25
    ids = [s.id for a in range(0, 25, 10) for s in read_jsonl(path, a, a + 10).sentences]
    assert ids == [s.id for s in read_jsonl(path).sentences] and len(ids) == 25


def test_shipped_sample_is_what_the_generator_writes(tmp_path):
    for split, sentences in generate().items():
        shipped = read_jsonl(SAMPLE_DIR / f"sample_{split}.jsonl")
        assert shipped.rejects == []
        assert shipped.sentences == sentences


def test_a_byte_order_mark_crlf_and_blank_lines_are_accepted(tmp_path):
    records = [{"id": f"s{i}", "tokens": ["x", "y"],
                "entities": [{"start": 0, "end": 1, "type": "T"}]} for i in range(3)]
    body = "\r\n".join(json.dumps(r) for r in records[:2]) + "\r\n\r\n  \n" + \
        json.dumps(records[2]) + "\r\n"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    res = read_jsonl(path)
    assert res.rejects == []
    assert [s.id for s in res.sentences] == ["s0", "s1", "s2"]
    assert res.counts["blank_lines"] == 2 and res.counts["records_read"] == 3
