"""The entity tagger: BIO tags over a sentence's tokens, so raw text needs no annotations.

A BiLSTM over word embeddings, a character CNN (words unseen in training still look like
names: capitals, suffixes) and a word-shape embedding, then a linear layer to emission scores
and a linear-chain CRF (``torchcrf``) that scores whole tag sequences, so the decoder never has
to choose each tag alone. The tag set is the relation model's BIO tag vocabulary, so the tags it
predicts are the ones the relation model's tag embedding learned from. One tagger per corpus:
words (English) or characters (Chinese, ``char_dim`` 0) are whatever the corpus's tokens are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchcrf import CRF

from relext_ray.config import TaggerConfig
from relext_ray.instances.vocab import OUTSIDE, PAD, UNK, Vocab

MAX_CHARS = 20  # characters of a token the character CNN sees (the rest add little)
SHAPES = ("<pad>", "lower", "Capital", "UPPER", "digit", "punct", "mixed")


def shape_id(token: str) -> int:
    """A token's shape: what tells a name from a word when the word itself is unknown."""
    if token.islower():
        return 1
    if token[:1].isupper() and (len(token) == 1 or token[1:].islower()):
        return 2
    if token.isupper():
        return 3
    if any(ch.isdigit() for ch in token):
        return 4
    if not any(ch.isalnum() for ch in token):
        return 5
    return 6


def char_vocab(tokens: list[str] | tuple[str, ...]) -> Vocab:
    """``<pad>``, ``<unk>`` and the characters of the training tokens, by frequency."""
    counts: dict[str, int] = {}
    for token in tokens:
        for ch in token[:MAX_CHARS]:
            counts[ch] = counts.get(ch, 0) + 1
    return Vocab((PAD, UNK, *sorted(counts, key=lambda c: (-counts[c], c))))


@dataclass
class TagBatch:
    """B sentences padded to T tokens (and L characters per token)."""

    words: torch.Tensor  # [B, T] int64
    chars: torch.Tensor  # [B, T, L] int64 (L = 1 of zeros without a character CNN)
    shapes: torch.Tensor  # [B, T] int64
    mask: torch.Tensor  # [B, T] bool
    tags: torch.Tensor | None = None  # [B, T] int64, gold

    def to(self, device: torch.device) -> TagBatch:
        return TagBatch(self.words.to(device), self.chars.to(device), self.shapes.to(device),
                        self.mask.to(device),
                        None if self.tags is None else self.tags.to(device))


@dataclass(frozen=True)
class TaggerVocab:
    """What turns tokens into the tagger's inputs and its outputs into tags."""

    words: Vocab
    chars: Vocab
    tags: Vocab
    lowercase: bool = False

    def word_id(self, token: str) -> int:
        """A token's id: as written, else lowercased (pretrained vectors are often lowercase),
        else ``<unk>``."""
        if self.lowercase:
            token = token.lower()
        found = self.words.get(token)
        return found if found >= 0 else self.words.id(token.lower())

    def batch(self, sentences: list[tuple[str, ...]], tags: list[list[int]] | None = None,
              use_chars: bool = True) -> TagBatch:
        """Pad ``sentences`` (each a non-empty token tuple) into one batch.

        Args:
            sentences: Token tuples.
            tags: Gold tag ids per token, for training.
            use_chars: Fill the character ids (the tagger has a character CNN).
        """
        b, t = len(sentences), max(len(s) for s in sentences)
        chars_len = min(MAX_CHARS, max(len(tok) for s in sentences for tok in s)) \
            if use_chars else 1
        words = torch.zeros(b, t, dtype=torch.long)
        shapes = torch.zeros(b, t, dtype=torch.long)
        chars = torch.zeros(b, t, chars_len, dtype=torch.long)
        mask = torch.zeros(b, t, dtype=torch.bool)
        gold = torch.zeros(b, t, dtype=torch.long) if tags is not None else None
        unk_char = self.chars.get(UNK)
        for i, sent in enumerate(sentences):
            n = len(sent)
            mask[i, :n] = True
            words[i, :n] = torch.tensor([self.word_id(tok) for tok in sent])
            shapes[i, :n] = torch.tensor([shape_id(tok) for tok in sent])
            if use_chars:
                for j, tok in enumerate(sent):
                    ids = [self.chars.get(ch, unk_char) for ch in tok[:chars_len]]
                    chars[i, j, :len(ids)] = torch.tensor(ids)
            if gold is not None:
                gold[i, :n] = torch.tensor(tags[i])
        return TagBatch(words, chars, shapes, mask, gold)


