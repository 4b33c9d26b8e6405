"""brat standoff (``NNN.txt`` + ``NNN.ann``) as in the Chinese Literature corpus.

Documents are split into sentences; characters are the tokens (whitespace is not a token, so a
line wrap inside a sentence leaves no trace). Only relations whose two mentions fall in one
sentence become sentence-level relations; the rest are counted, never silently lost:

* ``cross_sentence_relations_dropped`` — relation arguments in different sentences;
* ``cross_sentence_entities`` — a mention that itself spans a sentence boundary;
* ``discontinuous_spans`` — ``1004 1005;1007 1009`` spans, taken as their covering span;
* ``relations_ignored`` — relation lines of an ignored type (brat's ``Coreference``);
* ``annotations_ignored`` — ``*`` (coreference), event, attribute and note lines.

A record, for the ``records_read = kept + rejected`` accounting, is one annotation line.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

from relext_ray.corpus.records import Entity, ReadResult, Reject, Relation, Sentence

CLOSERS = "”’」』）)》\"'"
_ANN_LINE = re.compile(r"^([TREAMN#*][0-9]*)\t")
_SPAN = re.compile(r"^(\d+) (\d+)$")
_ARG = re.compile(r"^Arg[12]:(T\d+)$")


@dataclass(frozen=True)
class BratOptions:
    """How documents become sentences.

    ``wrap_width``: a newline that ends a line of exactly this many characters is a soft line
    wrap inside a sentence, not a sentence boundary. The Chinese Literature texts are
    hard-wrapped at 60 characters; splitting there would cut sentences in two and throw away
    relations. ``"auto"`` detects the width per document (``detect_wrap_width``); ``None``
    treats every newline as a boundary.
    """

    terminators: str = "。！？"
    split_on_newline: bool = True
    wrap_width: int | str | None = "auto"
    ignore_relation_types: frozenset[str] = field(default_factory=lambda: frozenset({"Coreference"}))


DEFAULT_OPTIONS = BratOptions()


def detect_wrap_width(text: str, min_len: int = 20) -> int | None:
    """The width a document was hard-wrapped at: the commonest length of its long lines.

    Short lines are paragraph ends, so only lines of ``min_len`` characters or more vote, and
    a width needs two lines of it.
    """
    votes: dict[int, int] = {}
    for line in text.split("\n")[:-1]:
        if len(line) >= min_len:
            votes[len(line)] = votes.get(len(line), 0) + 1
    if not votes:
        return None
    width, n = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
    return width if n >= 2 else None


def split_sentences(text: str, opts: BratOptions = DEFAULT_OPTIONS) -> list[tuple[int, int]]:
    """Character spans (end exclusive) of the non-empty sentences of ``text``.

    A sentence ends after a terminator (closing quotes right after it stay with it) or at a
    newline (the newline itself belongs to no sentence).
    """
    wrap = detect_wrap_width(text) if opts.wrap_width == "auto" else opts.wrap_width
    spans: list[tuple[int, int]] = []
    start = line_start = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in opts.terminators:
            j = i + 1
            while j < n and (text[j] in opts.terminators or text[j] in CLOSERS):
                j += 1
            spans.append((start, j))
            start = i = j
            continue
        if ch == "\n":
            soft = wrap is not None and i - line_start == wrap
            line_start = i + 1
            if opts.split_on_newline and not soft:
                spans.append((start, i))
                start = i + 1
        i += 1
    spans.append((start, n))
    return [(s, e) for s, e in spans if text[s:e].strip()]


@dataclass
class _Mention:
    start: int
    end: int
    type: str


def _parse_span(spec: str) -> tuple[int, int, bool]:
    """``"3 5"`` or ``"3 5;7 9"`` → covering span and whether it was discontinuous."""
    frags = []
    for frag in spec.split(";"):
        m = _SPAN.match(frag.strip())
        if not m:
            raise ValueError(f"bad span {frag.strip()!r}: expected '<begin> <end>'")
        a, b = int(m.group(1)), int(m.group(2))
        if b <= a:
            raise ValueError(f"span {a} {b}: end must be after begin")
        frags.append((a, b))
    return min(a for a, _ in frags), max(b for _, b in frags), len(frags) > 1


def read_brat(txt_path: str | Path, opts: BratOptions = DEFAULT_OPTIONS) -> ReadResult:
    """Read one document into sentence records (ids ``<stem>:<k>``)."""
    txt_path = Path(txt_path)
    ann_path = txt_path.with_suffix(".ann")
    result = ReadResult()
    result.count("documents")
    try:
        text = txt_path.read_text(encoding="utf-8")
        # A byte-order mark and CRLF line ends are accepted in the annotations.
        ann_lines = ann_path.read_text(encoding="utf-8-sig").replace("\r\n", "\n").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        result.count("records_read")
        result.rejects.append(Reject(str(txt_path), 0, f"cannot read document: {exc}", field="file"))
        return result

    mentions: dict[str, _Mention] = {}
    raw_relations: list[tuple[str, str, str, int]] = []
    ann = str(ann_path)
    for lineno, line in enumerate(ann_lines, start=1):
        if not line.strip():
            continue
        m = _ANN_LINE.match(line)
        if not m:
            # The surface text of the previous T line contained a newline; brat wrote it on.
            result.count("continuation_lines")
            continue
        result.count("records_read")
        kind = m.group(1)
        cols = line.split("\t")
        if kind[0] == "T":
            if kind in mentions:
                result.rejects.append(Reject(ann, lineno, f"duplicate id {kind}", field="id"))
                continue
            head = cols[1].split(" ", 1) if len(cols) > 1 else [""]
            if len(head) != 2 or not head[0]:
                result.rejects.append(
                    Reject(ann, lineno, "expected '<Type> <begin> <end>'", field="span")
                )
                continue
            try:
                start, end, discontinuous = _parse_span(head[1])
            except ValueError as exc:
                result.rejects.append(Reject(ann, lineno, str(exc), field="span"))
                continue
            if end > len(text):
                result.rejects.append(
                    Reject(ann, lineno, f"span ends at {end}, text has {len(text)} characters",
                           field="span")
                )
                continue
            if not text[start:end].strip():
                result.rejects.append(
                    Reject(ann, lineno, f"span {start} {end} covers only whitespace in the text",
                           field="span")
                )
                continue
            result.count("discontinuous_spans", discontinuous)
            result.count("records_kept")
            mentions[kind] = _Mention(start, end, head[0])
        elif kind[0] == "R":
            parts = cols[1].split() if len(cols) > 1 else []
            args = [_ARG.match(p) for p in parts[1:]]
            if len(parts) != 3 or not all(args):
                result.rejects.append(
                    Reject(ann, lineno, "expected '<Type> Arg1:T<a> Arg2:T<b>'", field="args")
                )
                continue
            if args[0].group(1) == args[1].group(1):
                result.rejects.append(
                    Reject(ann, lineno, "head and tail are the same entity", field="args")
                )
                continue
            raw_relations.append((parts[0], args[0].group(1), args[1].group(1), lineno))
        else:
            result.count("annotations_ignored")
            result.count("records_kept")

    spans = split_sentences(text, opts)
    starts = [s for s, _ in spans]
    # Token offsets per sentence: every non-whitespace character.
    offsets = [[o for o in range(s, e) if not text[o].isspace()] for s, e in spans]
    placed: dict[str, tuple[int, Entity]] = {}
    for tid, mnt in mentions.items():
        k = bisect.bisect_right(starts, mnt.start) - 1
        if k < 0 or mnt.end > spans[k][1]:
            result.count("cross_sentence_entities")
            continue
        offs = offsets[k]
        a = bisect.bisect_left(offs, mnt.start)
        b = bisect.bisect_left(offs, mnt.end)
        placed[tid] = (k, Entity(a, b, mnt.type))

    per_sentence_rel: dict[int, list[tuple[str, str, str]]] = {}
    for rtype, arg1, arg2, lineno in raw_relations:
        missing = [a for a in (arg1, arg2) if a not in mentions]
        if missing:
            result.rejects.append(
                Reject(ann, lineno, f"unknown relation argument {missing[0]}", field="args")
            )
            continue
        result.count("records_kept")
        if rtype in opts.ignore_relation_types:
            result.count("relations_ignored")
            continue
        if arg1 not in placed or arg2 not in placed or placed[arg1][0] != placed[arg2][0]:
            result.count("cross_sentence_relations_dropped")
            continue
        per_sentence_rel.setdefault(placed[arg1][0], []).append((rtype, arg1, arg2))

    by_sentence: dict[int, list[tuple[Entity, str]]] = {}
    for tid, (k, ent) in placed.items():
        by_sentence.setdefault(k, []).append((ent, tid))
    stem = txt_path.stem
    for k, offs in enumerate(offsets):
        ents = sorted(by_sentence.get(k, []), key=lambda et: (et[0].start, et[0].end, et[0].type, et[1]))
        index = {tid: i for i, (_, tid) in enumerate(ents)}
        rels = tuple(Relation(index[a1], index[a2], rt) for rt, a1, a2 in per_sentence_rel.get(k, []))
        result.keep(
            Sentence(f"{stem}:{k}", tuple(text[o] for o in offs), tuple(e for e, _ in ents), rels),
            k + 1)
    return result
