"""Instance counts of the real corpora, pinned: the README's table is the same numbers."""

from __future__ import annotations

import pytest

from relext_ray.config import PrepareConfig

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.shared_data, pytest.mark.slow]

KEYS = ("sentences", "entities", "positives", "negatives", "filtered_out",
        "cross_sentence_relations_dropped", "rejected")

EXPECTED = {
    ("conll04", "unordered"): {
        "train": (922, 3377, 1282, 2781, 1936, 0, 0),
        "dev": (231, 893, 343, 736, 551, 0, 0),
        "test": (288, 1079, 422, 924, 565, 0, 0),
    },
    ("conll04", "ordered"): {
        "train": (922, 3377, 1283, 4552, 6163, 0, 0),
        "dev": (231, 893, 343, 1159, 1758, 0, 0),
        "test": (288, 1079, 422, 1478, 1922, 0, 0),
    },
    ("brat", "ordered"): {
        "train": (29441, 124954, 11812, 610929, 243311, 1630, 3),
        "dev": (2750, 11915, 1146, 55385, 26341, 198, 0),
        "test": (3686, 16804, 1451, 81486, 34035, 215, 0),
    },
}


@pytest.mark.parametrize(("corpus", "mode"), list(EXPECTED))
def test_pinned_counts(tmp_path, request, corpus, mode):
    from relext_ray.data.pipeline import prepare
    from tests.test_prepare import check_consistent

    data_dir = request.getfixturevalue("conll04_dir" if corpus == "conll04"
                                       else "chinese_literature_dir")
    out = tmp_path / "p"
    stats = prepare(PrepareConfig(corpus=corpus, data_dir=data_dir, mode=mode, out=out))
    got = {split: tuple(st[k] for k in KEYS) for split, st in stats.items()}
    assert got == EXPECTED[(corpus, mode)]
    check_consistent(stats, out)
    if corpus == "conll04":
        # every gold relation is either a positive instance or a counted conflict/filtered pair
        for st in stats.values():
            assert st["positives"] + st["label_conflicts"] + st["filtered_out_positives"] \
                == st["relations"]
