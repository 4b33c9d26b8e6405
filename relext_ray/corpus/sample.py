"""A small synthetic English corpus, generated from a grammar, for the demo and fast tests.

It has the shape of CoNLL04 (Peop/Org/Loc/Other mentions, the five directed relations, many
more unrelated pairs than related ones) and is deterministic for a seed. It is meant to be
learnable but not trivial, so that models and hyper-parameters differ on it:

- lexical variety: each relation has several phrasings, names are composed from parts, and
  filler words move the entities apart;
- hard negatives: the same entity types joined by phrases that state no relation ("visited",
  "criticized", "met"), and sentences of two clauses, whose cross-clause pairs are unrelated;
- distractor mentions: dates, places and people that take part in no relation;
- label noise, as in real annotation: a few gold relations are missing and a few spurious ones
  are added, in every split, so no model scores 100.

The copy shipped in ``relext_ray/corpus/sample_data`` is ``python -m relext_ray.cli.sample``.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from relext_ray.corpus.jsonl import write_jsonl
from relext_ray.corpus.records import Entity, Relation, Sentence

SAMPLE_DIR = Path(__file__).parent / "sample_data"
SPLIT_SIZES = {"train": 400, "dev": 100, "test": 100}
MISSING_RELATION = 0.06   # chance that a gold relation is left out of the annotation
SPURIOUS_RELATION = 0.05  # chance that a sentence gets one relation the text does not state

FIRST = ["Anna", "Tomas", "Maria", "John", "Li", "Omar", "Sara", "Peter", "Elena", "David",
         "Yuki", "Karl", "Amara", "Lucas", "Nadia", "Jonas", "Priya", "Mateo", "Ingrid", "Kofi",
         "Hana", "Victor", "Leila", "Samuel"]
LAST = ["Berg", "Lind", "Costa", "Harper", "Wei", "Haddad", "Novak", "Quinn", "Ruiz", "Okafor",
        "Sato", "Weiss", "Mensah", "Duarte", "Petrov", "Keller", "Rao", "Silva", "Holm", "Adeyemi"]
ORG_HEAD = ["Northwind", "Blue River", "Redwood", "Summit", "Harbor", "Silver Lake", "Granite",
            "Maple", "Orion", "Cedar", "Atlas", "Meridian"]
ORG_TAIL = ["Bank", "Press", "Labs", "Traders", "Institute", "Motors", "Foods", "Airlines",
            "University", "Group", "Energy", "Council"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Toronto", "Kyoto", "Portland", "Valencia", "Accra",
          "Bergen", "Osaka", "Porto", "Mombasa", "Calgary", "Seville", "Kumasi", "Salem",
          "Lagos", "Dublin", "Quito", "Hanoi"]
REGIONS = ["Portugal", "Norway", "Kenya", "Canada", "Japan", "Oregon", "Spain", "Ghana",
           "Nigeria", "Ireland", "Ecuador", "Vietnam", "Alberta", "Andalusia"]
DATES = ["Monday", "last spring", "June 4", "this week", "1998", "in the morning",
         "two years ago", "Friday night", "March 12", "last year"]
FILLER = {
    "adv": ["", "", "", "reportedly", "again", "recently", "quietly", "finally", "also"],
    "adj": ["", "", "", "new", "former", "senior", "young", "local", "veteran"],
}

# A clause is text with {slot:Type} mentions, [a|b|c] alternatives, <filler> words, and the
# relations it states (head slot, tail slot, type). Slot names give the name pool.
Clause = tuple[str, list[tuple[str, str, str]]]
RELATED: list[Clause] = [
    ("{p:Peop} <adv> [works for|is employed by|is an engineer at|joined|is a <adj> spokesman for"
     "|heads|is the chairman of|has worked at] {o:Org}", [("p", "o", "Work_For")]),
    ("{o:Org} <adv> [hired|appointed|named|promoted] {p:Peop} [as its director|to its board|"
     "last month|]", [("p", "o", "Work_For")]),
    ("{o:Org} 's [chief executive|spokeswoman|founder|<adj> treasurer] , {p:Peop} , [said|added|"
     "confirmed] it", [("p", "o", "Work_For")]),
    ("{p:Peop} <adv> [lives in|has lived in|resides in|grew up in|settled in|is at home in] "
     "{l:Loc}", [("p", "l", "Live_In")]),
    ("{p:Peop} , a [resident|native|<adj> citizen] of {l:Loc} , [spoke|arrived|voted]",
     [("p", "l", "Live_In")]),
    ("in {l:Loc} , where {p:Peop} [lives|has a home|was raised] , [rain fell|prices rose]",
     [("p", "l", "Live_In")]),
    ("{l:Loc} , {r:Loc} [reported|saw|expects] [floods|growth|a strike]",
     [("l", "r", "Located_In")]),
    ("{l:Loc} [is a city in|lies in|is in the north of|is the largest port of] {r:Loc}",
     [("l", "r", "Located_In")]),
    ("{o:Org} , [based in|headquartered in|which has its head office in|founded in] {l:Loc} ,"
     " [grew|lost money|cut jobs]", [("o", "l", "OrgBased_In")]),
    ("{o:Org} of {l:Loc} [reported|announced|denied] [a loss|a merger|the deal]",
     [("o", "l", "OrgBased_In")]),
    ("{p:Peop} <adv> [shot|killed|murdered|stabbed|poisoned] {q:Peop}", [("p", "q", "Kill")]),
    ("{q:Peop} was [shot|killed|assassinated|stabbed] by {p:Peop}", [("p", "q", "Kill")]),
]
UNRELATED: list[Clause] = [
    ("{p:Peop} <adv> [met|criticized|interviewed|called|thanked|praised] {q:Peop}", []),
    ("{p:Peop} <adv> [visited|left|flew to|was not in|toured|wrote about] {l:Loc}", []),
    ("{p:Peop} <adv> [sued|criticized|praised|left|bought shares in|wrote about] {o:Org}", []),
    ("{o:Org} <adv> [exports to|lost a contract in|sold its plant in|ended its work in] {l:Loc}",
     []),
    ("[trade between|flights from] {l:Loc} and {r:Loc} [grew|fell|resumed]", []),
    ("{o:Org} and {o2:Org} [would merge|signed a deal|competed for the contract]", []),
    ("{p:Peop} [told|warned|asked] {q:Peop} about {o:Org}", []),
]
# Mentions that take part in no relation, around a sentence.
PREFIXES = ["", "", "", "on {d:Other} ,", "since {d:Other} ,", "according to {x:Peop} ,",
            "in a report from {y:Loc} ,", "officials said that"]
SUFFIXES = ["", "", "", "on {d:Other}", ", {x:Peop} said", ", a report from {y:Loc} said",
            "{d:Other}"]
JOINS = [", and", ", while", "; meanwhile ,", ", but", "after"]
POOLS = {"p": "person", "q": "person", "x": "person", "o": "org", "o2": "org", "l": "city",
         "y": "city", "r": "region", "d": "date"}
# Which type pairs a relation joins (for the spurious relations of the label noise).
SIGNATURES = {"Work_For": ("Peop", "Org"), "Live_In": ("Peop", "Loc"),
              "Located_In": ("Loc", "Loc"), "OrgBased_In": ("Org", "Loc"), "Kill": ("Peop", "Peop")}
_SLOT = re.compile(r"\{(\w+):(\w+)\}")
_CHOICE = re.compile(r"\[([^\]]*)\]")
_FILL = re.compile(r"<(\w+)>")


def _name(pool: str, rng: random.Random) -> str:
    if pool == "person":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.8 \
            else rng.choice(LAST)
    if pool == "org":
        name = f"{rng.choice(ORG_HEAD)} {rng.choice(ORG_TAIL)}"
        return f"the {name}" if rng.random() < 0.3 else name
    return rng.choice({"city": CITIES, "region": REGIONS, "date": DATES}[pool])


def _expand(text: str, rng: random.Random) -> str:
    text = _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), text)
    return _FILL.sub(lambda m: rng.choice(FILLER[m.group(1)]), text)


def _render_into(text: str, key: str, rng: random.Random, tokens: list[str],
                 entities: list[Entity], slots: dict[str, int], used: set[str]) -> None:
    """Append ``text`` (alternatives chosen, slots filled) to ``tokens`` and ``entities``;
    record each slot's entity index under ``key + slot``."""
    for piece in _expand(text, rng).split():
        m = _SLOT.fullmatch(piece)
        if m is None:
            tokens.append(piece)
            continue
        slot, etype = m.groups()
        name = _name(POOLS[slot], rng)
        while name in used:
            name = _name(POOLS[slot], rng)
        used.add(name)
        words = name.split()
        slots[key + slot] = len(entities)
        entities.append(Entity(len(tokens), len(tokens) + len(words), etype))
        tokens.extend(words)


