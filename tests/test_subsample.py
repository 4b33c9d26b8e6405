"""Training subsets: the documents share and the neg:pos ratio of the paper's Figure 3."""

from __future__ import annotations

import numpy as np
import pytest

from relext_ray.data.subsample import counts, document_share, negative_ratio, short_sentences, training_index
from relext_ray.errors import RelextError


def test_negative_ratio_keeps_every_positive_and_the_asked_number_of_negatives():
    labels = np.array([0] * 90 + [1] * 6 + [2] * 4)
    for ratio in (0.5, 1, 5):
        idx = negative_ratio(labels, ratio, seed=3)
        kept = labels[idx]
        assert (kept != 0).sum() == 10
        assert (kept == 0).sum() == round(ratio * 10)
        assert len(set(idx.tolist())) == len(idx)
    # more than there are: all negatives, and the counts show the ratio actually reached
    idx = negative_ratio(labels, 15, seed=3)
    assert counts(labels[idx])["train_neg_per_pos"] == 9.0
    assert not np.array_equal(negative_ratio(labels, 1, 1), negative_ratio(labels, 1, 2))
    assert np.array_equal(negative_ratio(labels, 1, 1), negative_ratio(labels, 1, 1))


def test_document_share_takes_whole_documents():
    ids = np.array([f"d{d}:{k}" for d in range(10) for k in range(3)], dtype=object)
    idx = document_share(ids, 0.3, seed=1)
    docs = {ids[i].split(":")[0] for i in idx}
    assert len(docs) == 3 and len(idx) == 9
    assert len(document_share(ids, 1.0, seed=1)) == 30
    with pytest.raises(RelextError, match=r"train\.documents"):
        document_share(ids, 0.0, seed=1)


def test_training_index_applies_documents_then_ratio():
    ids = np.array([f"d{d}:{k}" for d in range(4) for k in range(25)], dtype=object)
    labels = np.array(([1] + [0] * 24) * 4)
    idx = training_index(labels, ids, documents=0.5, neg_ratio=2, seed=5)
    assert (labels[idx] != 0).sum() == 2 and (labels[idx] == 0).sum() == 4
    assert len({ids[i].split(":")[0] for i in idx}) <= 2


def test_short_sentences_keeps_instances_up_to_the_cap():
    lengths = np.array([5, 80, 81, 200, 3])
    assert short_sentences(lengths, 80).tolist() == [0, 1, 4]
    assert counts(np.array([0, 0, 1]), "test") == {
        "test_instances": 3.0, "test_positives": 1.0, "test_neg_per_pos": 2.0}
    with pytest.raises(RelextError, match=r"train\.max_length"):
        short_sentences(lengths, 0)


def test_each_draw_of_negatives_is_fresh_and_the_documents_stay():
    ids = np.array([f"d{d}:{k}" for d in range(8) for k in range(50)], dtype=object)
    labels = np.array(([1, 2] + [0] * 48) * 8)
    draws = [training_index(labels, ids, documents=0.5, neg_ratio=3, seed=5, draw=d)
             for d in (1, 2, 3)]
    assert np.array_equal(draws[0], training_index(labels, ids, 0.5, 3, seed=5))
    positives = [set(i[labels[i] != 0].tolist()) for i in draws]
    negatives = [set(i[labels[i] == 0].tolist()) for i in draws]
    assert positives[0] == positives[1] == positives[2] and len(positives[0]) == 8
    assert all(len(n) == 24 for n in negatives)
    assert negatives[0] != negatives[1] != negatives[2]
    docs = [{ids[j].split(":")[0] for j in i} for i in draws]
    assert docs[0] == docs[1] == docs[2]
    assert np.array_equal(draws[1], training_index(labels, ids, 0.5, 3, seed=5, draw=2))
