"""Sentence encoders: [B, L, D] embedded tokens + mask + entity spans → [B, H] vector.

* ``MultiWindowCNN`` — the paper's encoder: windows 4..10, 64 filters each, "same" zero
  padding, max-pooling over time.
* ``PCNN`` — piecewise max-pooling over the three segments cut by the two entities
  (Zeng et al. 2015).
* ``EattBiGRU`` — BiGRU with entity-aware attention (Qin et al. 2017): the entities' hidden
  states steer the attention over the sentence.

Padding never wins a max-pool or gets attention: the mask sets it to -inf first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from relext_ray.config import ModelConfig

NEG = -1e4  # "minus infinity" that stays finite in half precision too


def _same_pad(x: torch.Tensor, window: int) -> torch.Tensor:
    """Zero padding so that a convolution of any (even too) width keeps the length."""
    return F.pad(x, ((window - 1) // 2, window // 2))


class MultiWindowCNN(nn.Module):
    """The paper's encoder: one convolution per window size, "same" zero padding, ReLU,
    max-pooling over time.

    Args:
        in_dim: D, the width of the embedded input.
        windows: The window sizes (the paper: 4..10).
        filters: Filters per window (the paper: 64).

    ``forward(x [B, L, D], mask [B, L] bool, spans [B, 4])`` returns [B, filters · len(windows)].
    """

    def __init__(self, in_dim: int, windows: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10),
                 filters: int = 64) -> None:
        super().__init__()
        self.windows = tuple(windows)
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, filters, w) for w in self.windows)
        self.out_dim = filters * len(self.windows)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # [B, D, L]
        pad = ~mask.unsqueeze(1)
        pooled = [
            torch.relu(conv(_same_pad(h, w))).masked_fill(pad, NEG).max(dim=2).values
            for w, conv in zip(self.windows, self.convs, strict=True)
        ]
        return torch.cat(pooled, dim=1)


class PCNN(nn.Module):
    """One convolution (tanh), max-pooled piecewise over the three segments that the two
    mentions cut (Zeng et al. 2015); an empty segment pools to zeros.

    Args:
        in_dim: D, the width of the embedded input.
        window: The window size.
        filters: The number of filters F.

    ``forward(x [B, L, D], mask [B, L] bool, spans [B, 4])`` returns [B, 3F].
    """

    def __init__(self, in_dim: int, window: int = 3, filters: int = 230) -> None:
        super().__init__()
        self.window = window
        self.conv = nn.Conv1d(in_dim, filters, window)
        self.out_dim = 3 * filters

    def forward(self, x: torch.Tensor, mask: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(_same_pad(x.transpose(1, 2), self.window)))  # [B, F, L]
        # Segments end after the first entity and after the second (in sentence order).
        first_end = torch.minimum(spans[:, 1], spans[:, 3]).unsqueeze(1)
        second_end = torch.maximum(spans[:, 1], spans[:, 3]).unsqueeze(1)
        pos = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        segments = (pos < first_end, (pos >= first_end) & (pos < second_end), pos >= second_end)
        out = []
        for seg in segments:
            m = (seg & mask).unsqueeze(1)
            pooled = h.masked_fill(~m, NEG).max(dim=2).values
            out.append(torch.where(m.any(dim=2), pooled, torch.zeros_like(pooled)))
        return torch.cat(out, dim=1)


def _span_mean(h: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    pos = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
    inside = ((pos >= start.unsqueeze(1)) & (pos < end.unsqueeze(1))).unsqueeze(2).to(h.dtype)
    return (h * inside).sum(dim=1) / inside.sum(dim=1).clamp(min=1)


class EattBiGRU(nn.Module):
    """A BiGRU whose attention over the sentence is steered by the two mentions' mean hidden
    states (Qin et al. 2017).

    Args:
        in_dim: D, the width of the embedded input.
        hidden: H, units per direction.
        attention: The attention layer's width.

    ``forward(x [B, L, D], mask [B, L] bool, spans [B, 4])`` returns [B, 6H]: the attended
    sentence vector and both mentions' vectors.
    """

    def __init__(self, in_dim: int, hidden: int = 100, attention: int = 100) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True, bidirectional=True)
        self.w_h = nn.Linear(2 * hidden, attention, bias=False)
        self.w_e = nn.Linear(4 * hidden, attention)
        self.v = nn.Linear(attention, 1, bias=False)
        self.out_dim = 6 * hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        h, _ = self.gru(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        e1 = _span_mean(h, spans[:, 0], spans[:, 1])
        e2 = _span_mean(h, spans[:, 2], spans[:, 3])
        energy = self.v(torch.tanh(self.w_h(h) + self.w_e(torch.cat([e1, e2], 1)).unsqueeze(1)))
        alpha = torch.softmax(energy.squeeze(2).masked_fill(~mask, NEG), dim=1)
        r = torch.bmm(alpha.unsqueeze(1), h).squeeze(1)
        return torch.cat([r, e1, e2], dim=1)


# The encoders by their config name (``model.encoder``), built from the model config.
ENCODERS: dict[str, Callable[[int, ModelConfig], nn.Module]] = {
    "cnn": lambda in_dim, cfg: MultiWindowCNN(in_dim, cfg.windows, cfg.filters),
    "pcnn": lambda in_dim, cfg: PCNN(in_dim, cfg.pcnn_window, cfg.pcnn_filters),
    "bigru": lambda in_dim, cfg: EattBiGRU(in_dim, cfg.gru_hidden),
}