class EntityTagger(nn.Module):
    """BiLSTM-CRF over tokens.

    Args:
        cfg: Its sizes (``tagger`` section of the config).
        n_words: Word vocabulary size (id 0 = padding).
        n_chars: Character vocabulary size (id 0 = padding).
        n_tags: Tag vocabulary size (the relation model's BIO tags).
    """

    def __init__(self, cfg: TaggerConfig, n_words: int, n_chars: int, n_tags: int):
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(n_words, cfg.word_dim, padding_idx=0)
        self.shape = nn.Embedding(len(SHAPES), 8, padding_idx=0)
        in_dim = cfg.word_dim + 8
        self.char: nn.Embedding | None = None
        if cfg.char_dim > 0:
            self.char = nn.Embedding(n_chars, cfg.char_dim, padding_idx=0)
            self.char_conv = nn.Conv1d(cfg.char_dim, cfg.char_filters, 3, padding=1)
            in_dim += cfg.char_filters
        self.dropout = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(in_dim, cfg.hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.hidden, n_tags)
        self.crf = CRF(n_tags, batch_first=True)

    @property
    def uses_chars(self) -> bool:
        return self.char is not None

    def emissions(self, b: TagBatch) -> torch.Tensor:
        """Emission scores [B, T, K] of every tag at every token."""
        parts = [self.word(b.words), self.shape(b.shapes)]
        if self.char is not None:
            bsz, t, length = b.chars.shape
            c = self.char(b.chars.view(bsz * t, length)).transpose(1, 2)  # [BT, C, L]
            h = self.char_conv(c)
            h = h.masked_fill((b.chars.view(bsz * t, 1, length) == 0), float("-inf"))
            h = h.max(dim=2).values
            parts.append(torch.where(torch.isinf(h), torch.zeros_like(h), h).view(bsz, t, -1))
        x = self.dropout(torch.cat(parts, dim=-1))
        lengths = b.mask.sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return self.out(self.dropout(h))

    def loss(self, b: TagBatch) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tag sequences (scalar)."""
        assert b.tags is not None
        return -self.crf(self.emissions(b), b.tags, b.mask, reduction="mean")

    @torch.no_grad()
    def decode(self, b: TagBatch) -> tuple[list[list[int]], list[list[float]]]:
        """The best tag sequence of each sentence (Viterbi) and, per token, the probability of
        its tag under the emission softmax (a per-token confidence; the CRF's own score is for
        the whole sequence)."""
        em = self.emissions(b)
        best = self.crf.decode(em, b.mask)
        probs = em.softmax(dim=-1)
        conf = [[float(probs[i, j, tag]) for j, tag in enumerate(seq)]
                for i, seq in enumerate(best)]
        return best, conf


@dataclass(frozen=True)
class Mention:
    """A predicted entity mention: token span (end exclusive), type, confidence."""

    start: int
    end: int
    type: str
    score: float


def mentions_from_tags(tags: list[str], conf: list[float] | None = None) -> list[Mention]:
    """BIO tags → mentions. ``I-X`` after anything but ``B-X``/``I-X`` starts a mention (the
    usual lenient reading); tags of the unknown type are not mentions. A mention's score is the
    mean confidence of its tokens."""
    out: list[Mention] = []
    start, etype = -1, ""

    def close(end: int) -> None:
        if start >= 0 and etype != UNK:
            c = conf[start:end] if conf is not None else [1.0]
            out.append(Mention(start, end, etype, sum(c) / len(c)))

    for i, tag in enumerate(tags):
        kind, _, t = tag.partition("-")
        if tag in (OUTSIDE, PAD) or kind not in ("B", "I"):
            close(i)
            start, etype = -1, ""
        elif kind == "B" or t != etype or start < 0:
            close(i)
            start, etype = i, t
    close(len(tags))
    return out
