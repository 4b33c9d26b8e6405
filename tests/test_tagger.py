"""The entity tagger and raw text: BIO decoding, strict entity scores, a tagger that learns
crafted sentences, and text cut into tokens whose character spans point back at the source."""

from __future__ import annotations

import torch

from relext_ray.config import TaggerConfig
from relext_ray.corpus.records import Entity, Sentence
from relext_ray.corpus.text import read_text, split_text, text_units
from relext_ray.instances.vocab import Vocab, tag_vocab, token_vocab
from relext_ray.model.tagger import mentions_from_tags
from relext_ray.training.tagging import (
    entity_scores,
    evaluate_tagger,
    fit_tagger,
    tag_sentences,
    tagger_vocab,
)


def test_bio_tags_become_mentions_adjacent_multi_token_and_lenient():
    tags = ["B-Peop", "I-Peop", "B-Peop", "O", "I-Loc", "I-Loc", "B-Org", "I-Loc",
            "B-<unk>", "O"]
    got = [(m.start, m.end, m.type) for m in mentions_from_tags(tags)]
    # adjacent mentions stay apart; I- after O opens one; a type change opens one; <unk> is none
    assert got == [(0, 2, "Peop"), (2, 3, "Peop"), (4, 6, "Loc"), (6, 7, "Org"), (7, 8, "Loc")]
    scored = mentions_from_tags(["B-Peop", "I-Peop"], [0.5, 1.0])
    assert scored[0].score == 0.75


def test_entity_scores_are_strict_in_span_and_type():
    gold = [{(0, 2, "Peop"), (3, 4, "Loc")}, {(1, 2, "Org")}]
    pred = [{(0, 2, "Peop"), (3, 5, "Loc")}, {(1, 2, "Loc")}]
    s = entity_scores(gold, pred)
    assert (s.tp, s.predicted, s.gold) == (1, 3, 3)
    assert s.f1 == 1 / 3
    assert s.per_type["Peop"]["f1"] == 1.0 and s.per_type["Loc"]["precision"] == 0.0


NAMES = ["Anna Berg", "Tom", "Li Wei Chen", "Maria"]
PLACES = ["Oslo", "New York", "Paris"]


def _crafted() -> list[Sentence]:
    """Multi-token and adjacent mentions in a few patterns (the tagger must learn each)."""
    out = []
    for i, name in enumerate(NAMES):
        for j, place in enumerate(PLACES):
            n, p = name.split(), place.split()
            toks = [*n, "lives", "in", *p, "."]
            ents = [Entity(0, len(n), "Peop"), Entity(len(n) + 2, len(n) + 2 + len(p), "Loc")]
            out.append(Sentence(f"a{i}{j}", tuple(toks), tuple(ents)))
            other = NAMES[(i + 1) % len(NAMES)].split()
            toks = ["Yesterday", *n, *other, "met", "."]  # two adjacent people
            ents = [Entity(1, 1 + len(n), "Peop"),
                    Entity(1 + len(n), 1 + len(n) + len(other), "Peop")]
            out.append(Sentence(f"b{i}{j}", tuple(toks), tuple(ents)))
            out.append(Sentence(f"c{i}{j}", ("It", "rained", ".")))  # no mention
    return out


def test_a_tagger_learns_adjacent_and_multi_token_mentions():
    train = _crafted()
    from collections import Counter

    words = token_vocab(Counter(t for s in train for t in s.tokens))
    tags = tag_vocab({"Peop", "Loc"})
    vocab = tagger_vocab(train, words, tags)
    cfg = TaggerConfig(enabled=True, word_dim=16, char_dim=8, char_filters=8, hidden=16,
                       dropout=0.0, epochs=40, batch_size=4, lr=0.02, patience=40)
    fit = fit_tagger(cfg, vocab, train, train, torch.device("cpu"), seed=1)
    assert evaluate_tagger(fit.tagger, vocab, train, torch.device("cpu")).f1 == 1.0
    found = tag_sentences(fit.tagger, vocab, [("Yesterday", "Anna", "Berg", "Tom", "met", ".")],
                          torch.device("cpu"))[0]
    assert [(m.start, m.end, m.type) for m in found] == [(1, 3, "Peop"), (3, 4, "Peop")]
    assert all(0.0 < m.score <= 1.0 for m in found)


