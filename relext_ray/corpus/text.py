"""Raw text in: sentences of tokens, each token with its character span in the source.

No entity annotations are needed: a model's tagger finds the mentions. Tokenization follows
the model's corpus: words for English (``syntok``, a rule-based segmenter and tokenizer that
keeps offsets; it does not end a sentence at "Dr.", and an abbreviation's period stays on
its word, "Dr." and "Inc." as CoNLL04 writes them, unless it ends the sentence) or characters for
Chinese (every non-space character is a token; sentences end after 。！？!?; or a line break).

A ``.txt`` file is one document per line, or, when it has blank lines, one document per
paragraph (the lines between blank lines). A document's sentences are named
``<file stem>:<line>:<k>`` (its first line, 1-based, and the sentence's number in it), and
their ``char_spans`` index the document's text: the line, or the paragraph's lines joined
with the newlines they had, so ``text[start:end]`` is the mention exactly as written.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from relext_ray.corpus.records import ReadResult, Reject, Sentence

Tokenization = Literal["words", "characters"]
CHINESE_ENDS = frozenset("。！？!?；;")


def _word_sentences(text: str) -> Iterator[list[tuple[str, int, int]]]:
    import syntok.segmenter as segmenter

    for paragraph in segmenter.analyze(text):
        for sentence in paragraph:
            toks: list[tuple[str, int, int]] = []
            last = len(sentence) - 1
            for k, tok in enumerate(sentence):
                start = tok.offset
                end = start + len(tok.value)
                prev = toks[-1] if toks else None
                if (tok.value == "." and prev is not None and prev[2] == start and k < last
                        and prev[0].isalpha() and len(prev[0]) <= 4):
                    toks[-1] = (text[prev[1]:end], prev[1], end)  # "Dr" "." -> "Dr."
                    continue
                # syntok may join a word hyphenated across a line break; keep the source span
                toks.append((text[start:end] if text[start:end] == tok.value else tok.value,
                             start, end))
            if toks:
                yield toks


def _char_sentences(text: str) -> Iterator[list[tuple[str, int, int]]]:
    toks: list[tuple[str, int, int]] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if ch in "\r\n" and toks:
                yield toks
                toks = []
            continue
        toks.append((ch, i, i + 1))
        if ch in CHINESE_ENDS:
            yield toks
            toks = []
    if toks:
        yield toks


def split_text(text: str, tokenization: Tokenization) -> list[list[tuple[str, int, int]]]:
    """A text's sentences, each a list of (token, start, end) with end exclusive."""
    split = _word_sentences if tokenization == "words" else _char_sentences
    return list(split(text))


def text_sentences(text: str, prefix: str, tokenization: Tokenization) -> list[Sentence]:
    """Untagged sentences of ``text``, named ``<prefix>:<k>`` (k from 1)."""
    out = []
    for k, toks in enumerate(split_text(text, tokenization), start=1):
        out.append(Sentence(f"{prefix}:{k}", tuple(t for t, _, _ in toks),
                            char_spans=tuple((s, e) for _, s, e in toks), untagged=True))
    return out


def _decoded(raw: bytes, lineno: int) -> str:
    if b"\x00" in raw:
        raise ValueError("binary data (a NUL byte), not text")
    return raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")


def has_paragraphs(path: str | Path) -> bool:
    """Whether the file separates its documents by blank lines (else: one per line)."""
    with open(path, "rb") as fh:
        return any(not line.strip() for line in fh)


def text_units(path: str | Path, chunk_size: int) -> list[tuple[int, int]]:
    """[start, stop) line ranges of about ``chunk_size`` lines that never cut a paragraph."""
    paragraphs = has_paragraphs(path)
    cuts, n, since = [0], 0, 0
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            since += 1
            if since >= chunk_size and (not paragraphs or not line.strip()):
                cuts.append(n)
                since = 0
    if cuts[-1] != n or n == 0:
        cuts.append(max(n, 1))
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a] or [(0, 1)]


def read_text(path: str | Path, start: int = 0, stop: int | None = None,
              tokenization: Tokenization = "words") -> ReadResult:
    """Read the documents of lines ``[start, stop)`` (0-based) of a raw text file.

    A line that is not UTF-8 text (or holds a NUL byte: a binary file) is rejected with its
    line number and the reason; the rest of the file is still read. Counts ``documents`` and
    ``blank_lines``.
    """
    result = ReadResult()
    stem = Path(path).stem
    paragraphs = has_paragraphs(path)
    block: list[str] = []
    block_line = 0

    def flush() -> None:
        nonlocal block
        if block:
            result.count("documents")
            for s in text_sentences("\n".join(block), f"{stem}:{block_line}", tokenization):
                result.keep(s, block_line)
                result.count("records_kept")
        block = []

    with open(path, "rb") as fh:
        for lineno, raw in enumerate(itertools.islice(fh, start, stop), start=start + 1):
            if not raw.strip():
                result.count("blank_lines")
                flush()
                continue
            try:
                line = _decoded(raw, lineno)
            except (UnicodeDecodeError, ValueError) as exc:
                result.rejects.append(Reject(str(path), lineno, f"not UTF-8 text: {exc}"
                                             if isinstance(exc, UnicodeDecodeError)
                                             else str(exc)))
                flush()
                continue
            if not paragraphs:
                flush()
            if not block:
                block_line = lineno
            block.append(line)
    flush()
    return result
