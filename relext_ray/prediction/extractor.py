"""Relations from raw strings or records, in-process: the Python API (``relext_ray.load``).

For a program that has a few texts at a time (a service, a notebook): no Ray, no files. The
same model, instance rules and threshold as batch prediction; raw text goes through the model's
tagger first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relext_ray.corpus.jsonl import text_record
from relext_ray.corpus.records import Sentence, sentence_from_dict
from relext_ray.corpus.text import text_sentences
from relext_ray.errors import RecordError, RelextError
from relext_ray.instances.vocab import OTHER
from relext_ray.prediction.predictor import Predictor


@dataclass
class Extractor:
    """A relation model (and its tagger) ready to extract from texts."""

    predictor: Predictor

    def _sentences(self, item: str | Mapping[str, Any], i: int) -> list[Sentence]:
        tok = self.predictor.tokenization
        if isinstance(item, str):
            return text_sentences(item, f"text:{i}", tok)
        if isinstance(item, Mapping):
            obj = dict(item)
            try:
                if "text" in obj and "tokens" not in obj:
                    return text_record(obj, f"text:{i}", tok)
                return [sentence_from_dict(obj, f"record:{i}")]
            except RecordError as exc:
                raise RelextError(f"extract: item {i}: {exc}") from None
        raise RelextError(f"extract: item {i} is a {type(item).__name__}: give a string or a "
                          "record (a dict with text, or tokens and optionally entities)")

    def extract(self, items: Sequence[str | Mapping[str, Any]], theta: float | None = None
                ) -> list[dict[str, Any]]:
        """The mentions and relations of each item.

        Args:
            items: Raw strings, raw-text records (``{"text": ..., "id": ...}``) or canonical
                records (``tokens``, and ``entities`` to use given mentions instead of the
                tagger's).
            theta: The decision threshold (default: the model's).

        Returns:
            Per item, in order: ``{"id", "entities": [...], "relations": [...]}``. An entity
            has its ``text``, ``type``, token span (``sentence``, ``start``, ``end``), its
            characters in the item's text (``char_start``, ``char_end``; raw text only) and
            the tagger's ``score`` (predicted mentions only); a relation names its ``head`` and
            ``tail`` by index into ``entities``, its ``type`` and ``score``. Pairs predicted as
            Other are left out.
        """
        per_item = [self._sentences(item, i) for i, item in enumerate(items)]
        flat = self.predictor.tag([s for group in per_item for s in group])
        scored = self.predictor.score(flat, theta).table.to_pylist()
        by_sentence: dict[str, list[dict[str, Any]]] = {}
        for row in scored:
            if row["relation"] != OTHER:
                by_sentence.setdefault(row["sentence_id"], []).append(row)
        joiner = self.predictor.joiner
        out, k = [], 0
        for i, group in enumerate(per_item):
            sentences = flat[k:k + len(group)]
            k += len(group)
            entities: list[dict[str, Any]] = []
            relations: list[dict[str, Any]] = []
            for n, s in enumerate(sentences):
                first = len(entities)
                for e in s.entities:
                    span = s.char_span(e.start, e.end)
                    entities.append({
                        "text": joiner.join(s.tokens[e.start:e.end]), "type": e.type,
                        "sentence": n, "start": e.start, "end": e.end,
                        "char_start": span[0] if span else None,
                        "char_end": span[1] if span else None, "score": e.score})
                for row in by_sentence.get(s.id, []):
                    relations.append({"head": first + row["head"], "tail": first + row["tail"],
                                      "type": row["relation"], "score": row["score"]})
            out.append({"id": group[0].record_id if group else f"text:{i}",
                        "entities": entities, "relations": relations})
        return out
