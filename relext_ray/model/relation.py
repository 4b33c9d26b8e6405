"""The multi-task relation model: embeddings → encoder → FC → class scores (+ relation head)."""

from __future__ import annotations

import torch
from torch import nn

from relext_ray.config import ModelConfig
from relext_ray.data.batching import Batch
from relext_ray.instances.positions import num_position_ids
from relext_ray.instances.vocab import UNK_ID, Vocabularies
from relext_ray.model.encoders import ENCODERS, Factors


class RelationModel(nn.Module):
    """Word, two relative-position and (``use_tag``) entity BIO-tag embeddings → encoder → FC
    (tanh, dropout) → class scores, plus an Other score (CE variants) and the binary
    relation-identification head (``mtl``).

    Args:
        cfg: The architecture.
        n_tokens: Token vocabulary size (id 0 pads).
        n_positions: Position ids (``instances.positions.num_position_ids``).
        n_tags: BIO tag vocabulary size.
        n_classes: C, the relation classes without Other.
    """

    def __init__(self, cfg: ModelConfig, n_tokens: int, n_positions: int, n_tags: int,
                 n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(n_tokens, cfg.word_dim, padding_idx=0)
        self.pos1 = nn.Embedding(n_positions, cfg.pos_dim, padding_idx=0)
        self.pos2 = nn.Embedding(n_positions, cfg.pos_dim, padding_idx=0)
        self.tag = nn.Embedding(n_tags, cfg.tag_dim, padding_idx=0) if cfg.use_tag else None
        in_dim = cfg.word_dim + 2 * cfg.pos_dim + (cfg.tag_dim if cfg.use_tag else 0)
        self.encoder: nn.Module = ENCODERS[cfg.encoder](in_dim, cfg)
        self.fc = nn.Sequential(nn.Linear(self.encoder.out_dim, cfg.hidden), nn.Tanh(),
                                nn.Dropout(cfg.dropout))
        # s_c = rᵀ W_c for the non-Other classes only (no bias, as in the paper).
        self.classes = nn.Linear(cfg.hidden, n_classes, bias=False)
        self.other = nn.Linear(cfg.hidden, 1) if cfg.other_score else None
        self.identify = nn.Linear(cfg.hidden, 2) if cfg.mtl else None
        self.reference = False  # score every pair on its own (the per-pair reference path)

    @property
    def can_factor(self) -> bool:
        """Whether the encoder has the exact factored path (CNN, PCNN; not the BiGRU)."""
        return hasattr(self.encoder, "forward_factored")

    @property
    def n_classes(self) -> int:
        """C: the relation classes scored (Other excluded)."""
        return self.classes.out_features

    def uses_factored(self) -> bool:
        """Evaluation always factors when it can; training when ``model.factored`` says so;
        never while ``reference`` is set (benchmarks and tests compare the two paths)."""
        return self.can_factor and not self.reference and (self.cfg.factored or not self.training)

    def words(self, tokens: torch.Tensor) -> torch.Tensor:
        """[S, L, word_dim] the word embedding; in training, ``word_dropout`` of the real tokens
        read as ``<unk>`` (drawn per sentence token, so both paths see the same words)."""
        p = self.cfg.word_dropout
        if self.training and p > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < p) & (tokens > UNK_ID)
            tokens = tokens.masked_fill(drop, UNK_ID)
        return self.word(tokens)

    def encode_pairs(self, b: Batch) -> torch.Tensor:
        """[P, H] the reference path: every pair's own [L, D] input, encoded on its own."""
        parts = [self.words(b.tokens)[b.sentence], self.pos1(b.positions[b.e1]),
                 self.pos2(b.positions[b.e2])]
        if self.tag is not None:
            parts.append(self.tag(b.tags[b.sentence]))
        return self.encoder(torch.cat(parts, dim=2), b.mask[b.sentence], b.spans)

    def encode_factored(self, b: Batch) -> torch.Tensor:
        """[P, H] the same vectors as ``encode_pairs``, each sentence and mention encoded once."""
        wd, pd = self.cfg.word_dim, self.cfg.pos_dim
        sentence = [self.words(b.tokens)]
        columns: tuple[slice, ...] = (slice(0, wd),)
        if self.tag is not None:
            sentence.append(self.tag(b.tags))
            columns += (slice(wd + 2 * pd, wd + 2 * pd + self.cfg.tag_dim),)
        f = Factors(torch.cat(sentence, dim=2) if len(sentence) > 1 else sentence[0],
                    b.positions, self.pos1.weight, self.pos2.weight, b.mask, b.mention_sentence,
                    b.sentence, b.e1, b.e2, b.spans,
                    (columns, slice(wd, wd + pd), slice(wd + pd, wd + 2 * pd)))
        return self.encoder.forward_factored(f)

    def forward(self, b: Batch) -> dict[str, torch.Tensor | None]:
        """Scores of a sentence batch's pairs.

        Args:
            b: A sentence batch (``data.batching.Batch``) of P pairs.

        Returns:
            ``scores`` [P, C]; ``other`` [P] or None; ``id_logits`` [P, 2] or None.
        """
        r = self.fc(self.encode_factored(b) if self.uses_factored() else self.encode_pairs(b))
        return {
            "scores": self.classes(r),
            "other": self.other(r).squeeze(1) if self.other is not None else None,
            "id_logits": self.identify(r) if self.identify is not None else None,
        }


def build_model(cfg: ModelConfig, vocabs: Vocabularies, n_labels: int,
                max_distance: int) -> RelationModel:
    """A model sized for a prepared corpus (or checkpoint): its vocabularies, its labels (Other
    included) and its position clip."""
    return RelationModel(cfg, n_tokens=len(vocabs.tokens), n_positions=num_position_ids(max_distance),
                         n_tags=len(vocabs.tags), n_classes=n_labels - 1)
