from collections import Counter

import pytest

from relext_ray.corpus.records import Entity, Relation, Sentence
from relext_ray.instances.features import bio_tags, stack_features
from relext_ray.instances.pairs import TypeFilter, candidate_pairs, extract, relation_type_combos
from relext_ray.instances.positions import relative_positions
from relext_ray.instances.vocab import Vocabularies, label_vocab, tag_vocab, token_vocab

# Anna Berg works for Acme in Oslo and Bob .
#  e0 Peop   e1 Org  e2 Loc   e3 Peop
SENT = Sentence(
    "s",
    ("Anna", "Berg", "works", "for", "Acme", "in", "Oslo", "and", "Bob", "."),
    (Entity(0, 2, "Peop"), Entity(4, 5, "Org"), Entity(6, 7, "Loc"), Entity(8, 9, "Peop")),
    (Relation(0, 1, "Work_For"), Relation(1, 2, "OrgBased_In"), Relation(3, 2, "Live_In")),
)


def _labels(instances):
    return {(i.e1, i.e2): (i.label, i.direction) for i in instances}


def test_unordered_mode_by_hand():
    pairs, conflicts = candidate_pairs(SENT, "unordered")
    assert conflicts == 0
    assert _labels(pairs) == {
        (0, 1): ("Work_For", 1), (0, 2): ("Other", 0), (0, 3): ("Other", 0),
        (1, 2): ("OrgBased_In", 1), (1, 3): ("Other", 0),
        (2, 3): ("Live_In", -1),  # annotated Bob → Oslo, Oslo comes first in the sentence
    }


def test_ordered_mode_by_hand():
    pairs, _ = candidate_pairs(SENT, "ordered")
    assert len(pairs) == 12
    positives = {k: v for k, v in _labels(pairs).items() if v[0] != "Other"}
    assert positives == {(0, 1): ("Work_For", 1), (1, 2): ("OrgBased_In", 1),
                         (3, 2): ("Live_In", 1)}
    assert len({(i.e1, i.e2) for i in pairs}) == 12


def test_unordered_pairs_follow_sentence_order_not_mention_order():
    s = Sentence("t", ("a", "b", "c"), (Entity(2, 3, "X"), Entity(0, 1, "Y")),
                 (Relation(0, 1, "R"),))
    (inst,), _ = candidate_pairs(s, "unordered")
    assert (inst.e1, inst.e2, inst.label, inst.direction) == (1, 0, "R", -1)


def test_conflicting_annotations_are_counted():
    s = Sentence("t", ("a", "b"), (Entity(0, 1, "X"), Entity(1, 2, "Y")),
                 (Relation(0, 1, "R1"), Relation(1, 0, "R2")))
    assert candidate_pairs(s, "unordered")[1] == 1
    assert candidate_pairs(s, "ordered")[1] == 0


def test_type_filter_unordered():
    f = TypeFilter("unordered", frozenset(relation_type_combos([SENT], "unordered")))
    assert f.combos == {("Org", "Peop"), ("Loc", "Org"), ("Loc", "Peop")}
    kept, dropped, _ = extract(SENT, "unordered", f)
    assert [(i.e1, i.e2) for i in dropped] == [(0, 3)]  # Peop-Peop never holds a relation
    assert len(kept) == 5


def test_type_filter_ordered():
    f = TypeFilter("ordered", frozenset(relation_type_combos([SENT], "ordered")))
    assert f.combos == {("Peop", "Org"), ("Org", "Loc"), ("Peop", "Loc")}
    kept, dropped, _ = extract(SENT, "ordered", f)
    assert sorted((i.e1, i.e2) for i in kept) == [(0, 1), (0, 2), (1, 2), (3, 1), (3, 2)]
    assert len(dropped) == 7
    assert Counter(i.label == "Other" for i in kept) == {False: 3, True: 2}


def test_type_filter_round_trip(tmp_path):
    f = TypeFilter("ordered", frozenset({("A", "B")}))
    f.save(tmp_path / "f.json")
    assert TypeFilter.load(tmp_path / "f.json") == f
    assert f.keeps("A", "B") and not f.keeps("B", "A")
    assert TypeFilter("unordered", frozenset({("A", "B")})).keeps("B", "A")


def test_bio_tags_nested_and_adjacent():
    toks = tuple("abcdef")
    nested = Sentence("n", toks, (Entity(1, 3, "Y"), Entity(0, 4, "X"), Entity(4, 5, "Z"),
                                  Entity(5, 6, "Z")))
    assert bio_tags(nested) == ["B-X", "I-X", "I-X", "I-X", "B-Z", "B-Z"]
    overlapping = Sentence("o", toks, (Entity(0, 3, "X"), Entity(2, 5, "Y")))
    assert bio_tags(overlapping) == ["B-X", "I-X", "I-X", "B-Y", "I-Y", "O"]


@pytest.mark.parametrize(("max_d", "expected"), [
    (10, [-2, -1, 0, 0, 1, 2]),
    (1, [-1, -1, 0, 0, 1, 1]),
])
def test_relative_positions_are_clipped(max_d, expected):
    assert relative_positions(6, 2, 4, max_d).tolist() == expected
    both = relative_positions(6, [2, 0], [4, 1], max_d)
    assert both.shape == (2, 6) and both[0].tolist() == expected


def test_sentence_and_pair_features():
    vocabs = Vocabularies(
        tokens=token_vocab(Counter(["Anna", "Berg", "Acme", "Acme"]), min_freq=1),
        tags=tag_vocab(["Peop", "Org"]),  # Loc unseen in "training"
        labels=label_vocab(["Work_For", "OrgBased_In"]),
    )
    st = stack_features([SENT], "unordered", None, vocabs)
    # the sentence once, whatever its number of pairs
    assert st.sentence_ids == ["s"] and st.offsets.tolist() == [0, 10]
    unk = vocabs.tokens.id("<unk>")
    assert st.tokens.tolist() == [vocabs.tokens.id("Anna"), vocabs.tokens.id("Berg"), unk, unk,
                                  vocabs.tokens.id("Acme"), unk, unk, unk, unk, unk]
    t = vocabs.tags
    assert st.tags[:3].tolist() == [t.id("B-Peop"), t.id("I-Peop"), t.id("O")]
    assert st.tags[6] == t.id("B-<unk>")  # Loc
    c = st.pairs
    assert len(c["instance_id"]) == 6 and set(c["sentence"]) == {0}
    assert c["instance_id"][0] == "s|0|1" and (c["e1"][0], c["e2"][0]) == (0, 1)
    first = SENT.entities[0]
    assert (c["e1_start"][0], c["e1_end"][0], c["e1_type"][0]) == (first.start, first.end,
                                                                      first.type)
    assert (c["label"][0], c["label_id"][0]) == ("Work_For", vocabs.labels.id("Work_For"))
    assert c["label_id"][c["label"].index("Live_In")] == -1  # a class training never had


def test_vocab_min_freq_and_ids_are_stable():
    counts = Counter({"b": 2, "a": 2, "c": 1})
    v = token_vocab(counts, min_freq=2)
    assert v.items == ("<pad>", "<unk>", "a", "b")
    assert v.id("c") == 1 and v.id("<pad>") == 0
    assert label_vocab(["Z", "A"]).items == ("Other", "A", "Z")
