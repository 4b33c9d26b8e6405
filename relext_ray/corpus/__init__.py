"""Corpus records and readers: every format becomes the same ``Sentence`` record."""

from relext_ray.corpus.brat import BratOptions, read_brat, split_sentences
from relext_ray.corpus.conll04 import read_conll04
from relext_ray.corpus.jsonl import read_jsonl, write_jsonl
from relext_ray.corpus.records import Entity, ReadResult, Reject, Relation, Sentence
from relext_ray.corpus.sources import CORPORA, Unit, discover, plan_units, read_unit

__all__ = [
    "CORPORA",
    "BratOptions",
    "Entity",
    "ReadResult",
    "Reject",
    "Relation",
    "Sentence",
    "Unit",
    "discover",
    "plan_units",
    "read_brat",
    "read_conll04",
    "read_jsonl",
    "read_unit",
    "split_sentences",
    "write_jsonl",
]
