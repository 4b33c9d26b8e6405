"""The multi-task relation model: embeddings → encoder → FC → class scores (+ relation head)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from relext_ray.config import ModelConfig
from relext_ray.models.encoders import PCNN, EattBiGRU, MultiWindowCNN


@dataclass
class Batch:
    """Padded tensors of one batch; ``spans`` is [B, 4]: e1 start, e1 end, e2 start, e2 end."""

    tokens: torch.Tensor
    pos1: torch.Tensor
    pos2: torch.Tensor
    tags: torch.Tensor
    spans: torch.Tensor
    labels: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        return self.tokens != 0

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in (
            self.tokens, self.pos1, self.pos2, self.tags, self.spans, self.labels)))


class RelationModel(nn.Module):
    def __init__(self, cfg: ModelConfig, n_tokens: int, n_positions: int, n_tags: int,
                 n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(n_tokens, cfg.word_dim, padding_idx=0)
        self.pos1 = nn.Embedding(n_positions, cfg.pos_dim, padding_idx=0)
        self.pos2 = nn.Embedding(n_positions, cfg.pos_dim, padding_idx=0)
        self.tag = nn.Embedding(n_tags, cfg.tag_dim, padding_idx=0) if cfg.use_tag else None
        in_dim = cfg.word_dim + 2 * cfg.pos_dim + (cfg.tag_dim if cfg.use_tag else 0)
        if cfg.encoder == "cnn":
            self.encoder: nn.Module = MultiWindowCNN(in_dim, cfg.windows, cfg.filters)
        elif cfg.encoder == "pcnn":
            self.encoder = PCNN(in_dim, cfg.pcnn_window, cfg.pcnn_filters)
        else:
            self.encoder = EattBiGRU(in_dim, cfg.gru_hidden)
        self.fc = nn.Sequential(nn.Linear(self.encoder.out_dim, cfg.hidden), nn.Tanh(),
                                nn.Dropout(cfg.dropout))
        # s_c = rᵀ W_c for the non-Other classes only (no bias, as in the paper).
        self.classes = nn.Linear(cfg.hidden, n_classes, bias=False)
        self.other = nn.Linear(cfg.hidden, 1) if cfg.other_score else None
        self.identify = nn.Linear(cfg.hidden, 2) if cfg.mtl else None

    def forward(self, b: Batch) -> dict[str, torch.Tensor | None]:
        parts = [self.word(b.tokens), self.pos1(b.pos1), self.pos2(b.pos2)]
        if self.tag is not None:
            parts.append(self.tag(b.tags))
        r = self.fc(self.encoder(torch.cat(parts, dim=2), b.mask, b.spans))
        return {
            "scores": self.classes(r),
            "other": self.other(r).squeeze(1) if self.other is not None else None,
            "id_logits": self.identify(r) if self.identify is not None else None,
        }
