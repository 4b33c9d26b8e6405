"""Exact resume, piece by piece: the searcher restored from Tune's snapshot, finish markers and
the exported study. (The whole kill-and-resume path runs in test_tune.py, test_cluster.py and
scripts/resume-stress.sh.)"""

from __future__ import annotations

import pickle

import optuna
import pytest
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from relext_ray.search.resume import (
    FinishedMarkers,
    StudySearch,
    export_study,
    marker,
    own_metrics,
    read_marker,
)
from relext_ray.tracking.trials import REPLAYED
from relext_ray.training.fit import stop_reason

SPACE = {"loss.m_pos": tune.uniform(1.5, 4.5), "model.use_tag": tune.choice([True, False])}


class _Trial:
    def __init__(self, trial_id: str, status: str, config: dict, last: dict | None = None):
        self.trial_id, self.status, self.config, self.last_result = trial_id, status, config, last


def _searcher(storage=None) -> OptunaSearch:
    if storage is None:
        s = StudySearch(metric="best_dev_f1", mode="max",
                        sampler=optuna.samplers.TPESampler(seed=1), study_name="t")
    else:
        s = OptunaSearch(metric="best_dev_f1", mode="max", study_name="t", storage=storage,
                         sampler=optuna.samplers.TPESampler(seed=1))
    s.set_search_properties("best_dev_f1", "max", SPACE)
    return s


def _result(step: int, f1: float, config: dict | None = None) -> dict:
    return {"best_dev_f1": f1, "training_iteration": step, "epoch": step,
            **({"config": config} if config else {})}


def _snapshot(s: OptunaSearch, tmp_path, name: str) -> str:
    path = str(tmp_path / name)
    s.save(path)
    return path


def _restored(path: str, storage=None) -> OptunaSearch:
    s = _searcher(storage)
    s.restore(path)
    return s


