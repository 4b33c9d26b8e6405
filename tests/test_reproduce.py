"""The reproduction study: its plan, its report, and the job end to end on the sample corpus."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relext_ray.config import load_experiment
from relext_ray.errors import RelextError
from relext_ray.reproduce.report import plot_fig3, render
from relext_ray.reproduce.study import BUDGETS, CONFIGS, CORPORA, plan

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_plan_covers_every_table_once_per_seed():
    runs = plan(BUDGETS["quick"], ["conll04", "chinese_literature"])
    keys = [r.key for r in runs]
    assert len(keys) == len(set(keys))
    en = [r for r in runs if r.corpus == "conll04"]
    zh = [r for r in runs if r.corpus == "chinese_literature"]
    # English: Table 1's four systems; Chinese: Tables 2-4 (11 systems) and Figure 3 (2 x 5)
    assert len(en) == 4 * 3 and len(zh) == (11 + 10) * 2
    assert {r.seed for r in en} == {1, 2, 3} and {r.seed for r in zh} == {1, 2}
    fig3 = [r for r in zh if r.neg_ratio is not None]
    assert {(r.system, r.neg_ratio) for r in fig3} == {
        (s, x) for s in ("baseline", "mtl_tag") for x in (0.5, 1, 5, 10, 15)}
    for r in runs:
        cfg = load_experiment(CONFIGS / CORPORA[r.corpus].config, r.overrides(BUDGETS["quick"]))
        zh_run = r.corpus == "chinese_literature"
        assert cfg.train.epochs == (6 if zh_run else 20) and cfg.train.seed == r.seed
        assert cfg.train.batch_size == (64 if zh_run else 256)
        assert cfg.train.documents == (0.1 if zh_run else 1.0)
        assert cfg.train.max_length == (80 if zh_run else None)
        assert cfg.train.neg_ratio == r.neg_ratio
        assert cfg.model.word_dim == 50 and cfg.model.windows == (3, 4, 5)
    base = next(r for r in en if r.system == "baseline")
    cfg = load_experiment(CONFIGS / "conll04.yaml", base.overrides(BUDGETS["quick"]))
    assert not cfg.model.use_tag and not cfg.model.mtl and cfg.loss.m_pos == 2.5
    with pytest.raises(RelextError, match="unknown system"):
        plan(BUDGETS["quick"], ["conll04"], ["nope"])
    # --epochs caps every corpus alike
    capped = BUDGETS["quick"].with_epochs(2).with_seeds((7,))
    assert {capped.epochs_for(c) for c in ("conll04", "chinese_literature")} == {(2, 2)}
    assert {capped.seeds_for(c) for c in ("conll04", "chinese_literature")} == {(7,)}
    words = BUDGETS["quick"].describe(["conll04", "chinese_literature"])
    assert "10% of the training documents" in words["chinese_literature"]
    assert "at most 80 tokens" in words["chinese_literature"]
    assert "seeds 1, 2;" in words["chinese_literature"] and "seeds 1, 2, 3;" in words["conll04"]
    assert "documents" not in words["conll04"]


def _rows() -> list[dict]:
    rows = []
    for seed, (b, m) in enumerate([(0.50, 0.60), (0.52, 0.58)], start=1):
        rows += [{"corpus": "conll04", "system": "baseline", "seed": seed, "neg_ratio": None,
                  "test_f1": b, "test_calibrated_f1": b + 0.01, "test_false_negatives": 0.3,
                  "test_false_positives": 0.6, "test_wrong_class": 0.1},
                 {"corpus": "conll04", "system": "mtl_tag", "seed": seed, "neg_ratio": None,
                  "test_f1": m, "test_calibrated_f1": m, "test_false_negatives": 0.4,
                  "test_false_positives": 0.5, "test_wrong_class": 0.1},
                 {"corpus": "conll04", "system": "mtl", "seed": seed, "neg_ratio": None,
                  "test_f1": b - 0.02}]
        rows += [{"corpus": "conll04", "system": s, "seed": seed, "neg_ratio": x,
                  "test_f1": f, "train_neg_per_pos": x}
                 for x, fb, fm in [(1.0, 0.4, 0.45), (5.0, 0.3, 0.4)]
                 for s, f in (("baseline", fb), ("mtl_tag", fm))]
    return rows


def test_the_report_puts_our_numbers_beside_the_paper(tmp_path):
    text = render(_rows(), {"commit": "abc"}, "fig3.png")
    assert "| Baseline | 51.00 ± 1.41 | 57.2 | – | – | 52.00 ± 1.41 |" in text
    # +MTL+Tag: 59 vs 51 → +8.00 (+15.7%); the paper's 68.9 vs 57.2 → +11.70 (+20.5%)
    assert "| Baseline + MTL + Tag | 59.00 ± 1.41 | 68.9 | +8.00 (+15.7%) | +11.70 (+20.5%) |" \
        in text
    assert "| Baseline + Tag | not run |" in text
    assert "better in 2 of 2 seeds" in text
    # +MTL is below Baseline here, above it in the paper: the report says so
    assert re.search(r"conll04: Baseline \+ MTL is -2\.00 F1 over Baseline here, \+2\.3 in the "
                     r"paper", text)
    assert "| 5 | 5.00 | 30.00 ± 0.00 | 40.00 ± 0.00 | +10.00 |" in text
    assert "| conll04 | Baseline | 30.00 ± 0.00 | 60.00 ± 0.00 | 10.00 ± 0.00 |" in text
    assert plot_fig3(_rows(), tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_the_job_end_to_end_on_the_sample_corpus(tmp_path, mlflow_server):
    """Two systems, one seed, one epoch, two ratios: every table of the report has numbers."""
    if not os.environ.get("RAY_ADDRESS"):
        pytest.skip("no shared Ray head: run through `make test` (it starts one)")
    report, figure = tmp_path / "RESULTS.md", tmp_path / "fig3.png"
    args = [sys.executable, "jobs/reproduce.py", "--corpora", "demo",
            "--systems", "baseline,mtl_tag", "--seeds", "1", "--epochs", "1",
            "--ratios", "1,5", "--storage", str(tmp_path / "studies"),
            "--prepared-root", str(tmp_path / "prepared"), "--report", str(report),
            "--figure", str(figure), "--experiment", "relext-reproduce-test"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    text = report.read_text()
    for title in ("Tables 1 and 2", "Table 3", "Table 4", "Figure 3", "Error breakdown"):
        assert title in text
    f1 = re.compile(r"^\| Baseline \+ MTL \+ Tag \| \d+\.\d\d \|", re.M)
    assert len(f1.findall(text)) == 3, "main, encoders and losses tables each show +MTL+Tag"
    assert re.search(r"\| 5 \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|", text)
    assert figure.read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "studies" / "reproduce-quick" / "results.json").read_text())
    assert len(saved["result"]["rows"]) == 6 and not saved["result"]["failed"]
    assert saved["facts"]["MLflow"].split()[2] == saved["result"]["parent_run_id"]


def test_include_adds_another_studys_runs_once(tmp_path):
    from relext_ray.cli.reproduce import include

    main_rows = [{**r, "key": f"{r['corpus']}-{r['system']}-{r['neg_ratio']}-s{r['seed']}"}
                 for r in _rows()]
    tuned = {"corpus": "conll04", "system": "tuned", "seed": 1, "neg_ratio": None,
             "test_f1": 0.7, "key": "conll04-tuned-s1"}
    other = tmp_path / "tuned" / "results.json"
    other.parent.mkdir()
    other.write_text(json.dumps({
        "result": {"rows": [tuned, main_rows[0]]},
        "facts": {"command": "python jobs/reproduce.py --systems tuned", "commit": "def",
                  "tuned": {"conll04": "search values loss.m_pos=3.1"}}}), encoding="utf-8")
    result, facts = include({"rows": main_rows}, {"commit": "abc"}, [other])
    assert len(result["rows"]) == len(main_rows) + 1  # the repeated key is the main study's
    assert facts["tuned"] == {"conll04": "search values loss.m_pos=3.1"}
    assert "1 runs (tuned)" in facts["included: tuned"]
    text = render(result["rows"], facts, None)
    assert "- tuned: conll04: search values loss.m_pos=3.1\n" in text
    assert "Tuned row: +MTL+Tag, tuned (search values loss.m_pos=3.1): " \
           "F1 70.00" in text
    with pytest.raises(RelextError, match="--include"):
        include({"rows": main_rows}, {}, [tmp_path / "missing" / "results.json"])


def test_the_medium_plan_shares_figure_3s_point_with_the_tables():
    budget = BUDGETS["medium"]
    runs = plan(budget, ["conll04", "chinese_literature"])
    keys = [r.key for r in runs]
    assert len(keys) == len(set(keys))
    en = [r for r in runs if r.corpus == "conll04"]
    zh = [r for r in runs if r.corpus == "chinese_literature"]
    # English: Table 1's four systems, two tuned rows and the anchor, 3 seeds; Chinese: 11 table
    # systems and Figure 3's 2 x 5 points less the 2 at neg:pos 10 (the table runs), one seed
    # (the Eatt-BiGRU left out: the budget cannot afford its per-pair encoder there)
    assert len(en) == 7 * 3 and len(zh) == 11 - 2 + 10 - 2
    assert not {r.system for r in zh} & {"bigru", "bigru_tag"}
    assert {(r.system, r.neg_ratio) for r in zh if r.neg_ratio is not None} == {
        (s, x) for s in ("baseline", "mtl_tag") for x in (0.5, 1, 5, 15)}
    tuned = {o.partition("=")[0]: o.partition("=")[2]
             for o in next(r for r in en if r.system == "tuned").extra}
    assert tuned["train.optimizer"] == "adam" and "tracking.experiment" not in tuned
    pcnn = load_experiment(CONFIGS / "conll04.yaml",
                           next(r for r in en if r.system == "tuned_pcnn").overrides(budget))
    assert pcnn.model.encoder == "pcnn" and pcnn.model.entity_pool and pcnn.model.mtl
    for r in runs:
        cfg = load_experiment(CONFIGS / CORPORA[r.corpus].config, r.overrides(budget))
        assert cfg.model.word_dim == 200 and cfg.train.max_length is None  # the paper's model
        if r.corpus == "conll04":
            assert cfg.train.neg_ratio is None and cfg.train.epochs == 30
            continue
        assert cfg.train.epochs == 4 and cfg.train.select_on == "dev_calibrated_f1"
        assert cfg.train.neg_ratio == (r.neg_ratio or 10)
        assert cfg.train.documents == 1.0
    anchor = load_experiment(CONFIGS / "conll04.yaml",
                             next(r for r in en if r.system == "anchor").overrides(budget))
    assert anchor.model.windows == (3,) and anchor.model.filters == 230
    assert anchor.loss.variant == "ce" and anchor.train.optimizer == "adam"
    words = budget.describe(["conll04", "chinese_literature"])
    assert "table runs train at neg:pos 10" in words["chinese_literature"]
    assert "not run: Eatt-BiGRU, Eatt-BiGRU + Tag (per-pair encoding" in words["chinese_literature"]
    assert "+MTL+Tag, tuned row from tune_configs/conll04_tuned.yaml" in words["conll04"]
    assert "+MTL+Tag, tuned PCNN with mention pooling row from " \
           "tune_configs/conll04_tuned_pcnn.yaml" in words["conll04"]
    # --systems without tuned / anchor leaves them out
    assert {r.system for r in plan(budget, ["conll04"], ["baseline"])} == {"baseline"}


def test_table_runs_at_a_ratio_are_that_ratios_figure_3_point():
    rows = []
    for seed in (1, 2):
        rows += [{"corpus": "chinese_literature", "system": s, "seed": seed, "neg_ratio": None,
                  "train_ratio": 10.0, "test_f1": f, "train_neg_per_pos": 10.0}
                 for s, f in (("baseline", 0.2), ("mtl_tag", 0.3))]
        rows += [{"corpus": "chinese_literature", "system": s, "seed": seed, "neg_ratio": 1.0,
                  "test_f1": f, "train_neg_per_pos": 1.0}
                 for s, f in (("baseline", 0.1), ("mtl_tag", 0.15))]
        rows.append({"corpus": "conll04", "system": "anchor", "seed": seed, "neg_ratio": None,
                     "test_f1": 0.70, "test_calibrated_f1": 0.69})
        rows.append({"corpus": "conll04", "system": "tuned_pcnn", "seed": seed,
                     "neg_ratio": None, "test_f1": 0.72 + seed / 100})
    text = render(rows, {"commit": "abc"}, None)
    assert "| 1 | 1.00 | 10.00 ± 0.00 | 15.00 ± 0.00 | +5.00 |" in text
    assert "| 10 | 10.00 | 20.00 ± 0.00 | 30.00 ± 0.00 | +10.00 |" in text
    assert "Anchor row: single-window CNN + CE (anchor), the same tag embedding, F1 " \
           "70.00 ± 0.00" in text
    # the target line: +MTL+Tag 30 on Chinese Literature, 40 aimed at
    assert "- chinese_literature: Baseline + MTL + Tag 30.00 ± 0.00 against the 40 aimed at: " \
           "missed by 10.00." in text
    assert "- conll04: +MTL+Tag, tuned PCNN with mention pooling 73.50 ± 0.71 against the 72 " \
           "aimed at: reached." in text
    assert "Tuned row: +MTL+Tag, tuned PCNN with mention pooling " \
           "(tune_configs/conll04_tuned_pcnn.yaml): F1 73.50 ± 0.71" in render(
               rows, {"tuned_pcnn": {"conll04": "tune_configs/conll04_tuned_pcnn.yaml"}}, None)
    # without a sweep the table runs are no Figure 3 of their own
    assert "Figure 3" not in render([r for r in rows if r["neg_ratio"] is None], {}, None)
