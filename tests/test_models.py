"""Encoders on sentence batches, the +Tag switch, and the model's heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relext_ray.config import ModelConfig
from relext_ray.data.arrays import Sentences, SplitArrays
from relext_ray.data.batching import Batch, make_batch
from relext_ray.instances.positions import position_ids, relative_positions
from relext_ray.model.relation import RelationModel

V, T, C, MAX_D = 50, 12, 4, 5
P = 2 * MAX_D + 2  # position ids


def arrays(lengths: list[int], spans: list[list[tuple[int, int]]], seed: int = 0) -> SplitArrays:
    """Sentences of random ids and every ordered pair of the given mention spans."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    sentence, rows = [], []
    for s, mentions in enumerate(spans):
        for a in mentions:
            for b in mentions:
                if a != b:
                    sentence.append(s)
                    rows.append([*a, *b])
    return SplitArrays(
        Sentences(np.array([f"s{i}" for i in range(len(lengths))], dtype=object), offsets,
                  rng.integers(1, V, total).astype(np.int32),
                  rng.integers(1, T, total).astype(np.int16)),
        np.array(sentence, dtype=np.int64), np.array(rows, dtype=np.int64).reshape(-1, 4),
        rng.integers(0, C + 1, len(rows)).astype(np.int64),
        np.array([f"p{i}" for i in range(len(rows))], dtype=object))


def small(encoder: str, **kw) -> RelationModel:
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=encoder, word_dim=16, pos_dim=4, tag_dim=4, filters=8,
                      pcnn_filters=8, gru_hidden=8, hidden=16, other_score=True, **kw)
    return RelationModel(cfg, V, P, T, C)


def batch_of(a: SplitArrays, index=None) -> Batch:
    return make_batch(a, np.arange(len(a)) if index is None else np.asarray(index), MAX_D)


@pytest.mark.parametrize("encoder", ["cnn", "pcnn", "bigru"])
def test_shapes_and_a_wider_batch_does_not_change_the_output(encoder):
    m = small(encoder).eval()
    a = arrays([7, 3, 12], [[(0, 1), (2, 4)], [(0, 1), (2, 3)], [(1, 2), (5, 8), (10, 12)]])
    b = batch_of(a)
    out = m(b)
    assert out["scores"].shape == (len(a), C)
    assert out["other"].shape == (len(a),) and out["id_logits"].shape == (len(a), 2)
    # the short sentences' pairs alone (narrower padding) score the same
    short = np.flatnonzero(a.sentence < 2)
    with torch.no_grad():
        alone = m(batch_of(a, short))
    assert torch.allclose(out["scores"][torch.from_numpy(short)], alone["scores"], atol=1e-5)


def test_a_batch_holds_each_sentence_and_mention_once():
    a = arrays([6, 9], [[(0, 2), (3, 4), (5, 6)], [(0, 1), (4, 9)]])
    b = batch_of(a)
    assert b.tokens.shape == (2, 9) and len(b) == 6 + 2
    assert b.positions.shape == (5, 9)  # 3 + 2 mentions
    assert b.lengths.tolist() == [6, 9] and b.mask.sum().item() == 15
    # positions: ids relative to each pair's own mentions, 0 beyond the sentence
    for p in range(len(a)):
        s = b.sentence[p].item()
        n = int(b.lengths[s])
        start, end = a.spans[p, 0], a.spans[p, 1]
        want = position_ids(relative_positions(n, start, end, MAX_D), MAX_D)
        assert b.positions[b.e1[p], :n].tolist() == want.tolist()
        assert not b.positions[b.e1[p], n:].any()
        assert b.mention_sentence[b.e1[p]] == s == b.mention_sentence[b.e2[p]]
        start_of = a.sentences.offsets[a.sentence[p]]
        assert b.tokens[s, :n].tolist() == a.sentences.tokens[start_of:start_of + n].tolist()


def test_cnn_output_size_is_filters_times_windows():
    m = RelationModel(ModelConfig(), V, P, T, C)
    assert m.encoder.out_dim == 64 * 7


def test_tag_embedding_learns_only_with_tag():
    a = arrays([6, 4], [[(0, 1), (2, 4)], [(0, 2), (3, 4)]])
    b = batch_of(a)
    with_tag = small("cnn", use_tag=True)
    with_tag(b)["scores"].sum().backward()
    assert with_tag.tag.weight.grad is not None and with_tag.tag.weight.grad.abs().sum() > 0

    without = small("cnn", use_tag=False).eval()
    assert without.tag is None
    other = Batch(**{**b.__dict__, "tags": (b.tags % (T - 1)) + 1})
    with torch.no_grad():
        assert torch.equal(without(b)["scores"], without(other)["scores"])
    with_tag.eval()
    with torch.no_grad():
        assert not torch.equal(with_tag(b)["scores"], with_tag(other)["scores"])


def test_heads_follow_the_switches():
    m = RelationModel(ModelConfig(mtl=False, word_dim=8, filters=4), V, P, T, C)
    out = m(batch_of(arrays([3], [[(0, 1), (2, 3)]])))
    assert out["id_logits"] is None and out["other"] is None


def test_the_factored_path_is_chosen_by_encoder_config_and_mode():
    assert small("cnn").uses_factored() and small("pcnn").uses_factored()
    assert not small("bigru").uses_factored()
    reference = small("cnn", factored=False)
    assert not reference.uses_factored()  # trains per pair
    assert reference.eval().uses_factored()  # evaluation always factors


def test_word_dropout_reads_training_tokens_as_unknown_and_leaves_evaluation_alone():
    a = arrays([40, 30], [[(0, 1), (5, 7)], [(2, 3), (20, 22)]])
    b = batch_of(a)
    m = small("cnn", word_dropout=0.5, dropout=0.0)
    seen: list[torch.Tensor] = []
    m.word.register_forward_hook(lambda _mod, args, _out: seen.append(args[0].clone()))
    torch.manual_seed(1)
    train_scores = m(b)["scores"]
    read = seen[-1]
    real = b.tokens > 1
    dropped = real & (read == 1)
    assert 0.3 < dropped.sum().item() / real.sum().item() < 0.7
    assert torch.equal(read[~dropped], b.tokens[~dropped])  # padding and the rest untouched
    # the per-pair reference draws the same words from the same generator state
    m.reference = True
    torch.manual_seed(1)
    assert torch.allclose(m(b)["scores"], train_scores, atol=1e-5)
    m.eval()
    with torch.no_grad():
        m(b)
    assert torch.equal(seen[-1], b.tokens)
    with torch.no_grad():
        assert torch.allclose(m(b)["scores"], small("cnn", dropout=0.0).eval()(b)["scores"])