def test_with_a_live_study_a_restored_trial_reports_to_a_finished_optuna_trial(tmp_path):
    """The failure a resumed search used to die of, reproduced with Ray's searcher on an RDB
    study: the study is written at once, Tune's snapshot of the searcher lags behind."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    s = _searcher(storage)
    s.suggest("a")
    s.on_trial_result("a", _result(1, 0.5))
    old = _snapshot(s, tmp_path, "searcher.pkl")  # Tune's last snapshot: "a" still running
    s.on_trial_result("a", _result(2, 0.6))
    s.on_trial_complete("a", _result(2, 0.6))  # the study commits; then the driver dies
    restored = _restored(old, optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        restored.on_trial_result("a", {**_result(2, 0.6), REPLAYED: 1.0})


def test_the_study_restored_with_the_snapshot_agrees_with_tunes_trials(tmp_path):
    s = _searcher()
    params = s.suggest("a")
    s.on_trial_result("a", _result(1, 0.5))
    old = _snapshot(s, tmp_path, "searcher.pkl")
    s.on_trial_result("a", _result(2, 0.6))
    s.on_trial_complete("a", _result(2, 0.6))
    restored = _restored(old)  # "a" is running again, as in Tune's restored state
    restored.on_trial_result("a", {**_result(2, 0.6), REPLAYED: 1.0})  # the replayed finish
    restored.on_trial_complete("a", _result(2, 0.6))
    restored.on_trial_complete("a", _result(2, 0.6))  # told twice: the study keeps the first
    (trial,) = restored._ot_study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.6
    assert trial.params == params
    assert trial.intermediate_values == {1: 0.5}  # the replayed report is not a new step


def test_a_finished_trial_is_never_reported_again(tmp_path):
    s = _searcher()
    s.suggest("a")
    s.on_trial_result("a", _result(1, 0.5))
    s.on_trial_complete("a", _result(1, 0.5))
    s._completed_trials.clear()  # as if only the study knew the trial had finished
    s.on_trial_result("a", _result(2, 0.7))
    s.on_trial_complete("a", _result(2, 0.7))
    (trial,) = s._ot_study.get_trials()
    assert trial.value == 0.5 and trial.intermediate_values == {1: 0.5}


def test_a_step_reported_twice_is_reported_once():
    s = _searcher()
    s.suggest("a")
    s.on_trial_result("a", _result(1, 0.5))
    s.on_trial_result("a", _result(1, 0.5))  # an epoch redone from an older checkpoint
    s.on_trial_result("a", _result(2, 0.6))
    assert s._ot_study.get_trials()[0].intermediate_values == {1: 0.5, 2: 0.6}


def test_a_trial_the_snapshot_does_not_know_is_adopted_with_its_config(tmp_path):
    s = _searcher()
    s.suggest("a")
    old = _snapshot(s, tmp_path, "searcher.pkl")
    config = s.suggest("b")  # "b" started after the searcher's snapshot, before Tune's
    restored = _restored(old)
    restored.on_trial_result("b", _result(1, 0.4, config))
    restored.on_trial_complete("b", _result(1, 0.4, config))
    trials = restored._ot_study.get_trials()
    assert len(trials) == 2
    assert trials[1].params == config and trials[1].state == optuna.trial.TrialState.COMPLETE


def test_the_snapshot_pickles_with_its_study(tmp_path):
    s = _searcher()
    s.suggest("a")
    again = pickle.loads(pickle.dumps(s.__dict__))
    assert len(again["_ot_study"].get_trials()) == 1


def test_markers_hold_the_trials_own_metrics(tmp_path):
    trial = _Trial("abc", "TERMINATED", {}, {
        "epoch": 2, "best_dev_f1": 0.5, "training_iteration": 7, "config": {"x": 1},
        "done": True, "date": "today", REPLAYED: 1.0})
    FinishedMarkers(tmp_path).on_trial_complete(0, [], trial)
    assert read_marker(marker(tmp_path, "abc")) == {"epoch": 2.0, "best_dev_f1": 0.5}
    trial.last_result = {"epoch": 3, "best_dev_f1": 0.9}
    FinishedMarkers(tmp_path).on_trial_complete(0, [], trial)  # the first marker stays
    assert read_marker(marker(tmp_path, "abc"))["epoch"] == 2.0
    assert read_marker(marker(tmp_path, "none")) is None
    assert own_metrics({"ok": 1, "flag": True, "name": "x"}) == {"ok": 1.0}


@pytest.mark.parametrize(("last", "reason"), [
    ({"epoch": 3, "best_epoch": 1}, "completed"),
    ({"epoch": 2, "best_epoch": 0}, "early_stopping"),
    ({"epoch": 1, "best_epoch": 1}, "stopped_by_scheduler"),
])
def test_stop_reasons(last, reason):
    assert stop_reason(last, epochs=3, patience=2) == reason


def test_the_exported_study_replaces_an_earlier_one(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    dists = OptunaSearch.convert_search_space(SPACE)
    trials = [
        {"trial_id": "a", "state": "COMPLETE", "params": {"loss.m_pos": 2.0,
                                                           "model.use_tag": True},
         "value": 0.7, "intermediate": {1: 0.5, 2: 0.7}},
        {"trial_id": "b", "state": "PRUNED", "params": {"loss.m_pos": 3.0,
                                                         "model.use_tag": False},
         "value": 0.2, "intermediate": {1: 0.2}},
    ]
    export_study(trials[:1], dists, storage, "s", "maximize")
    export_study(trials, dists, storage, "s", "maximize")
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert [t.user_attrs["tune_trial_id"] for t in study.trials] == ["a", "b"]
    assert study.trials[0].value == 0.7 and study.trials[1].value is None
    assert study.trials[1].intermediate_values == {1: 0.2}


def _saved_search(tmp_path, trial_ids: list[str], counter: int) -> tuple[dict, StudySearch]:
    """A search folder whose saved searcher handed out ``trial_ids``."""
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    searcher = _searcher()
    limiter = ConcurrencyLimiter(searcher, max_concurrent=2)
    generator = SearchGenerator(limiter)
    configs = {t: limiter.suggest(t) for t in trial_ids}
    generator.set_state({**generator.get_state(), "counter": counter})
    generator.save_to_dir(str(tmp_path), "2026-01-01_00-00-00")
    return configs, searcher


def _loaded(tmp_path):
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    searcher = StudySearch(metric="best_dev_f1", mode="max",
                           sampler=optuna.samplers.RandomSampler(), study_name="t")
    limiter = ConcurrencyLimiter(searcher, max_concurrent=2)
    generator = SearchGenerator(limiter)
    generator.restore_from_dir(str(tmp_path))
    return generator, limiter, searcher


def test_a_searcher_saved_after_the_trials_is_aligned_with_them(tmp_path):
    """The searcher's file is a snapshot newer than the trials': "b" is unknown to Tune."""
    from relext_ray.search.resume import align_snapshot

    configs, _ = _saved_search(tmp_path, ["a", "b"], counter=2)
    fixed = align_snapshot(tmp_path, [_Trial("a", "RUNNING", configs["a"])], _loaded(tmp_path)[2],
                           max_concurrent=2)
    assert any("trial b" in f for f in fixed)
    generator, limiter, searcher = _loaded(tmp_path)
    assert limiter.live_trials == {"a"} and generator.get_state()["counter"] == 1
    assert set(searcher._ot_trials) == {"a"}
    assert align_snapshot(tmp_path, [_Trial("a", "RUNNING", configs["a"])], _loaded(tmp_path)[2],
                          max_concurrent=2) == []  # now they agree: nothing rewritten


def test_a_searcher_saved_before_the_trials_is_aligned_with_them(tmp_path):
    """The searcher's file is older: "a" terminated and "c" was made since."""
    from relext_ray.search.resume import align_snapshot

    configs, _ = _saved_search(tmp_path, ["a", "b"], counter=2)
    c_config = {"loss.m_pos": 3.3, "model.use_tag": False}
    trials = [_Trial("a", "TERMINATED", configs["a"], _result(3, 0.8)),
              _Trial("b", "RUNNING", configs["b"]), _Trial("c", "PENDING", c_config)]
    align_snapshot(tmp_path, trials, _loaded(tmp_path)[2], max_concurrent=2)
    generator, limiter, searcher = _loaded(tmp_path)
    assert limiter.live_trials == {"b", "c"} and generator.get_state()["counter"] == 3
    study = {t.number: t for t in searcher._ot_study.get_trials()}
    assert study[searcher._ot_trials["a"].number].value == 0.8
    assert study[searcher._ot_trials["c"].number].params == c_config


