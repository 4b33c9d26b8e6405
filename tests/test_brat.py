import pytest

from relext_ray.corpus.brat import BratOptions, detect_wrap_width, read_brat, split_sentences
from relext_ray.corpus.records import Entity, Relation

NO_WRAP = BratOptions(wrap_width=None)


def _sentences(text, opts=NO_WRAP):
    return [text[s:e] for s, e in split_sentences(text, opts)]


def test_split_after_terminators_and_newlines():
    text = "他来了。她走了！真的吗？\n\n好\n"
    assert _sentences(text) == ["他来了。", "她走了！", "真的吗？", "好"]


def test_closing_quotes_stay_with_their_sentence():
    assert _sentences("他说：“走吧。”我们走了。") == ["他说：“走吧。”", "我们走了。"]


def test_soft_wrapped_lines_are_joined():
    text = "甲乙丙\n丁。己\n庚。\n短\n句。"
    assert _sentences(text, BratOptions(wrap_width=3)) == ["甲乙丙\n丁。", "己\n庚。", "短", "句。"]
    assert _sentences(text, NO_WRAP) == ["甲乙丙", "丁。", "己", "庚。", "短", "句。"]


def test_detect_wrap_width():
    wrapped = ("一" * 30 + "\n") * 4 + "短。\n"
    assert detect_wrap_width(wrapped) == 30
    assert detect_wrap_width("短行。\n短行。\n") is None


def _write(tmp_path, text, ann):
    (tmp_path / "7.txt").write_text(text, encoding="utf-8")
    (tmp_path / "7.ann").write_text(ann, encoding="utf-8")
    return tmp_path / "7.txt"


def test_document_with_every_kind_of_line(tmp_path):
    #       0123456 7 8901234
    text = "张三住在北京。\n李四 和王五。"
    ann = "\n".join([
        "T1\tPerson-Name 0 2\t张三",
        "T2\tLocation-Name 4 6\t北京",
        "T3\tPerson-Name 8 9;10 11\t李 四",  # discontinuous, crosses a space
        "T4\tPerson-Name 12 14\t王五",
        "R1\tLocated Arg1:T1 Arg2:T2\t",
        "R2\tSocial Arg1:T3 Arg2:T4\t",
        "R3\tSocial Arg1:T1 Arg2:T4\t",      # crosses the sentence boundary
        "R4\tCoreference Arg1:T3 Arg2:T4\t",  # not a relation class
        "*\tCoreference T1 T3",
        "",
    ])
    res = read_brat(_write(tmp_path, text, ann), NO_WRAP)
    assert res.rejects == []
    s1, s2 = res.sentences
    assert s1.id == "7:0" and "".join(s1.tokens) == "张三住在北京。"
    assert s1.entities == (Entity(0, 2, "Person-Name"), Entity(4, 6, "Location-Name"))
    assert s1.relations == (Relation(0, 1, "Located"),)
    # whitespace is not a token: "李四和王五。"; the discontinuous span covers 李 (space) 四
    assert "".join(s2.tokens) == "李四和王五。"
    assert s2.entities == (Entity(0, 2, "Person-Name"), Entity(3, 5, "Person-Name"))
    assert s2.relations == (Relation(0, 1, "Social"),)
    c = res.counts
    assert c["discontinuous_spans"] == 1
    assert c["cross_sentence_relations_dropped"] == 1
    assert c["relations_ignored"] == 1
    assert c["annotations_ignored"] == 1
    assert c["records_read"] == c["records_kept"] == 9


def test_entity_across_a_sentence_boundary_is_counted(tmp_path):
    text = "甲乙。丙丁。"
    ann = "T1\tThing 1 4\t乙。丙\nT2\tThing 4 5\t丁\nR1\tUse Arg1:T1 Arg2:T2\t\n"
    res = read_brat(_write(tmp_path, text, ann), NO_WRAP)
    assert res.counts["cross_sentence_entities"] == 1
    assert res.counts["cross_sentence_relations_dropped"] == 1
    assert [len(s.entities) for s in res.sentences] == [0, 1]


def test_surface_text_with_a_newline_is_not_a_record(tmp_path):
    text = "总书\n记来了。"
    ann = "T1\tPerson-Nominal 0 4\t总书\n记\nT2\tThing 4 5\t来\n"
    res = read_brat(_write(tmp_path, text, ann), BratOptions(wrap_width=2))
    assert res.rejects == [] and res.counts["continuation_lines"] == 1
    assert res.sentences[0].entities == (Entity(0, 3, "Person-Nominal"), Entity(3, 4, "Thing"))


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("T9\tThing 3 1\t乙", "span", "end must be after begin"),
        ("T9\tThing 1 x\t乙", "span", "bad span"),
        ("T9\tThing 1 99\t乙", "span", "text has 6 characters"),
        ("T9\tThing\t乙", "span", "expected '<Type> <begin> <end>'"),
        ("T1\tThing 0 1\t甲", "id", "duplicate id T1"),
        ("R9\tUse Arg1:T1 Arg2:T7\t", "args", "unknown relation argument T7"),
        ("R9\tUse Arg1:T1\t", "args", "expected '<Type> Arg1:T<a> Arg2:T<b>'"),
        ("R9\tUse Arg1:T1 Arg2:T1\t", "args", "same entity"),
    ],
)
def test_bad_lines_are_rejected_with_file_and_line(tmp_path, line, field, words):
    text = "甲乙。丙丁。"
    ann = f"T1\tThing 0 1\t甲\nT2\tThing 3 4\t丙\n{line}\n"
    path = _write(tmp_path, text, ann)
    res = read_brat(path, NO_WRAP)
    (rej,) = res.rejects
    assert (rej.file, rej.line, rej.field) == (str(path.with_suffix(".ann")), 3, field)
    assert words in rej.reason
    assert res.counts["records_read"] == res.counts["records_kept"] + 1 == 3


def test_missing_ann_rejects_the_document(tmp_path):
    (tmp_path / "1.txt").write_text("甲。", encoding="utf-8")
    res = read_brat(tmp_path / "1.txt")
    assert res.sentences == [] and res.rejects[0].field == "file"
    assert "cannot read document" in res.rejects[0].reason


@pytest.mark.shared_data
def test_real_document(chinese_literature_dir):
    res = read_brat(chinese_literature_dir / "relation_extraction" / "Training" / "0.txt")
    assert res.rejects == []
    ents = [e for s in res.sentences for e in s.entities]
    rels = [r for s in res.sentences for r in s.relations]
    assert len(ents) > 50 and len(rels) > 5
    for s in res.sentences:
        assert all(0 <= e.start < e.end <= len(s.tokens) for e in s.entities)
        assert not any(t.isspace() for t in s.tokens)


def test_annotations_with_a_byte_order_mark_and_crlf(tmp_path):
    text = "张三住在北京。"
    ann = "\r\n".join(["T1\tPerson-Name 0 2\t张三", "T2\tLocation-Name 4 6\t北京",
                       "R1\tLocated Arg1:T1 Arg2:T2\t", ""])
    path = _write(tmp_path, text, ann)
    path.with_suffix(".ann").write_bytes(b"\xef\xbb\xbf" + ann.encode())
    res = read_brat(path, NO_WRAP)
    assert res.rejects == []
    (s,) = res.sentences
    assert s.entities == (Entity(0, 2, "Person-Name"), Entity(4, 6, "Location-Name"))
    assert s.relations == (Relation(0, 1, "Located"),)
