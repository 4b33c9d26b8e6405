"""Encoders on padded batches, the +Tag switch, and the model's heads."""

from __future__ import annotations

import pytest
import torch

from relext_ray.config import ModelConfig
from relext_ray.data.batching import Batch
from relext_ray.model.relation import RelationModel

V, P, T, C = 50, 42, 12, 4


def batch(lengths: list[int], width: int | None = None, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    b = len(lengths)
    tokens = torch.randint(1, V, (b, width), generator=g)
    pos1 = torch.randint(1, P, (b, width), generator=g)
    pos2 = torch.randint(1, P, (b, width), generator=g)
    tags = torch.randint(1, T, (b, width), generator=g)
    for i, n in enumerate(lengths):
        for t in (tokens, pos1, pos2, tags):
            t[i, n:] = 0
    spans = torch.tensor([[0, 1, min(2, n - 1), n] for n in lengths])
    return Batch(tokens, pos1, pos2, tags, spans, torch.zeros(b, dtype=torch.long))


def padded(b: Batch, extra: int) -> Batch:
    pad = lambda t: torch.nn.functional.pad(t, (0, extra))  # noqa: E731
    return Batch(pad(b.tokens), pad(b.pos1), pad(b.pos2), pad(b.tags), b.spans, b.labels)


@pytest.mark.parametrize("encoder", ["cnn", "pcnn", "bigru"])
def test_shapes_and_padding_does_not_change_the_output(encoder):
    torch.manual_seed(0)
    m = RelationModel(ModelConfig(encoder=encoder, word_dim=16, pos_dim=4, tag_dim=4, filters=8,
                                  pcnn_filters=8, gru_hidden=8, hidden=16, other_score=True),
                      V, P, T, C).eval()
    b = batch([7, 3, 5])
    out = m(b)
    assert out["scores"].shape == (3, C)
    assert out["other"].shape == (3,)
    assert out["id_logits"].shape == (3, 2)
    assert m.encoder(torch.zeros(3, 7, 28), b.mask, b.spans).shape == (3, m.encoder.out_dim)
    with torch.no_grad():
        wider = m(padded(b, 6))
    assert torch.allclose(out["scores"], wider["scores"], atol=1e-5)


def test_cnn_output_size_is_filters_times_windows():
    m = RelationModel(ModelConfig(), V, P, T, C)
    assert m.encoder.out_dim == 64 * 7


def test_tag_embedding_learns_only_with_tag():
    b = batch([6, 4])
    with_tag = RelationModel(ModelConfig(use_tag=True, word_dim=8, filters=4), V, P, T, C)
    with_tag(b)["scores"].sum().backward()
    assert with_tag.tag.weight.grad is not None and with_tag.tag.weight.grad.abs().sum() > 0

    without = RelationModel(ModelConfig(use_tag=False, word_dim=8, filters=4), V, P, T, C).eval()
    assert without.tag is None
    other_tags = Batch(b.tokens, b.pos1, b.pos2, (b.tags % (T - 1)) + 1, b.spans, b.labels)
    with torch.no_grad():
        assert torch.equal(without(b)["scores"], without(other_tags)["scores"])
    with_tag.eval()
    with torch.no_grad():
        assert not torch.equal(with_tag(b)["scores"], with_tag(other_tags)["scores"])


def test_heads_follow_the_switches():
    m = RelationModel(ModelConfig(mtl=False, word_dim=8, filters=4), V, P, T, C)
    out = m(batch([3]))
    assert out["id_logits"] is None and out["other"] is None