def test_folders_and_markers_of_lost_trials_are_deleted(tmp_path):
    """In the search folder and in the driver's staging folder (Tune copies it to storage)."""
    from types import SimpleNamespace

    from relext_ray.search.resume import FINISHED, drop_lost_trials, write_marker

    search, staging = tmp_path / "search", tmp_path / "staging"
    for base in (search, staging):
        for name in ("trial_a_1", "trial_b_2"):
            (base / name).mkdir(parents=True)
            (base / name / "params.json").write_text("{}")
        (base / "other").mkdir()  # not a trial folder: kept
    for tid in ("a", "b"):
        write_marker(marker(search / FINISHED, tid), {"epoch": 1})
    kept = _Trial("a", "TERMINATED", {})
    kept.path = str(search / "trial_a_1")
    kept.storage = SimpleNamespace(experiment_driver_staging_path=str(staging))
    assert drop_lost_trials(search, [kept]) == ["trial_b_2"]
    assert sorted(d.name for d in search.iterdir()) == [FINISHED, "other", "trial_a_1"]
    assert sorted(d.name for d in staging.iterdir()) == ["other", "trial_a_1"]
    assert [f.stem for f in (search / FINISHED).glob("*.json")] == ["a"]


def test_a_setting_added_since_a_search_started_does_not_block_its_resume():
    """A search recorded before a setting existed resumes when the setting keeps its default;
    a changed value, or a recorded config this version cannot read, is refused by name."""
    import json
    from pathlib import Path

    from relext_ray.config import TuneExperimentConfig, load_search
    from relext_ray.search.folder import changed_settings

    cfg = load_search(Path(__file__).resolve().parents[1] / "tune_configs" / "conll04_search.yaml")
    now = json.loads(cfg.model_dump_json())

    def normalize(c):
        return json.loads(TuneExperimentConfig.model_validate(c).model_dump_json())

    old = json.loads(cfg.model_dump_json())
    del old["experiment"]["tagger"]  # recorded by a version without the tagger
    assert changed_settings(old, now, normalize) == []
    assert changed_settings(old, now) != []  # without reading it as this version would
    old["experiment"]["train"]["lr"] = 0.5
    assert changed_settings(old, now, normalize) == ["experiment.train.lr"]
    old["experiment"]["train"]["no_such_setting"] = 1
    assert "no longer validates" in changed_settings(old, now, normalize)[0]
