"""A tiny synthetic English corpus, written from templates, for the demo and fast tests.

It has the shape of CoNLL04 (Peop/Org/Loc/Other mentions, directed relations, many more
unrelated pairs than related ones) and is deterministic for a seed. The copy shipped in
``relext_ray/corpus/sample_data`` is ``python -m relext_ray.cli.sample``.
"""

from __future__ import annotations

import random
from pathlib import Path

from relext_ray.corpus.jsonl import write_jsonl
from relext_ray.corpus.records import Entity, Relation, Sentence

SAMPLE_DIR = Path(__file__).parent / "sample_data"
SPLIT_SIZES = {"train": 400, "dev": 100, "test": 100}

PEOPLE = [
    "Anna Berg", "Tomas Lind", "Maria Costa", "John Harper", "Li Wei", "Omar Haddad",
    "Sara Novak", "Peter Quinn", "Elena Ruiz", "David Okafor", "Yuki Sato", "Karl Weiss",
]
ORGS = [
    "Northwind Traders", "Acme Corp", "Blue River Bank", "the Harbor Institute",
    "Globex", "Redwood Press", "the City Council", "Summit Labs",
]
LOCS = ["Lisbon", "Oslo", "Nairobi", "Toronto", "Kyoto", "Portland", "Valencia", "Accra"]
REGIONS = ["Portugal", "Norway", "Kenya", "Canada", "Japan", "Oregon", "Spain", "Ghana"]
DATES = ["Monday", "last spring", "June 4", "this week", "1998"]

# A template is text with {slot:Type} markers and relations (head slot, tail slot, type).
TEMPLATES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("{p:Peop} , who works for {o:Org} , lives in {l:Loc} .",
     [("p", "o", "Work_For"), ("p", "l", "Live_In")]),
    ("{o:Org} , based in {l:Loc} , hired {p:Peop} on {d:Other} .",
     [("o", "l", "OrgBased_In"), ("p", "o", "Work_For")]),
    ("{l:Loc} is a port city in {r:Loc} , far from {l2:Loc} .", [("l", "r", "Located_In")]),
    ("Police said {p:Peop} shot {q:Peop} near {l:Loc} on {d:Other} .", [("p", "q", "Kill")]),
    ("{p:Peop} met {q:Peop} in {l:Loc} on {d:Other} to talk about {o:Org} .", []),
    ("The {o:Org} office in {l:Loc} opened {d:Other} , {p:Peop} said .",
     [("o", "l", "OrgBased_In")]),
    ("{p:Peop} , a spokesman for {o:Org} , visited {l:Loc} and {r:Loc} .",
     [("p", "o", "Work_For")]),
    ("Born in {l:Loc} , {p:Peop} moved to {r:Loc} in {d:Other} .", [("p", "r", "Live_In")]),
    ("{q:Peop} told {p:Peop} that {o:Org} and {o2:Org} would merge .", []),
]
POOLS = {"p": PEOPLE, "q": PEOPLE, "o": ORGS, "o2": ORGS, "l": LOCS, "l2": LOCS, "r": REGIONS,
         "d": DATES}


def render(template: str, relations: list[tuple[str, str, str]], rng: random.Random,
           sid: str) -> Sentence:
    tokens: list[str] = []
    entities: list[Entity] = []
    slots: dict[str, int] = {}
    used: set[str] = set()
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            slot, etype = piece[1:-1].split(":")
            choice = rng.choice([v for v in POOLS[slot] if v not in used])
            used.add(choice)
            words = choice.split()
            slots[slot] = len(entities)
            entities.append(Entity(len(tokens), len(tokens) + len(words), etype))
            tokens.extend(words)
        else:
            tokens.append(piece)
    rels = tuple(Relation(slots[h], slots[t], r) for h, t, r in relations)
    return Sentence(sid, tuple(tokens), tuple(entities), rels)


def generate(seed: int = 13, sizes: dict[str, int] = SPLIT_SIZES) -> dict[str, list[Sentence]]:
    rng = random.Random(seed)
    out = {}
    for split, n in sizes.items():
        out[split] = [render(*rng.choice(TEMPLATES), rng, f"sample_{split}:{i}") for i in range(n)]
    return out


def write(out_dir: Path, seed: int = 13) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, sentences in generate(seed).items():
        write_jsonl(sentences, out_dir / f"sample_{split}.jsonl")

