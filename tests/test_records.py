import pytest

from relext_ray.corpus.records import Entity, Relation, Sentence, sentence_from_dict
from relext_ray.errors import RecordError

GOOD = {
    "id": "s1",
    "tokens": ["Anna", "works", "for", "Acme", "."],
    "entities": [{"start": 0, "end": 1, "type": "Peop"}, {"start": 3, "end": 4, "type": "Org"}],
    "relations": [{"head": 0, "tail": 1, "type": "Work_For"}],
}


def test_round_trip():
    s = sentence_from_dict(GOOD, "x")
    assert s == Sentence("s1", ("Anna", "works", "for", "Acme", "."),
                         (Entity(0, 1, "Peop"), Entity(3, 4, "Org")),
                         (Relation(0, 1, "Work_For"),))
    assert sentence_from_dict(s.to_dict(), "x") == s


def test_defaults_for_unlabelled_input():
    s = sentence_from_dict({"tokens": ["a", "b"]}, "f:3")
    assert (s.id, s.entities, s.relations) == ("f:3", (), ())


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"tokens": []}, "tokens", "at least one token"),
        ({"tokens": "Anna works"}, "tokens", "expected a list"),
        ({"entities": [{"start": 3, "end": 1, "type": "Org"}]}, "entities[0]", "before start"),
        ({"entities": [{"start": 2, "end": 2, "type": "Org"}]}, "entities[0]", "empty span"),
        ({"entities": [{"start": 4, "end": 9, "type": "Org"}]}, "entities[0]", "out of range"),
        ({"entities": [{"start": 0, "end": 1}]}, "entities[0].type", "missing field"),
        ({"entities": [{"start": True, "end": 1, "type": "X"}]}, "entities[0].start", "integer"),
        ({"relations": [{"head": 0, "tail": 5, "type": "R"}]}, "relations[0].tail",
         "unknown relation argument"),
        ({"relations": [{"head": 0, "type": "R"}]}, "relations[0].tail", "missing field"),
        ({"relations": [{"head": 1, "tail": 1, "type": "R"}]}, "relations[0]", "same entity"),
    ],
)
def test_bad_records_name_the_field(patch, field, words):
    with pytest.raises(RecordError) as err:
        sentence_from_dict({**GOOD, **patch}, "x")
    assert err.value.field == field
    assert words in str(err.value)


def test_missing_tokens():
    with pytest.raises(RecordError, match="tokens: missing field"):
        sentence_from_dict({"id": "a"}, "x")