def test_a_tagger_fit_resumed_from_its_state_ends_exactly_as_one_that_never_stopped(tmp_path):
    """A tagger search's trial restored after its worker died continues from the saved state
    (weights, optimizer, best-so-far, random generators): same weights and scores at the end."""
    from collections import Counter

    from relext_ray.training.fit import FitState
    from relext_ray.training.tagging import EntityScores

    train = _crafted()
    words = token_vocab(Counter(t for s in train for t in s.tokens))
    vocab = tagger_vocab(train, words, tag_vocab({"Peop", "Loc"}))
    cfg = TaggerConfig(enabled=True, word_dim=8, char_dim=4, char_filters=4, hidden=8,
                       dropout=0.3, epochs=4, batch_size=4, lr=0.01, patience=4)
    cpu = torch.device("cpu")
    seen: list[dict] = []
    full = fit_tagger(cfg, vocab, train, train, cpu, seed=3,
                      on_state=lambda m, st: seen.append(m))
    states: list[FitState] = []

    def keep(m: dict, st: FitState) -> None:
        if m["epoch"] == 2:
            st.save(tmp_path / "state.pt")
            states.append(st)

    fit_tagger(cfg.model_copy(update={"epochs": 2}), vocab, train, train, cpu, seed=3,
               on_state=keep)
    resumed_from = FitState.load(tmp_path / "state.pt", EntityScores)
    assert isinstance(resumed_from.best_dev, EntityScores) and resumed_from.epoch == 2
    after: list[dict] = []
    resumed = fit_tagger(cfg, vocab, train, train, cpu, seed=3, resume=resumed_from,
                         on_state=lambda m, st: after.append(m))
    assert [m["epoch"] for m in after] == [3, 4]
    assert [m["tagger_dev_f1"] for m in after] == [m["tagger_dev_f1"] for m in seen[2:]]
    assert [m["tagger_loss"] for m in after] == [m["tagger_loss"] for m in seen[2:]]
    for a, b in zip(full.tagger.state_dict().values(), resumed.tagger.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert resumed.best_epoch == full.best_epoch


def test_english_and_chinese_text_keep_exact_character_spans():
    text = "Dr. Anna Berg works for Acme Inc. in New York.  She moved in 2019!"
    sentences = split_text(text, "words")
    assert len(sentences) == 2
    for sent in sentences:
        for token, start, end in sent:
            assert text[start:end] == token
    words = [t for t, _, _ in sentences[0]]
    assert words[:3] == ["Dr.", "Anna", "Berg"] and words[-4:] == ["in", "New", "York", "."]
    assert "Inc." in words
    zh = "张三在北京工作。他 喜欢\n上海"
    got = split_text(zh, "characters")
    assert ["".join(t for t, _, _ in s) for s in got] == ["张三在北京工作。", "他喜欢", "上海"]
    assert all(zh[s:e] == t for sent in got for t, s, e in sent)


def test_text_files_lines_paragraphs_and_bad_lines(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("Anna works in Oslo.\nTom lives in Paris. He is happy.\n")
    r = read_text(lines)
    assert [s.id for s in r.sentences] == ["lines:1:1", "lines:2:1", "lines:2:2"]
    assert r.sentences[2].tokens == ("He", "is", "happy", ".") and r.sentences[2].untagged
    para = tmp_path / "para.txt"
    source = "Anna works\nin Oslo.\n\nTom lives in Paris.\n"
    para.write_text(source)
    r = read_text(para)
    assert [s.id for s in r.sentences] == ["para:1:1", "para:4:1"]
    s = r.sentences[0]
    start, end = s.char_span(3, 4)  # "Oslo" in the paragraph "Anna works\nin Oslo."
    assert "Anna works\nin Oslo."[start:end] == "Oslo"
    assert text_units(para, 1) == [(0, 3), (3, 4)]  # never cuts the first paragraph
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"Anna works in Oslo.\n\x00\x01\x02\xff\n\xff\xfe bad\nTom is here.\n")
    r = read_text(binary)
    assert [x.line for x in r.rejects] == [2, 3]
    assert "NUL byte" in r.rejects[0].reason and "UTF-8" in r.rejects[1].reason
    assert [x.id for x in r.sentences] == ["blob:1:1", "blob:4:1"]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert read_text(empty).sentences == [] and text_units(empty, 10) == [(0, 1)]
    huge = tmp_path / "huge.txt"
    huge.write_text(" ".join(["word"] * 50_000) + "\n")
    r = read_text(huge)
    assert sum(len(x.tokens) for x in r.sentences) == 50_000 and not r.rejects


def test_a_vocab_of_characters_is_ordered_by_frequency():
    from relext_ray.model.tagger import char_vocab

    v = char_vocab(["aab", "b", "c"])
    assert v.items[:2] == ("<pad>", "<unk>") and isinstance(v, Vocab)
    assert set(v.items[2:]) == {"a", "b", "c"}
