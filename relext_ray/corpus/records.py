"""The canonical corpus record every reader produces and every later stage consumes.

One sentence, its tokens (words, or characters for Chinese), its entity mentions as token
offsets (end exclusive) and its relations as indices into the mentions. It is also the
line format of our JSONL (``Sentence.to_dict`` / ``sentence_from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from relext_ray.errors import RecordError


@dataclass(frozen=True, slots=True)
class Entity:
    start: int
    end: int
    type: str
    score: float | None = None  # the tagger's confidence, for a predicted mention


@dataclass(frozen=True, slots=True)
class Relation:
    head: int
    tail: int
    type: str


@dataclass(frozen=True, slots=True)
class Sentence:
    id: str
    tokens: tuple[str, ...]
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    # Read from raw text: each token's [start, end) characters in its source (the text file,
    # or the record's ``text``), so output can point at the source span; empty otherwise.
    char_spans: tuple[tuple[int, int], ...] = ()
    # Raw text has no entity annotations: a tagger is to find the mentions (``entities`` is
    # empty until then); ``tagged``: the mentions are the tagger's.
    untagged: bool = False
    tagged: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "tokens": list(self.tokens),
            "entities": [{"start": e.start, "end": e.end, "type": e.type} for e in self.entities],
            "relations": [{"head": r.head, "tail": r.tail, "type": r.type} for r in self.relations],
        }
        if self.char_spans:
            out["char_spans"] = [list(span) for span in self.char_spans]
        return out

    @property
    def record_id(self) -> str:
        """The id of the record it came from: a raw text's sentences are ``<record>:<k>``."""
        return self.id.rsplit(":", 1)[0] if self.char_spans else self.id

    def renamed(self, record_id: str) -> Sentence:
        """The same sentence under a new record id (its sentence number kept)."""
        if self.char_spans:
            return replace(self, id=f"{record_id}:{self.id.rsplit(':', 1)[1]}")
        return replace(self, id=record_id)

    def char_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The characters of tokens [start, end) in the source text, when known."""
        if not self.char_spans:
            return None
        return self.char_spans[start][0], self.char_spans[end - 1][1]


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that could not be read, and why; written to ``rejects.jsonl``."""

    file: str
    line: int
    reason: str
    split: str = ""
    field: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
        }


@dataclass(slots=True)
class ReadResult:
    """What reading one unit of input gave: sentences, rejects and counters for the statistics."""

    sentences: list[Sentence] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # Where each sentence came from, as ``Reject.line`` counts: the JSONL line, the CoNLL04
    # record number, the sentence number of a brat document (all 1-based).
    lines: list[int] = field(default_factory=list)

    def keep(self, sentence: Sentence, line: int) -> None:
        self.sentences.append(sentence)
        self.lines.append(line)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def _int(value: Any, field_name: str) -> int:
    # bool is an int in Python; a JSON true/false offset is a mistake, not a 1/0.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(field_name, f"expected an integer, got {value!r}")
    return value


def _str(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise RecordError(field_name, f"expected a non-empty string, got {value!r}")
    return value


def _list(value: Any, field_name: str) -> list:
    if not isinstance(value, list):
        raise RecordError(field_name, f"expected a list, got {type(value).__name__}")
    return value


def check_entity(start: Any, end: Any, type_: Any, n_tokens: int, where: str) -> Entity:
    start = _int(start, f"{where}.start")
    end = _int(end, f"{where}.end")
    type_ = _str(type_, f"{where}.type")
    if end < start:
        raise RecordError(where, f"end {end} is before start {start}")
    if end == start:
        raise RecordError(where, f"empty span [{start}, {end})")
    if start < 0 or end > n_tokens:
        raise RecordError(where, f"span [{start}, {end}) is out of range for {n_tokens} tokens")
    return Entity(start, end, type_)


def _fields(obj: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """``obj`` as a dict that has every key, or a ``RecordError`` naming what is missing."""
    if not isinstance(obj, dict):
        raise RecordError(where, f"expected an object with {', '.join(keys)}")
    for key in keys:
        if key not in obj:
            raise RecordError(f"{where}.{key}", "missing field")
    return obj


def check_entities(raw: Any, n_tokens: int) -> tuple[Entity, ...]:
    entities = []
    for i, ent in enumerate(_list(raw, "entities")):
        where = f"entities[{i}]"
        ent = _fields(ent, ("start", "end", "type"), where)
        entities.append(check_entity(ent["start"], ent["end"], ent["type"], n_tokens, where))
    return tuple(entities)


def check_relations(raw: Any, n_entities: int) -> tuple[Relation, ...]:
    relations = []
    for i, rel in enumerate(_list(raw, "relations")):
        where = f"relations[{i}]"
        rel = _fields(rel, ("head", "tail", "type"), where)
        head = _int(rel["head"], f"{where}.head")
        tail = _int(rel["tail"], f"{where}.tail")
        for name, idx in (("head", head), ("tail", tail)):
            if not 0 <= idx < n_entities:
                raise RecordError(
                    f"{where}.{name}", f"unknown relation argument {idx} ({n_entities} entities)"
                )
        if head == tail:
            raise RecordError(where, f"head and tail are the same entity {head}")
        relations.append(Relation(head, tail, _str(rel["type"], f"{where}.type")))
    return tuple(relations)


def check_tokens(raw: Any) -> tuple[str, ...]:
    tokens = _list(raw, "tokens")
    if not tokens:
        raise RecordError("tokens", "a sentence needs at least one token")
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str) or not tok:
            raise RecordError(f"tokens[{i}]", f"expected a non-empty string, got {tok!r}")
    return tuple(tokens)


def record_tokens(obj: Any) -> tuple[str, ...]:
    """The tokens of a record that must be a JSON object with a ``tokens`` list."""
    if not isinstance(obj, dict):
        raise RecordError("", f"expected a JSON object, got {type(obj).__name__}")
    if "tokens" not in obj:
        raise RecordError("tokens", "missing field")
    return check_tokens(obj["tokens"])


def sentence_from_dict(obj: Any, default_id: str) -> Sentence:
    """Validate one canonical record; raise ``RecordError`` naming the bad field.

    A record without an ``entities`` field is untagged (a tagger is to find its mentions);
    ``"entities": []`` says it has none."""
    tokens = record_tokens(obj)
    sid = obj.get("id", default_id)
    if isinstance(sid, int) and not isinstance(sid, bool):
        sid = str(sid)
    sid = _str(sid, "id")
    entities = check_entities(obj.get("entities", []), len(tokens))
    return Sentence(sid, tokens, entities, check_relations(obj.get("relations", []), len(entities)),
                    untagged="entities" not in obj)


def reject_long(result: ReadResult, path: str, max_tokens: int | None) -> list[Reject]:
    """Remove the sentences of more than ``max_tokens`` tokens from ``result``; return their
    rejects (file, line, field ``tokens``, the reason). The limit of ``--max-tokens`` in
    predict and prepare: the work a sentence makes grows with its length and with the square of
    its mentions, so one record could otherwise cost more than a whole corpus."""
    if max_tokens is None:
        return []
    rejects, keep, lines = [], [], []
    for s, line in zip(result.sentences, result.lines, strict=True):
        if len(s.tokens) > max_tokens:
            rejects.append(Reject(path, line, f"{len(s.tokens):,} tokens, more than the limit of "
                                  f"{max_tokens:,} (--max-tokens)", field="tokens"))
        else:
            keep.append(s)
            lines.append(line)
    result.sentences, result.lines = keep, lines
    return rejects
