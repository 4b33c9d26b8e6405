import numpy as np
import pytest

from relext_ray.training.metrics import best_threshold, score

LABELS = ["Other", "A", "B"]
GOLD = np.array([0, 0, 1, 1, 2, 2, 1, 0])
PRED = np.array([0, 1, 1, 2, 2, 0, 1, 0])


def test_micro_scores_on_a_hand_made_confusion():
    s = score(GOLD, PRED, LABELS)
    assert (s.tp, s.predicted_positives, s.gold_positives) == (3, 5, 5)
    assert (s.precision, s.recall, s.f1) == pytest.approx((0.6, 0.6, 0.6))
    assert (s.false_negatives, s.false_positives, s.wrong_class) == (1, 1, 1)
    assert s.error_breakdown == pytest.approx(
        {"false_negatives": 1 / 3, "false_positives": 1 / 3, "wrong_class": 1 / 3})
    assert s.per_class["A"]["precision"] == pytest.approx(2 / 3)
    assert s.per_class["A"]["recall"] == pytest.approx(2 / 3)
    assert s.per_class["B"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert s.confusion == [[2, 1, 0], [0, 2, 1], [1, 0, 1], [0, 0, 0]]


def test_filtered_positives_and_unknown_classes_are_false_negatives():
    s = score(GOLD, PRED, LABELS, missed_positives=1)
    assert s.recall == pytest.approx(3 / 6) and s.false_negatives == 2
    u = score(np.array([-1, 1]), np.array([1, 1]), LABELS)
    assert (u.tp, u.wrong_class, u.gold_positives) == (1, 1, 2)
    assert u.confusion[-1] == [0, 1, 0]


def test_nothing_predicted():
    s = score(np.array([1, 0]), np.array([0, 0]), LABELS)
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)


def test_best_threshold_by_hand():
    gold = np.array([1, 0, 1, 0])
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.0, 0.1]])
    # theta 0.9: F1 2/3; 0.8: 1/2; 0.7: 4/5; 0.1: 2/3
    theta, s = best_threshold(gold, scores, LABELS)
    assert theta == pytest.approx(0.7) and s.f1 == pytest.approx(0.8)


def test_scores_from_summed_confusions_equal_scores_of_the_whole():
    """Streaming prediction sums per-batch confusion matrices; the result must not change."""
    from relext_ray.training.metrics import confusion_matrix, scores_from_confusion

    rng = np.random.default_rng(0)
    labels = ["Other", "A", "B", "C"]
    gold = rng.integers(-1, 4, size=500)
    pred = rng.integers(0, 4, size=500)
    whole = score(gold, pred, labels, missed_positives=7)
    parts = sum(confusion_matrix(gold[i:i + 37], pred[i:i + 37], 4) for i in range(0, 500, 37))
    assert scores_from_confusion(parts, labels, 7).to_dict() == whole.to_dict()
    assert whole.tp == int(np.sum((gold > 0) & (pred == gold)))
    assert whole.wrong_class == int(np.sum((gold != 0) & (pred != 0) & (pred != gold)))


def test_annotated_pairs_classify_every_related_pair_and_ignore_the_others():
    """The published Chinese Literature setting: no Other, no theta, unrelated pairs unscored."""
    from relext_ray.training.metrics import annotated_pairs, macro_f1

    gold = np.array([0, 1, 1, 2, 2, 0, -1])
    scores = np.array([[9.0, 0.0],     # Other: not scored, however confident
                       [-3.0, -4.0],   # A: right, though far below any theta
                       [0.1, 0.5],     # A: B predicted
                       [0.0, 2.0],     # B: right
                       [-1.0, -0.5],   # B: right
                       [5.0, 5.0],     # Other: not scored
                       [1.0, 0.0]])    # a class the model does not know: an error
    s = annotated_pairs(gold, scores, LABELS, missed_positives=1)
    # 5 related pairs scored, 3 right; 6 annotated in all (one the type filter removed)
    assert (s.tp, s.predicted_positives, s.gold_positives) == (3, 5, 6)
    assert (s.precision, s.recall) == pytest.approx((3 / 5, 3 / 6))
    assert s.false_positives == 0 and s.confusion[0] == [0, 0, 0]
    a = s.per_class["A"]  # 1 of 2 A found; A predicted twice (once for the unknown class)
    assert (a["precision"], a["recall"]) == pytest.approx((1 / 2, 1 / 2))
    b = s.per_class["B"]  # both B found; B predicted 3 times
    assert (b["precision"], b["recall"]) == pytest.approx((2 / 3, 1.0))
    assert macro_f1(s) == pytest.approx((0.5 + 0.8) / 2)
