"""CoNLL04 JSON (the SpERT split) in both public variants.

* BILOU ``tags`` per token (the TablERT-CNN copy): entities are the tag spans in order of
  appearance, and relation ``head``/``tail`` index that list.
* ``entities: [{type, start, end}]`` (the SpERT data server's copy).

Each file is one JSON array; a record's "line" in rejects is its 1-based position in the array.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from relext_ray.corpus.records import (
    Entity,
    ReadResult,
    Reject,
    Sentence,
    check_entities,
    check_relations,
    record_tokens,
)
from relext_ray.errors import RecordError


def entities_from_tags(tags: list[Any], n_tokens: int) -> list[Entity]:
    """Decode BILOU (or plain BIO) tags into entity spans, in order of appearance."""
    if len(tags) != n_tokens:
        raise RecordError("tags", f"{len(tags)} tags for {n_tokens} tokens")
    entities: list[Entity] = []
    open_start, open_type = -1, ""

    def close(end: int) -> None:
        nonlocal open_start, open_type
        if open_start >= 0:
            entities.append(Entity(open_start, end, open_type))
        open_start, open_type = -1, ""

    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise RecordError(f"tags[{i}]", f"expected a string, got {tag!r}")
        if tag == "O":
            close(i)
            continue
        prefix, _, etype = tag.partition("-")
        if prefix not in ("B", "I", "L", "U") or not etype:
            raise RecordError(f"tags[{i}]", f"{tag!r} is not O or B-/I-/L-/U-<type>")
        if prefix in ("B", "U"):
            close(i)
            open_start, open_type = i, etype
            if prefix == "U":
                close(i + 1)
        else:
            if open_start < 0 or open_type != etype:
                raise RecordError(f"tags[{i}]", f"{tag!r} does not continue an open {etype} entity")
            if prefix == "L":
                close(i + 1)
    close(n_tokens)
    return entities


def record_to_sentence(obj: Any, sid: str) -> Sentence:
    tokens = record_tokens(obj)
    if "entities" in obj:
        entities = list(check_entities(obj["entities"], len(tokens)))
    elif "tags" in obj:
        if not isinstance(obj["tags"], list):
            raise RecordError("tags", "expected a list")
        entities = entities_from_tags(obj["tags"], len(tokens))
    else:
        raise RecordError("entities", "missing field (neither 'entities' nor 'tags' is present)")
    relations = check_relations(obj.get("relations", []), len(entities))
    return Sentence(sid, tokens, tuple(entities), relations)


@functools.lru_cache(maxsize=4)
def _load_array(path: str, mtime_ns: int) -> list[Any] | str:
    """The file's records, or the parse error as text. Cached: each chunk of a file re-reads it."""
    try:
        # utf-8-sig: a byte-order mark is accepted (JSON allows CRLF as whitespace anyway)
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text: {exc}"
    except json.JSONDecodeError as exc:
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if not isinstance(data, list):
        return f"expected a JSON array of records, got {type(data).__name__}"
    return data


def load_records(path: str | Path) -> list[Any] | str:
    p = Path(path)
    return _load_array(str(p), p.stat().st_mtime_ns)


def read_conll04(path: str | Path, start: int = 0, stop: int | None = None) -> ReadResult:
    """Read records ``[start, stop)`` of one CoNLL04 file; a broken file is one reject."""
    result = ReadResult()
    records = load_records(path)
    if isinstance(records, str):
        if start == 0:  # report a broken file once, not once per chunk
            result.count("records_read")
            result.rejects.append(Reject(str(path), 0, records, field="file"))
        return result
    stem = Path(path).stem
    for idx in range(start, len(records) if stop is None else min(stop, len(records))):
        result.count("records_read")
        try:
            result.keep(record_to_sentence(records[idx], f"{stem}:{idx}"), idx + 1)
            result.count("records_kept")
        except RecordError as exc:
            result.rejects.append(Reject(str(path), idx + 1, str(exc), field=exc.field))
    return result
