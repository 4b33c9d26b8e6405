"""Sentence encoders: [B, L, D] embedded tokens + mask + entity spans → [B, H] vector.

* ``MultiWindowCNN`` — the paper's encoder: windows 4..10, 64 filters each, "same" zero
  padding, max-pooling over time.
* ``PCNN`` — piecewise max-pooling over the three segments cut by the two entities
  (Zeng et al. 2015).
* ``EattBiGRU`` — BiGRU with entity-aware attention (Qin et al. 2017): the entities' hidden
  states steer the attention over the sentence.

Padding never wins a max-pool or gets attention: the mask sets it to -inf first.

The two convolutional encoders also run **factored** (``forward_factored``), exactly: a
convolution is linear in its input and the input is a concatenation [word; pos1; pos2; tag],
so for a pair (a, b) of a sentence

    conv(x)(t) = conv_sentence([word; tag])(t) + conv_pos1(pos1 rel. a)(t)
                 + conv_pos2(pos2 rel. b)(t) + bias

The first term is computed once per sentence, the other two once per mention; per pair only
the sum and the max-pool remain, and the activation (ReLU, tanh: monotone) follows the pool.
Zero embeddings at padding id 0 keep "same" padding exact at the sentence edges. Both paths
use the same weights, so a model trains on one and scores on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from relext_ray.config import ModelConfig

NEG = -1e4  # "minus infinity" that stays finite in half precision too


def _same_pad(x: torch.Tensor, window: int) -> torch.Tensor:
    """Zero padding so that a convolution of any (even too) width keeps the length."""
    return F.pad(x, ((window - 1) // 2, window // 2))


# Elements of the per-pair sum [pairs, L, filters] made at once: it is only searched for its
# maximum (no autograd graph), in chunks, so its memory is bounded whatever the batch. On a CPU
# a chunk small enough to stay in cache is read at cache speed; a GPU wants few, large kernels.
POOL_ELEMENTS = {"cpu": 1 << 17, "other": 1 << 24}


@dataclass(frozen=True)
class Factors:
    """A batch's inputs split for the factored path.

    ``sentences``: [S, L, Ds] the pair-independent embeddings ([word; tag]); ``positions``:
    [M, L] each mention's position ids; ``pos1_table``, ``pos2_table``: [n_ids, Dp] the two
    position embeddings' weights; ``mask``: [S, L]; ``mention_sentence``: [M] each mention's
    sentence row; ``sentence``, ``e1``, ``e2``: [P] each pair's rows; ``spans``: [P, 4];
    ``columns``: which input columns of the per-pair layout each part fills (``sentence`` a
    tuple of slices, ``pos1``, ``pos2`` one slice each).
    """

    sentences: torch.Tensor
    positions: torch.Tensor
    pos1_table: torch.Tensor
    pos2_table: torch.Tensor
    mask: torch.Tensor
    mention_sentence: torch.Tensor
    sentence: torch.Tensor
    e1: torch.Tensor
    e2: torch.Tensor
    spans: torch.Tensor
    columns: tuple[tuple[slice, ...], slice, slice]


def _position_term(positions: torch.Tensor, table: torch.Tensor,
                   weights: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """[M, L, F] the convolutions of the mentions' position embeddings, by table lookup.

    A position embedding takes one of ``n_ids`` values, so each kernel tap is projected once
    (``table @ W_tap``, [n_ids, F]) and a token's output is the sum of its taps' rows: the same
    numbers as convolving the embedded positions, at a fiftieth of the arithmetic. Id 0 has a
    zero embedding, which is the "same" zero padding.

    Args:
        positions: [M, L] position ids (0 pads).
        table: [n_ids, Dp] the position embedding's weight.
        weights: (window, [F_w, Dp, window] kernel columns of this embedding) per convolution.
    """
    # Row 0 is padding: zero, and, as with ``nn.Embedding(padding_idx=0)``, never trained.
    table = F.pad(table[1:], (0, 0, 1, 0))
    left = max((w - 1) // 2 for w, _ in weights)
    right = max(w // 2 for w, _ in weights)
    n_ids, taps = table.shape[0], left + right + 1
    blocks = [F.pad(torch.einsum("nd,fdk->knf", table, weight),
                    (0, 0, 0, 0, left - (w - 1) // 2, right - w // 2)) for w, weight in weights]
    projected = torch.cat(blocks, dim=2).reshape(taps * n_ids, -1)  # [taps · n_ids, F]
    m, width = positions.shape
    padded = F.pad(positions, (left, right))
    index = torch.stack([padded[:, o:o + width] + o * n_ids for o in range(taps)], dim=2)
    return F.embedding_bag(index.reshape(-1, taps), projected, mode="sum").reshape(m, width, -1)


def _factor_terms(f: Factors, convs: list[tuple[int, nn.Conv1d]]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three terms of the convolutions ``convs`` (window, layer), filters concatenated:
    [S, F, L] per sentence (with the biases), [M, L, F] per mention for each position
    embedding."""
    sent_cols, p1_cols, p2_cols = f.columns
    x = f.sentences.transpose(1, 2)
    base = torch.cat([
        F.conv1d(_same_pad(x, w), torch.cat([conv.weight[:, c] for c in sent_cols], dim=1),
                 conv.bias) for w, conv in convs], dim=1)
    c1 = _position_term(f.positions, f.pos1_table, [(w, c.weight[:, p1_cols]) for w, c in convs])
    c2 = _position_term(f.positions, f.pos2_table, [(w, c.weight[:, p2_cols]) for w, c in convs])
    return base, c1, c2


