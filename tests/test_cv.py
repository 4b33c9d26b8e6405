import numpy as np
import pytest

from relext_ray.training.cv import CVResult, folds_by_sentence
from tests.test_train import demo_config


def test_folds_never_split_a_sentence():
    sids = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"], dtype=object)
    fold = folds_by_sentence(sids, 3, seed=1)
    for s in set(sids):
        assert len(set(fold[sids == s])) == 1
    assert set(fold) == {0, 1, 2}
    assert (folds_by_sentence(sids, 3, seed=1) == fold).all()


def test_summary_mean_and_sd():
    r = CVResult([{"f1": 0.5}, {"f1": 0.7}, {"f1": 0.6}])
    mean, sd = r.summary()["f1"]
    assert mean == pytest.approx(0.6) and sd == pytest.approx(0.1)


@pytest.mark.usefixtures("ray_session")
def test_three_fold_cv_on_the_sample(tmp_path):
    from relext_ray.training.cv import cross_validate

    r = cross_validate(demo_config(tmp_path, "train.epochs=1"), k=3)
    assert len(r.folds) == 3
    assert all(0.0 <= f["f1"] <= 1.0 for f in r.folds)
