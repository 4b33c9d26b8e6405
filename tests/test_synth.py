"""Synthetic corpora: valid canonical records, deterministic, shaped like the real corpus."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from relext_ray.cli.synth import main
from relext_ray.corpus.jsonl import read_jsonl
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.data.synth import Shape, Source, write
from relext_ray.errors import RelextError


def test_synthetic_records_are_valid_deterministic_and_use_the_source(sample_model, tmp_path):
    source = Source.load(str(sample_model))
    shape = Shape.of_corpus("jsonl", SAMPLE_DIR)
    a = write(500, tmp_path / "a", source, shape, seed=3, per_file=200)
    b = write(500, tmp_path / "b", source, shape, seed=3, per_file=200, workers=2)
    assert [p.name for p in a] == ["synth-00000.jsonl", "synth-00001.jsonl", "synth-00002.jsonl"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    results = [read_jsonl(p) for p in a]
    assert not any(r.rejects for r in results)  # every record passes the reader's validation
    sentences = [s for r in results for s in r.sentences]
    assert len(sentences) == 500
    vocab = set(source.vocabs.tokens.items)
    assert all(t in vocab for s in sentences for t in s.tokens)
    assert {len(s.tokens) for s in sentences} <= set(shape.lengths.tolist())
    types = {t for combo in source.type_filter.combos for t in combo}
    assert {e.type for s in sentences for e in s.entities} <= types
    assert {r.type for s in sentences for r in s.relations} <= set(source.relation_types)
    assert sum(len(s.relations) for s in sentences) > 0
    # entity types as frequent as in the corpus the shape comes from
    want = Counter(t for t in shape.entity_types.tolist() if t in types)
    got = Counter(e.type for s in sentences for e in s.entities)
    for t in types:  # ~2,000 mentions: a share's standard error is about 0.011
        assert abs(got[t] / got.total() - want[t] / want.total()) < 0.06, (t, got, want)
    mean_len = np.mean([len(s.tokens) for s in sentences])
    assert abs(mean_len - shape.lengths.mean()) < 0.15 * shape.lengths.mean()


def test_cli_names_a_missing_real_corpus(sample_model, tmp_path, capsys):
    code = main(["--sentences", "5", "--out", str(tmp_path), "--from", str(sample_model),
                 "--like", str(tmp_path / "nowhere")])
    assert code == 2 and "not found" in capsys.readouterr().err
    with pytest.raises(RelextError, match=r"not a relext_ray model|not found"):
        Source.load(str(tmp_path / "nowhere"))