def _chunks(n: int, per_row: int, device: torch.device) -> list[slice]:
    budget = POOL_ELEMENTS["cpu" if device.type == "cpu" else "other"]
    step = max(1, budget // max(per_row, 1))
    return [slice(i, i + step) for i in range(0, n, step)]


def _regions(spans: torch.Tensor, width: int, segments: bool, entities: bool
             ) -> list[torch.Tensor | None]:
    """The [p, L] pooling masks of pairs with ``spans`` [p, 4]: the whole sentence (None) or the
    three PCNN segments, then, with ``entities``, each mention's own tokens."""
    out: list[torch.Tensor | None] = list(_segments(spans, width)) if segments else [None]
    return out + list(_mentions(spans, width)) if entities else out


def _pooled(base: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, f: Factors,
            segments: bool = False, entities: bool = False
            ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Max over time of every pair's pre-activation ``base[s] + c1[e1] + c2[e2]``, over its
    sentence's tokens (or, with ``segments``, over each of the three PCNN segments; with
    ``entities``, also over each of the two mentions' tokens).

    The [P, L, F] sum is never kept: it is made in cache-sized chunks of pairs without autograd.
    Without gradients its maxima are the result. With gradients, only where the maxima are is
    taken from it; the values there are then gathered, with gradients, from the three terms:
    the result and its gradient are those of max-pooling the per-pair convolution (the
    gradient reaches the argmax only), and autograd keeps P·F indices, not P·L·F values.

    Args:
        base: [S, F, L] the sentence terms.
        c1, c2: [M, L, F] the mention terms.
        f: The batch's factors.
        segments: Pool the three PCNN segments instead of the whole sentence.
        entities: Pool the two mentions' tokens too (two more regions, last).

    Returns:
        One ([P, F] maxima, [P] whether the region has a token, or None for the whole
        sentence) per pooling region.
    """
    n_regions = (3 if segments else 1) + (2 if entities else 0)
    width, filters = c1.shape[1], c1.shape[2]
    grad = torch.is_grad_enabled() and (base.requires_grad or c1.requires_grad)
    parts: list[list[torch.Tensor]] = [[] for _ in range(n_regions)]
    with torch.no_grad():
        real = f.mask[f.mention_sentence].unsqueeze(2)  # [M, L, 1]
        y1 = (base.transpose(1, 2)[f.mention_sentence] + c1).masked_fill_(~real, NEG)
        other = c2
        if grad:  # filter-major: max over the last dimension returns its indices fastest
            y1, other = y1.transpose(1, 2).contiguous(), c2.transpose(1, 2).contiguous()
        for rows in _chunks(len(f.sentence), width * filters, base.device):
            z = y1.index_select(0, f.e1[rows])
            z += other.index_select(0, f.e2[rows])
            for k, region in enumerate(_regions(f.spans[rows], width, segments, entities)):
                if grad:
                    zk = z if region is None else z.masked_fill(~region.unsqueeze(1), NEG)
                    parts[k].append(zk.max(dim=2).indices)  # [p, F]
                else:
                    zk = z if region is None else z.masked_fill(~region.unsqueeze(2), NEG)
                    parts[k].append(zk.amax(dim=1))  # [p, F]
    # which pairs have a token in each region (an empty region pools to zeros)
    has_token = [None if region is None else (region & f.mask[f.sentence]).any(dim=1)
                 for region in _regions(f.spans, width, segments, entities)]
    out: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for k in range(n_regions):
        got = torch.cat(parts[k]) if parts[k] else base.new_zeros(
            (0, filters), dtype=torch.long if grad else base.dtype)
        if grad:
            ar = torch.arange(filters, device=base.device)
            at_base = (f.sentence.unsqueeze(1) * filters + ar) * width + got
            at_mention = (f.e1.unsqueeze(1) * width + got) * filters + ar
            at_other = (f.e2.unsqueeze(1) * width + got) * filters + ar
            got = base.reshape(-1).take(at_base) + c1.reshape(-1).take(at_mention) + \
                c2.reshape(-1).take(at_other)
        out.append((got, has_token[k]))
    return out


def _segments(spans: torch.Tensor, width: int) -> tuple[torch.Tensor, ...]:
    """[P, L] masks of the three segments: up to the end of the first mention (in sentence
    order), up to the end of the second, the rest."""
    first_end = torch.minimum(spans[:, 1], spans[:, 3]).unsqueeze(1)
    second_end = torch.maximum(spans[:, 1], spans[:, 3]).unsqueeze(1)
    pos = torch.arange(width, device=spans.device).unsqueeze(0)
    return pos < first_end, (pos >= first_end) & (pos < second_end), pos >= second_end


def _mentions(spans: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[P, L] masks of the first and the second mention's tokens."""
    pos = torch.arange(width, device=spans.device).unsqueeze(0)
    return ((pos >= spans[:, 0:1]) & (pos < spans[:, 1:2]),
            (pos >= spans[:, 2:3]) & (pos < spans[:, 3:4]))


def _pool_regions(h: torch.Tensor, mask: torch.Tensor, regions: list[torch.Tensor]
                  ) -> list[torch.Tensor]:
    """[B, F] max of activations ``h`` [B, F, L] over each [B, L] region's real tokens (an
    empty region pools to zeros): the per-pair path's piecewise and mention pooling."""
    out = []
    for region in regions:
        m = (region & mask).unsqueeze(1)
        pooled = h.masked_fill(~m, NEG).max(dim=2).values
        out.append(torch.where(m.any(dim=2), pooled, torch.zeros_like(pooled)))
    return out


def _activated(pooled: list[tuple[torch.Tensor, torch.Tensor | None]],
               act: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The factored path's pooled maxima through the (monotone) activation, concatenated; a
    region without tokens gives zeros, as on the per-pair path."""
    return torch.cat([act(value) if has is None else
                      torch.where(has.unsqueeze(1), act(value), torch.zeros_like(value))
                      for value, has in pooled], dim=1)


class MultiWindowCNN(nn.Module):
    """The paper's encoder: one convolution per window size, "same" zero padding, ReLU,
    max-pooling over time.

    Args:
        in_dim: D, the width of the embedded input.
        windows: The window sizes (the paper: 4..10).
        filters: Filters per window (the paper: 64).
        entity_pool: Also max-pool over each mention's tokens (the output grows threefold).

    ``forward(x [B, L, D], mask [B, L] bool, spans [B, 4])`` returns [B, filters · len(windows)]
    ([B, 3 · filters · len(windows)] with ``entity_pool``: sentence, first, second mention).
    """

    def __init__(self, in_dim: int, windows: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10),
                 filters: int = 64, entity_pool: bool = False) -> None:
        super().__init__()
        self.windows = tuple(windows)
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, filters, w) for w in self.windows)
        self.entity_pool = entity_pool
        self.out_dim = filters * len(self.windows) * (3 if entity_pool else 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # [B, D, L]
        h = torch.cat([torch.relu(conv(_same_pad(x, w)))
                       for w, conv in zip(self.windows, self.convs, strict=True)], dim=1)
        pooled = [h.masked_fill(~mask.unsqueeze(1), NEG).max(dim=2).values]
        if self.entity_pool:
            pooled += _pool_regions(h, mask, list(_mentions(spans, x.shape[2])))
        return torch.cat(pooled, dim=1)

    def forward_factored(self, f: Factors) -> torch.Tensor:
        """The same vectors as ``forward`` on the per-pair inputs, encoding each sentence and
        each mention once: [P, out_dim]."""
        base, c1, c2 = _factor_terms(f, list(zip(self.windows, self.convs, strict=True)))
        # ReLU is monotone, so it can follow the pooling: relu(max x) = max relu(x).
        return _activated(_pooled(base, c1, c2, f, entities=self.entity_pool), torch.relu)


class PCNN(nn.Module):
    """One convolution (tanh), max-pooled piecewise over the three segments that the two
    mentions cut (Zeng et al. 2015); an empty segment pools to zeros.

    Args:
        in_dim: D, the width of the embedded input.
        window: The window size.
        filters: The number of filters F.
        entity_pool: Also max-pool over each mention's tokens.

    ``forward(x [B, L, D], mask [B, L] bool, spans [B, 4])`` returns [B, 3F] ([B, 5F] with
    ``entity_pool``: the three segments, then the first and the second mention).
    """

    def __init__(self, in_dim: int, window: int = 3, filters: int = 230,
                 entity_pool: bool = False) -> None:
        super().__init__()
        self.window = window
        self.conv = nn.Conv1d(in_dim, filters, window)
        self.entity_pool = entity_pool
        self.out_dim = (5 if entity_pool else 3) * filters

    def forward(self, x: torch.Tensor, mask: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(_same_pad(x.transpose(1, 2), self.window)))  # [B, F, L]
        regions = list(_segments(spans, x.shape[1]))
        if self.entity_pool:
            regions += _mentions(spans, x.shape[1])
        return torch.cat(_pool_regions(h, mask, regions), dim=1)

    def forward_factored(self, f: Factors) -> torch.Tensor:
        """The same vectors as ``forward`` on the per-pair inputs, encoding each sentence and
        each mention once: [P, out_dim]."""
        base, c1, c2 = _factor_terms(f, [(self.window, self.conv)])
        # tanh is monotone, so it can follow the pooling; an empty segment pools to zeros.
        return _activated(_pooled(base, c1, c2, f, segments=True, entities=self.entity_pool),
                          torch.tanh)


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
    "cnn": lambda in_dim, cfg: MultiWindowCNN(in_dim, cfg.windows, cfg.filters,
                                              cfg.entity_pool),
    "pcnn": lambda in_dim, cfg: PCNN(in_dim, cfg.pcnn_window, cfg.pcnn_filters,
                                     cfg.entity_pool),
    "bigru": lambda in_dim, cfg: EattBiGRU(in_dim, cfg.gru_hidden),
}