def _clause(rng: random.Random) -> Clause:
    return rng.choice(RELATED) if rng.random() < 0.65 else rng.choice(UNRELATED)


def _noise(entities: list[Entity], relations: list[Relation], rng: random.Random
           ) -> list[Relation]:
    kept = [r for r in relations if rng.random() >= MISSING_RELATION]
    if rng.random() < SPURIOUS_RELATION:
        taken = {(r.head, r.tail) for r in kept} | {(r.tail, r.head) for r in kept}
        options = [(h, t, rel) for rel, (a, b) in SIGNATURES.items()
                   for h, eh in enumerate(entities) for t, et in enumerate(entities)
                   if h != t and eh.type == a and et.type == b and (h, t) not in taken]
        if options:
            h, t, rel = rng.choice(options)
            kept.append(Relation(h, t, rel))
    return kept


def render(rng: random.Random, sid: str) -> Sentence:
    """One sentence: an optional prefix, one or two clauses, an optional suffix, then noise."""
    tokens: list[str] = []
    entities: list[Entity] = []
    slots: dict[str, int] = {}
    used: set[str] = set()
    relations: list[Relation] = []
    clauses = [_clause(rng)] + ([_clause(rng)] if rng.random() < 0.35 else [])
    _render_into(rng.choice(PREFIXES), "pre.", rng, tokens, entities, slots, used)
    for k, (text, rels) in enumerate(clauses):
        if k:
            _render_into(rng.choice(JOINS), "join.", rng, tokens, entities, slots, used)
        _render_into(text, f"{k}.", rng, tokens, entities, slots, used)
        relations += [Relation(slots[f"{k}.{h}"], slots[f"{k}.{t}"], r) for h, t, r in rels]
    _render_into(rng.choice(SUFFIXES), "suf.", rng, tokens, entities, slots, used)
    tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
    tokens.append(".")
    return Sentence(sid, tuple(tokens), tuple(entities), tuple(_noise(entities, relations, rng)))


def generate(seed: int = 13, sizes: dict[str, int] = SPLIT_SIZES) -> dict[str, list[Sentence]]:
    rng = random.Random(seed)
    return {split: [render(rng, f"sample_{split}:{i}") for i in range(n)]
            for split, n in sizes.items()}


def write(out_dir: Path, seed: int = 13) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, sentences in generate(seed).items():
        write_jsonl(sentences, out_dir / f"sample_{split}.jsonl")
