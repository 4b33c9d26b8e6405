"""The factored encoders equal the per-pair ones: scores and gradients, on synthetic edge cases
and on real CoNLL04 and Chinese Literature batches; and sentence batches respect their budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relext_ray.config import LossConfig, ModelConfig
from relext_ray.data.arrays import SplitArrays
from relext_ray.data.batching import make_batch, plan_batches
from relext_ray.data.local import prepare_local
from relext_ray.model.losses import Objective
from relext_ray.model.relation import RelationModel, build_model
from tests.test_models import MAX_D, P, T, V, arrays

C = 4
SCORE_TOL = 1e-5
GRAD_TOL = 1e-4


def model(encoder: str, n_tokens: int = V, n_positions: int = P, n_tags: int = T,
          n_classes: int = C, **kw) -> RelationModel:
    torch.manual_seed(3)
    cfg = ModelConfig(encoder=encoder, dropout=0.0, **kw)
    return RelationModel(cfg, n_tokens, n_positions, n_tags, n_classes)


def scores(m: RelationModel, b, factored: bool) -> torch.Tensor:
    r = m.encode_factored(b) if factored else m.encode_pairs(b)
    return m.classes(m.fc(r))


def gradients(m: RelationModel, b, factored: bool) -> torch.Tensor:
    """All parameters' gradients of the training objective, as one vector."""
    m.zero_grad()
    r = m.fc(m.encode_factored(b) if factored else m.encode_pairs(b))
    out = {"scores": m.classes(r), "other": None, "id_logits": m.identify(r)}
    Objective.from_config(LossConfig()).__call__(out, b.labels.clamp(min=0)).total.backward()
    return torch.cat([p.grad.reshape(-1) for p in m.parameters() if p.grad is not None])


def assert_same(m: RelationModel, b) -> tuple[float, float]:
    """Scores within SCORE_TOL and gradients within GRAD_TOL (relative) on both paths."""
    with torch.no_grad():
        diff = (scores(m, b, True) - scores(m, b, False)).abs().max().item()
    g_f, g_p = gradients(m, b, True), gradients(m, b, False)
    rel = ((g_f - g_p).norm() / g_p.norm()).item()
    assert diff <= SCORE_TOL, diff
    assert rel <= GRAD_TOL, rel
    return diff, rel


# Mentions at both sentence edges, nested (2..6 around 3..4), adjacent (0..2, 2..4), of one and
# of several tokens, a two-token sentence, a long sentence past the position clip.
EDGE_CASES = (
    [2, 9, 7, 30],
    [[(0, 1), (1, 2)],
     [(0, 2), (2, 4), (3, 4), (2, 6), (8, 9)],
     [(0, 7), (3, 4), (6, 7)],
     [(0, 1), (12, 15), (29, 30)]],
)


@pytest.mark.parametrize("encoder", ["cnn", "pcnn"])
@pytest.mark.parametrize(("use_tag", "entity_pool"), [(True, False), (False, False),
                                                      (True, True)])
def test_factored_equals_per_pair_on_edge_cases(encoder, use_tag, entity_pool):
    m = model(encoder, use_tag=use_tag, word_dim=20, pos_dim=6, tag_dim=5, filters=8,
              pcnn_filters=8, windows=(1, 2, 4, 5, 10), entity_pool=entity_pool)
    a = arrays(*EDGE_CASES)
    assert_same(m, make_batch(a, np.arange(len(a)), MAX_D))


def test_a_sentence_split_across_batches_scores_as_one_batch():
    m = model("cnn", word_dim=12, pos_dim=4, tag_dim=4, filters=6).eval()
    a = arrays([40], [[(i, i + 1) for i in range(0, 40, 3)]])  # 14 mentions, 182 pairs
    plan = plan_batches(a, max_pairs=25, max_tokens=40 * 8)
    assert len(plan) > 7 and all(len(np.unique(a.sentence[i])) == 1 for i in plan)
    whole = make_batch(a, np.arange(len(a)), MAX_D)
    with torch.no_grad():
        want = m(whole)["scores"]
        got = torch.zeros_like(want)
        for index in plan:
            got[torch.from_numpy(index)] = m(make_batch(a, index, MAX_D))["scores"]
    assert (got - want).abs().max().item() <= SCORE_TOL


def test_plans_cover_every_pair_once_within_the_budgets():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 60, 80).tolist()
    spans = [[(s, s + 1) for s in sorted(rng.choice(n, min(n, rng.integers(2, 9)), replace=False))]
             for n in lengths]
    lengths.append(500)  # one sentence over every budget: 40 mentions, 1,560 pairs
    spans.append([(i, i + 2) for i in range(0, 480, 12)])
    a = arrays(lengths, spans)
    max_pairs, max_tokens = 64, 2000
    for plan in (plan_batches(a, max_pairs, max_tokens),
                 plan_batches(a, max_pairs, max_tokens, np.random.default_rng(1))):
        assert np.array_equal(np.sort(np.concatenate(plan)), np.arange(len(a)))
        for index in plan:
            b = make_batch(a, index, MAX_D)
            assert len(b) <= max_pairs
            width = b.tokens.shape[1]
            assert b.tokens.shape[0] == 1 or b.tokens.shape[0] * width <= max_tokens
            assert len(b) == 1 or b.positions.shape[0] * width <= max_tokens
    # training plans are seeded: the same seed gives the same batches, another seed others
    again = plan_batches(a, max_pairs, max_tokens, np.random.default_rng(1))
    first = plan_batches(a, max_pairs, max_tokens, np.random.default_rng(1))
    other = plan_batches(a, max_pairs, max_tokens, np.random.default_rng(2))
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=False))


def _real_batches(a: SplitArrays, n: int) -> list[np.ndarray]:
    """A few evaluation batches of ``a``: the longest sentences' and seeded others."""
    plan = plan_batches(a, max_pairs=128, max_tokens=4096)
    pick = np.random.default_rng(0).choice(len(plan), min(n, len(plan)), replace=False)
    return [plan[-1], *(plan[i] for i in pick)]


@pytest.mark.shared_data
@pytest.mark.parametrize(("encoder", "entity_pool"), [("cnn", False), ("pcnn", False),
                                                      ("cnn", True)])
@pytest.mark.parametrize(("corpus", "fixture", "mode"), [
    ("conll04", "conll04_dir", "unordered"),
    ("brat", "chinese_literature_dir", "ordered"),
])
def test_factored_equals_per_pair_on_real_batches(request, corpus, fixture, mode, encoder,
                                                  entity_pool):
    data = prepare_local(corpus, request.getfixturevalue(fixture), mode, splits=("dev",))
    dev = data.splits["dev"]
    m = build_model(ModelConfig(encoder=encoder, dropout=0.0, entity_pool=entity_pool),
                    data.vocabs, len(data.vocabs.labels), 60)
    for index in _real_batches(dev, 3):
        assert_same(m, make_batch(dev, index, 60))
