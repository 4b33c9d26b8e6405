"""The project's own JSONL: one canonical record per line (also ``predict``'s input)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from relext_ray.corpus.records import ReadResult, Reject, Sentence, sentence_from_dict
from relext_ray.corpus.text import Tokenization, text_sentences
from relext_ray.errors import RecordError


def text_record(obj: dict, default_id: str, tokenization: Tokenization) -> list[Sentence]:
    """A raw-text record (``text``, optional ``id``, no ``tokens``): its untagged sentences,
    named ``<id>:<k>``, with character spans into ``text``."""
    text = obj["text"]
    if not isinstance(text, str):
        raise RecordError("text", f"expected a string, got {type(text).__name__}")
    sid = obj.get("id", default_id)
    sid = str(sid) if isinstance(sid, int) and not isinstance(sid, bool) else sid
    if not isinstance(sid, str) or not sid:
        raise RecordError("id", f"expected a non-empty string, got {sid!r}")
    sentences = text_sentences(text, sid, tokenization)
    if not sentences:
        raise RecordError("text", "no tokens in the text")
    return sentences


def read_jsonl(path: str | Path, start: int = 0, stop: int | None = None,
               tokenization: Tokenization = "words") -> ReadResult:
    """Read lines ``[start, stop)`` (0-based) of a JSONL file.

    Blank lines are not records (counted as ``blank_lines``); a UTF-8 byte-order mark before the
    first line and CRLF line ends are accepted. A record with ``text`` and no ``tokens`` is raw
    text: cut into sentences and tokens by ``tokenization`` (the model's).
    """
    result = ReadResult()
    stem = Path(path).stem
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(itertools.islice(fh, start, stop), start=start + 1):
            if not raw.strip():
                result.count("blank_lines")
                continue
            result.count("records_read")
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                result.rejects.append(Reject(str(path), lineno, f"not UTF-8 text: {exc}"))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                result.rejects.append(
                    Reject(str(path), lineno, f"invalid JSON at column {exc.colno}: {exc.msg}")
                )
                continue
            try:
                if isinstance(obj, dict) and "text" in obj and "tokens" not in obj:
                    for s in text_record(obj, f"{stem}:{lineno}", tokenization):
                        result.keep(s, lineno)
                else:
                    result.keep(sentence_from_dict(obj, f"{stem}:{lineno}"), lineno)
                result.count("records_kept")
            except RecordError as exc:
                result.rejects.append(Reject(str(path), lineno, str(exc), field=exc.field))
    return result


def count_lines(path: str | Path) -> int:
    """Physical lines in a file, read in 1 MiB blocks (fast on large corpora)."""
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def write_jsonl(sentences: list[Sentence], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for s in sentences:
            fh.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
