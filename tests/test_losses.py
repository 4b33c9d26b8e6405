"""The ranking loss against values worked out by hand, and the other loss parts."""

from math import exp, log

import pytest
import torch

from relext_ray.model.decision import decide as predict
from relext_ray.model.decision import decision_scores
from relext_ray.model.losses import classification_loss, identification_loss, ranking_loss


def sp(x: float) -> float:  # log(1 + e^x), written out
    return log(1 + exp(x))


def loss(scores, labels, m_pos=2.5, m_neg=0.5, gamma=2.0):
    return ranking_loss(torch.tensor(scores), torch.tensor(labels), m_pos, m_neg, gamma).item()


def test_positive_gold_below_a_wrong_class():
    # gold column 0 scores 2.0; best wrong class is column 1 with 0.5
    assert loss([[2.0, 0.5, -1.0]], [1]) == pytest.approx(sp(2 * (2.5 - 2.0)) + sp(2 * (0.5 + 0.5)))


def test_gold_class_is_the_top_score():
    # c− is the best *wrong* class (0.2), not the gold top score 3.0
    assert loss([[0.2, 3.0]], [2]) == pytest.approx(sp(2 * (2.5 - 3.0)) + sp(2 * (0.5 + 0.2)))


def test_gold_other_has_only_the_negative_part():
    assert loss([[-1.0, 0.3, 0.1]], [0]) == pytest.approx(sp(2 * (0.5 + 0.3)))


def test_batch_mean():
    expected = (sp(2 * (2.5 - 2.0)) + sp(2 * (0.5 + 0.5)) + sp(2 * (0.5 + 0.5))) / 2
    assert loss([[2.0, 0.5], [0.5, -3.0]], [1, 0]) == pytest.approx(expected)


def test_margins_and_gamma():
    s, y = [[1.0, 0.0]], [1]
    assert loss(s, y, m_pos=4.5) == pytest.approx(sp(2 * 3.5) + sp(2 * 0.5))
    assert loss(s, y, m_neg=-0.5) == pytest.approx(sp(2 * 1.5) + sp(2 * -0.5))
    assert loss(s, y, gamma=1.0) == pytest.approx(sp(1.5) + sp(0.5))
    assert loss(s, y, m_pos=4.5) > loss(s, y) > loss(s, y, m_neg=-0.5)


def test_single_class_positive_has_no_wrong_class():
    assert loss([[1.0]], [1]) == pytest.approx(sp(2 * 1.5))


def test_gradient_pushes_gold_up_and_best_wrong_down():
    scores = torch.tensor([[1.0, 0.5, 0.2]], requires_grad=True)
    ranking_loss(scores, torch.tensor([1]), 2.5, 0.5, 2.0).backward()
    g = scores.grad[0]
    assert g[0] < 0 < g[1] and g[2] == 0


def test_variants_and_identification():
    scores = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    other = torch.tensor([0.5, 0.0])
    labels = torch.tensor([0, 2])
    ce = torch.nn.functional.cross_entropy(torch.tensor([[0.5, 1.0, -1.0], [0.0, 0.0, 2.0]]), labels)
    rk = ranking_loss(scores, labels, 2.5, 0.5, 2.0)
    assert classification_loss("ce", scores, other, labels, 2.5, 0.5, 2.0) == pytest.approx(ce.item())
    assert classification_loss("ce_ranking", scores, other, labels, 2.5, 0.5, 2.0).item() \
        == pytest.approx((ce + rk).item())
    assert classification_loss("ranking", scores, None, labels, 2.5, 0.5, 2.0) == rk
    id_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    expected = -(log(exp(2) / (exp(2) + 1)) + log(exp(1) / (1 + exp(1)))) / 2
    assert identification_loss(id_logits, labels).item() == pytest.approx(expected)


def test_threshold_prediction():
    scores = torch.tensor([[0.5, 2.0], [-0.2, -1.0], [1.0, 1.0]])
    assert predict(scores, 0.0).tolist() == [2, 0, 1]
    assert predict(scores, 1.5).tolist() == [2, 0, 0]
    # CE alone: margins over Other, so theta = 0 is argmax over all classes
    other = torch.tensor([3.0, -2.0, 0.0])
    assert predict(decision_scores("ce", scores, other), 0.0).tolist() == [0, 1, 1]
