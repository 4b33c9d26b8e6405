"""End-to-end scores: the tagger's mentions, then the relations found between them, against
the gold annotations (the "strict" setting of joint entity and relation extraction).

A predicted mention counts if its span and its type are a gold mention's. A predicted
relation counts only if both mentions' spans and types and the relation type are right, and,
for a model trained in ordered mode, its direction too. An unordered model does not decide the
direction, so its relations are compared as unordered pairs (the summary says which).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from relext_ray.corpus.records import Entity, Sentence
from relext_ray.instances.vocab import OTHER
from relext_ray.training.metrics import prf
from relext_ray.training.tagging import mention_spans

COUNT_KEYS = ("entity_tp", "entity_predicted", "entity_gold",
              "relation_tp", "relation_predicted", "relation_gold")


def untag(sentence: Sentence) -> Sentence:
    """The sentence as raw text: no mentions, no relations, for the tagger to find."""
    return replace(sentence, entities=(), relations=(), untagged=True)


def _mention(e: Entity) -> tuple[int, int, str]:
    return e.start, e.end, e.type


def _relation(a: Entity, b: Entity, label: str, directed: bool) -> tuple:
    ka, kb = _mention(a), _mention(b)
    if not directed and kb < ka:
        ka, kb = kb, ka
    return ka, kb, label


def gold_relations(sentence: Sentence, directed: bool) -> set[tuple]:
    return {_relation(sentence.entities[r.head], sentence.entities[r.tail], r.type, directed)
            for r in sentence.relations}


def predicted_relations(sentence: Sentence, rows: Iterable[dict[str, Any]],
                        directed: bool) -> set[tuple]:
    """The relations of one sentence's scored pairs (``head``/``tail`` index its mentions)."""
    return {_relation(sentence.entities[r["head"]], sentence.entities[r["tail"]],
                      r["relation"], directed)
            for r in rows if r["relation"] != OTHER}


def end_to_end_counts(gold: Sequence[Sentence], tagged: Sequence[Sentence],
                      rows: Iterable[dict[str, Any]], directed: bool) -> Counter[str]:
    """Counts for entity and relation P/R/F1 (``COUNT_KEYS``), summable across batches.

    Args:
        gold: Sentences with their gold mentions and relations.
        tagged: The same sentences (same ids, same order) with the tagger's mentions.
        rows: The scored pairs of ``tagged`` (prediction rows).
        directed: Whether the model decides the direction (ordered mode).
    """
    by_sentence: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_sentence.setdefault(r["sentence_id"], []).append(r)
    c: Counter[str] = Counter({k: 0 for k in COUNT_KEYS})
    for g, t in zip(gold, tagged, strict=True):
        gm, tm = mention_spans(g), mention_spans(t)
        c["entity_tp"] += len(gm & tm)
        c["entity_predicted"] += len(tm)
        c["entity_gold"] += len(gm)
        gr = gold_relations(g, directed)
        pr = predicted_relations(t, by_sentence.get(t.id, []), directed)
        c["relation_tp"] += len(gr & pr)
        c["relation_predicted"] += len(pr)
        c["relation_gold"] += len(gr)
    return c


def end_to_end_scores(counts: dict[str, int]) -> dict[str, float]:
    """``entity_{precision,recall,f1}`` and ``end_to_end_{precision,recall,f1}``."""
    out: dict[str, float] = {}
    for name, prefix in (("entity", "entity"), ("relation", "end_to_end")):
        p, r, f = prf(int(counts.get(f"{name}_tp", 0)), int(counts.get(f"{name}_predicted", 0)),
                      int(counts.get(f"{name}_gold", 0)))
        out.update({f"{prefix}_precision": p, f"{prefix}_recall": r, f"{prefix}_f1": f})
    return out
