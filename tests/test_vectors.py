"""Pretrained word vectors: the formats read, what is matched, what is refused, what is copied."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from relext_ray.config import ModelConfig
from relext_ray.errors import RelextError
from relext_ray.instances.vocab import Vocab, Vocabularies
from relext_ray.model.relation import build_model
from relext_ray.model.vectors import (
    load_word_vectors,
    read_vectors,
    tie_word_dim,
    vectors_width,
    vectors_words,
)

DEMO = Path(__file__).resolve().parents[1] / "tune_configs" / "demo.yaml"
TOKENS = ("<pad>", "<unk>", "Anna", "works", "for", "Acme", ".")
LINES = ["anna 1 1 1", "works 2 2 2", "Acme 3 3 3", "acme 9 9 9", "zebra 4 4 4", ". 5 5 5"]


def _vocabs() -> Vocabularies:
    return Vocabularies(Vocab(TOKENS), Vocab(("O", "B-Peop", "I-Peop")), Vocab(("Other", "R")))


@pytest.mark.parametrize("form", ["glove", "word2vec", "gzip", "npy"])
def test_every_format_gives_the_same_rows(tmp_path, form):
    if form == "glove":
        path = tmp_path / "v.txt"
        path.write_text("\n".join(LINES) + "\n")
    elif form == "word2vec":
        path = tmp_path / "v.vec"
        path.write_text(f"{len(LINES)} 3\n" + "\n".join(LINES) + "\n")
    elif form == "gzip":
        path = tmp_path / "v.txt.gz"
        with gzip.open(path, "wt") as fh:
            fh.write("\n".join(LINES) + "\n")
    else:
        path = tmp_path / "v.npy"
        np.save(path, np.array([[float(x) for x in line.split()[1:]] for line in LINES]))
        path.with_suffix(".vocab").write_text("\n".join(line.split()[0] for line in LINES))
    rows, values, dim = read_vectors(path, TOKENS)
    assert dim == 3
    # "Anna" by its lowercase form; "Acme" as written wins over "acme"; "for" is missing
    assert rows.tolist() == [2, 3, 5, 6]
    assert values[:, 0].tolist() == [1, 2, 3, 5]


def test_vectors_start_the_word_embedding_and_the_rest_stays(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("\n".join(LINES) + "\n")
    cfg = ModelConfig(word_dim=3, windows=(2,), filters=2, word_vectors=str(path))
    torch.manual_seed(0)
    model = build_model(cfg, _vocabs(), 2, 10)
    before = model.word.weight.detach().clone()
    found = load_word_vectors(model, cfg, _vocabs())
    w = model.word.weight.detach()
    assert found == {"word_vectors_found": 4.0, "word_vectors_coverage": 4 / 5,
                     "word_vectors_dim": 3.0}
    assert w[2].tolist() == [1, 1, 1] and w[6].tolist() == [5, 5, 5]
    assert torch.equal(w[4], before[4]) and torch.equal(w[1], before[1])  # "for", <unk>
    assert w[0].abs().sum() == 0  # padding


def test_bad_vectors_are_named(tmp_path):
    good = tmp_path / "v.txt"
    good.write_text("\n".join(LINES) + "\n")
    cfg = ModelConfig(word_dim=4, windows=(2,), filters=2, word_vectors=str(good))
    with pytest.raises(RelextError, match=r"3-dimensional vectors but the model's word embedding is 4"):
        load_word_vectors(build_model(cfg, _vocabs(), 2, 10), cfg, _vocabs())
    bad = tmp_path / "bad.txt"
    bad.write_text("anna 1 1 1\nworks 2 2\n")
    with pytest.raises(RelextError, match=r"bad.txt line 2: 2 values, expected 3"):
        read_vectors(bad, TOKENS)
    with pytest.raises(RelextError, match="not found"):
        read_vectors(tmp_path / "none.txt", TOKENS)
    np.save(tmp_path / "m.npy", np.zeros((2, 3)))
    with pytest.raises(RelextError, match="needs its words in"):
        read_vectors(tmp_path / "m.npy", TOKENS)


@pytest.mark.parametrize("form", ["glove", "word2vec", "gzip", "npy"])
def test_the_vectors_set_the_embedding_width(tmp_path, form):
    """A search may pair any vectors with any ``word_dim``: the vectors' width wins."""
    from relext_ray.config import load_experiment

    if form == "npy":
        path = tmp_path / "v.npy"
        np.save(path, np.zeros((2, 7), dtype=np.float32))
        path.with_suffix(".vocab").write_text("a\nb\n")
    else:
        path = tmp_path / ("v.vec" if form == "word2vec" else "v.txt")
        text = ("2 7\n" if form == "word2vec" else "") + "a 1 2 3 4 5 6 7\nb 1 2 3 4 5 6 7\n"
        if form == "gzip":
            path = tmp_path / "v.txt.gz"
            with gzip.open(path, "wt") as fh:
                fh.write(text)
        else:
            path.write_text(text)
    assert vectors_width(str(path)) == 7
    assert vectors_words(str(path), 1) == ["a"] and vectors_words(str(path), 9) == ["a", "b"]
    cfg = load_experiment(DEMO, [f"model.word_vectors={path}", "model.word_dim=200"])
    assert tie_word_dim(cfg).model.word_dim == 7
    plain = load_experiment(DEMO, ["model.word_dim=200"])
    assert tie_word_dim(plain) is plain


def test_the_packaged_glove_set_is_found_or_named():
    import importlib.util

    from relext_ray.model.vectors import PACKAGED, resolve

    package = PACKAGED["glove-6b-50d"][0]
    if importlib.util.find_spec(package) is None:
        with pytest.raises(RelextError, match=r"pip install 'relext_ray\[vectors\]'"):
            resolve("glove-6b-50d")
        return
    path, words = resolve("glove-6b-50d")
    assert len(words) == 400_000 and words[:3] == ["the", ",", "."]
    rows, values, dim = read_vectors(path, ("<pad>", "<unk>", "The", "qzxqzxq"), words)
    assert dim == 50 and rows.tolist() == [2]
    assert values[0, :3].tolist() == pytest.approx([0.418, 0.24968, -0.41242])
