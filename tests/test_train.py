"""One training run end to end on the sample corpus: determinism, checkpoints, configs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from relext_ray.config import load_experiment
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import RelextError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tune_configs" / "demo.yaml"


def demo_config(tmp_path: Path, *extra: str):
    return load_experiment(DEMO, [
        f"data.data_dir={SAMPLE_DIR}", f"data.prepared_dir={tmp_path / 'prepared'}",
        f"train.checkpoint_dir={tmp_path / 'ckpt'}", "train.epochs=2", "tracking.enabled=false",
        "tagger.enabled=false", *extra,
    ])


@pytest.mark.usefixtures("ray_session")
def test_same_seed_same_metrics_and_checkpoint_round_trip(tmp_path):
    from relext_ray.data.prepared import PreparedData
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.evaluate import decision_matrix, scores_at
    from relext_ray.training.run import run

    cfg = demo_config(tmp_path)
    first = run(cfg)
    second = run(cfg)
    def timeless(history):
        return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]

    assert timeless(first.history) == timeless(second.history)
    assert len(first.history) == 2
    assert first.test.to_dict() == second.test.to_dict()
    assert first.dev.f1 > 0.5  # it learns the templates

    ckpt = load_checkpoint(first.checkpoint)
    data = PreparedData.load(cfg.prepared_dir)
    test = data.splits["test"]
    matrix = decision_matrix(ckpt.model, ckpt.config, test, ckpt.meta["max_distance"],
                             torch.device("cpu"))
    again = scores_at(matrix, test, ckpt.meta["theta"], ckpt.meta["labels"], 0)
    assert again.to_dict() == first.test.to_dict()
    assert ckpt.meta["labels"] == data.labels and ckpt.meta["mode"] == "unordered"
    assert (first.checkpoint / "vocab" / "tokens.json").exists()
    assert (first.checkpoint / "type_filter.json").exists()
    assert ckpt.meta["calibrated_theta"] == pytest.approx(first.calibrated_theta)
    assert np.isfinite(matrix).all()


def test_unknown_key_is_one_clear_error(tmp_path):
    with pytest.raises(RelextError) as err:
        load_experiment(DEMO, ["model.use_tags=true"])
    assert "model.use_tags: Extra inputs are not permitted" in str(err.value)


def test_fresh_negatives_without_a_ratio_are_one_clear_error():
    with pytest.raises(RelextError, match=r"train: .*resample_negatives.*set neg_ratio"):
        load_experiment(DEMO, ["train.resample_negatives=true"])


def test_wrong_type_names_the_key():
    with pytest.raises(RelextError, match=r"loss\.gamma: Input should be a valid number"):
        load_experiment(DEMO, ["loss.gamma=high"])


def test_overrides_and_environment(tmp_path, monkeypatch):
    cfg = load_experiment(ROOT / "tune_configs" / "conll04.yaml",
                          ["model.use_tag=false", "loss.m_pos=3"])
    assert cfg.model.use_tag is False and cfg.loss.m_pos == 3.0
    monkeypatch.setenv("RELEXT_DATA_DIR", "/data/here")
    assert str(load_experiment(ROOT / "tune_configs" / "conll04.yaml").data.data_dir) \
        == "/data/here/conll04"
    ce = load_experiment(DEMO, ["loss.variant=ce"])
    assert ce.model.other_score is True


@pytest.mark.parametrize("name", ["conll04", "chinese_literature", "demo"])
def test_shipped_configs_are_valid(name):
    cfg = load_experiment(ROOT / "tune_configs" / f"{name}.yaml")
    assert cfg.name == name


def test_paper_settings_in_the_shipped_configs():
    en = load_experiment(ROOT / "tune_configs" / "conll04.yaml")
    zh = load_experiment(ROOT / "tune_configs" / "chinese_literature.yaml")
    assert (en.data.mode, en.loss.m_pos, en.loss.m_neg, en.loss.gamma, en.loss.theta) == \
        ("unordered", 2.5, 0.5, 2.0, 0.0)
    assert (zh.data.mode, zh.loss.m_pos, zh.loss.m_neg, zh.loss.gamma, zh.loss.theta) == \
        ("ordered", 4.5, -0.5, 2.0, 1.0)


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("sampling", [(), ("train.neg_ratio=2", "train.resample_negatives=true"),
                                      ("train.weight_average=0.9",), ("train.lr_schedule=cosine",)],
                         ids=["all-pairs", "fresh-negatives-each-epoch", "averaged-weights",
                              "cosine-learning-rate"])
def test_a_fit_resumed_from_its_saved_state_matches_an_uninterrupted_one(tmp_path, sampling):
    """What a Tune trial does after its worker died: continue from the last epoch's state
    (with resampled negatives too: epoch 3 of the resumed fit draws what it would have; with
    averaged weights: the average goes on from where it was; with a schedule: the rates go on
    from where they were)."""
    from relext_ray.training.fit import FitState
    from relext_ray.training.run import run

    saved: list[Path] = []

    def keep(metrics, state):  # as the trial's checkpoint does: written at once, read back later
        path = tmp_path / f"state{metrics['epoch']}.pt"
        state.save(path)
        saved.append(path)

    cfg = demo_config(tmp_path, "train.epochs=4", "train.patience=4", *sampling)
    straight = run(cfg, save=False, on_state=keep)
    assert [p.name for p in saved] == ["state1.pt", "state2.pt", "state3.pt", "state4.pt"]
    if "train.lr_schedule=cosine" in sampling:  # the rate the last step of each epoch had
        rates = [h["lr"] for h in straight.history]
        assert rates == sorted(rates, reverse=True) and rates[-1] < 0.1 * cfg.train.lr
    resumed = run(cfg, save=False, resume=FitState.load(saved[1]))

    def timeless(history):
        return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]

    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert timeless(resumed.history) == timeless(straight.history)
    assert resumed.test.to_dict() == straight.test.to_dict()

    # A state from the last epoch trains nothing more and gives the same result.
    trained: list[dict] = []
    again = run(cfg, save=False, resume=FitState.load(saved[-1]),
                on_state=lambda m, s: trained.append(m))
    assert trained == []
    assert timeless(again.history) == timeless(straight.history)
    assert again.test.to_dict() == straight.test.to_dict()


@pytest.mark.usefixtures("ray_session")
def test_resampled_negatives_change_what_later_epochs_train_on(tmp_path):
    """Epoch 1 draws what a run without resampling keeps throughout; later epochs draw anew
    (as many), and the run reports the per-epoch count."""
    from relext_ray.training.run import run

    fixed = run(demo_config(tmp_path, "train.epochs=3", "train.patience=3",
                            "train.neg_ratio=1"), save=False)
    fresh = run(demo_config(tmp_path, "train.epochs=3", "train.patience=3", "train.neg_ratio=1",
                            "train.resample_negatives=true"), save=False)
    assert fresh.history[0]["loss"] == fixed.history[0]["loss"]
    assert fresh.history[1]["loss"] != fixed.history[1]["loss"]
    assert fresh.train_counts == fixed.train_counts
    assert fresh.train_counts["train_neg_per_pos"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.usefixtures("ray_session")
def test_averaged_weights_are_what_selects_the_epoch_and_what_is_saved(tmp_path):
    """Training steps the raw weights; dev selection and the checkpoint use their average."""
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.fit import FitState
    from relext_ray.training.run import run

    states: list[FitState] = []
    plain = run(demo_config(tmp_path, "train.epochs=3", "train.patience=3"), save=False)
    averaged = run(demo_config(tmp_path, "train.epochs=3", "train.patience=3",
                               "train.weight_average=0.9"),
                   on_state=lambda m, s: states.append(copy.deepcopy(s)))  # (live tensors)
    # the same raw trajectory (averaging draws nothing at random), other dev scores
    assert [h["loss"] for h in averaged.history] == [h["loss"] for h in plain.history]
    assert [h["dev_f1"] for h in averaged.history] != [h["dev_f1"] for h in plain.history]
    best = states[averaged.best_epoch - 1]
    saved = load_checkpoint(averaged.checkpoint).model.state_dict()
    for k, v in best.average["shadow"].items():
        assert torch.equal(saved[k], v), k
    assert any(not torch.equal(saved[k], v) for k, v in best.model.items())
    # a state saved without an average cannot continue a run that keeps one
    plain_state: list[FitState] = []
    run(demo_config(tmp_path, "train.epochs=1"), save=False,
        on_state=lambda m, s: plain_state.append(s))
    with pytest.raises(RelextError, match="weight_average"):
        run(demo_config(tmp_path, "train.epochs=2", "train.weight_average=0.9"), save=False,
            resume=plain_state[-1])


@pytest.mark.usefixtures("ray_session")
def test_a_sentence_cap_applies_to_every_split_and_is_reported(tmp_path):
    from relext_ray.data.prepared import PreparedData
    from relext_ray.training.run import run

    full = run(demo_config(tmp_path, "train.epochs=1"), save=False)
    data = PreparedData.load(tmp_path / "prepared")
    cap = int(np.median(data.splits["train"].lengths))
    capped = run(demo_config(tmp_path, "train.epochs=1", f"train.max_length={cap}"), save=False)
    for split in ("train", "test"):
        a = data.splits[split]
        kept = a.lengths <= cap
        assert 0 < kept.sum() < len(a)
        assert full.train_counts[f"{split}_instances"] == len(a)
        assert capped.train_counts[f"{split}_instances"] == kept.sum()
        assert capped.train_counts[f"{split}_positives"] == (a.labels[kept] != 0).sum()
    # the test scores count only the kept positives (plus the type filter's misses)
    gold = int((data.splits["test"].labels[data.splits["test"].lengths <= cap] != 0).sum())
    assert capped.test.gold_positives == gold + data.missed_positives("test")


class _Payload:
    """Unpickling this would run code (here: only a marker file, if it ever happened)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_files_that_would_unpickle_code_are_refused(tmp_path, sample_model):
    import shutil

    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.fit import FitState

    ran = tmp_path / "code-ran"
    model_dir = tmp_path / "model"
    shutil.copytree(sample_model, model_dir)
    torch.save({"weights": _Payload(str(ran))}, model_dir / "model.pt")
    with pytest.raises(RelextError, match="not a relext_ray model file"):
        load_checkpoint(model_dir)
    torch.save({"epoch": _Payload(str(ran))}, tmp_path / "fit_state.pt")
    with pytest.raises(RelextError, match="not a training state"):
        FitState.load(tmp_path / "fit_state.pt")
    assert not ran.exists()


@pytest.mark.usefixtures("ray_session")
def test_pretrained_vectors_and_another_optimizer_train(tmp_path):
    """A vectors file for half the sample's words (the rest stay random), AdamW: the run
    trains, reports the coverage, and the embedding takes the vectors' width (17, where the
    config says 50), which the checkpoint keeps."""
    from relext_ray.data.prepared import PreparedData, ensure_prepared
    from relext_ray.training.checkpoint import load_checkpoint
    from relext_ray.training.run import run

    tokens = PreparedData.load(ensure_prepared(demo_config(tmp_path))).vocabs.tokens.items[2:]
    rng = np.random.default_rng(0)
    lines = [f"{t} " + " ".join(f"{x:.4f}" for x in rng.normal(size=17)) for t in tokens[::2]]
    (tmp_path / "vectors.txt").write_text("\n".join(lines) + "\n")
    result = run(demo_config(tmp_path, "train.epochs=1", "train.optimizer=adamw",
                             "train.weight_decay=0.01",
                             f"model.word_vectors={tmp_path / 'vectors.txt'}"))
    assert result.train_counts["word_vectors_found"] == len(lines)
    assert result.train_counts["word_vectors_coverage"] == pytest.approx(
        len(lines) / len(tokens))
    assert 0.0 <= result.dev.f1 <= 1.0 and result.checkpoint is not None
    assert result.train_counts["word_vectors_dim"] == 17
    loaded = load_checkpoint(result.checkpoint)
    assert loaded.config.model.word_dim == 17
    assert loaded.model.word.weight.shape[1] == 17


def test_a_config_can_build_on_a_base_config(tmp_path):
    """``base`` + own values + ``overrides``, in that order; a base that includes itself is an
    error, not a loop."""
    (tmp_path / "tuned.yaml").write_text(
        f"name: tuned\nbase: {ROOT / 'tune_configs' / 'conll04.yaml'}\n"
        "train: {lr: 0.0005}\noverrides:\n  - loss.m_pos=3.0\n  - train.optimizer=adamw\n")
    cfg = load_experiment(tmp_path / "tuned.yaml", ["train.seed=7"])
    assert cfg.name == "tuned" and cfg.train.lr == 0.0005 and cfg.loss.m_pos == 3.0
    assert cfg.train.optimizer == "adamw" and cfg.train.seed == 7
    assert cfg.loss.m_neg == 0.5 and cfg.data.corpus == "conll04"  # from the base
    (tmp_path / "loop.yaml").write_text("name: loop\nbase: loop.yaml\n")
    with pytest.raises(RelextError, match="includes itself"):
        load_experiment(tmp_path / "loop.yaml")


@pytest.mark.usefixtures("ray_session")
def test_early_stopping_can_select_on_the_calibrated_dev_f1(tmp_path):
    """``train.select_on=dev_calibrated_f1``: each epoch is scored at its own best dev theta,
    and the kept epoch is the one where that score is highest."""
    from relext_ray.training.run import run

    cfg = demo_config(tmp_path, "train.epochs=3", "train.patience=3",
                      "train.select_on=dev_calibrated_f1")
    result = run(cfg)
    calibrated = [h["dev_calibrated_f1"] for h in result.history]
    assert len(calibrated) == 3
    assert all(h["dev_calibrated_f1"] >= h["dev_f1"] for h in result.history)
    best = int(np.argmax(calibrated)) + 1
    assert result.best_epoch == best and result.history[-1]["best_epoch"] == best
    assert result.history[-1]["best_dev_f1"] == max(calibrated)
    # The run's own calibration of the kept weights finds that epoch's theta and score.
    assert result.calibrated_theta == pytest.approx(result.history[best - 1]["dev_calibrated_theta"])
    assert result.dev_calibrated.f1 == pytest.approx(max(calibrated))
    # and the model predicts at that theta: the pair the selection measured
    meta = json.loads((result.checkpoint / "meta.json").read_text())
    assert meta["theta"] == pytest.approx(result.calibrated_theta)
    assert meta["loss_theta"] == cfg.loss.theta != meta["theta"]


@pytest.mark.usefixtures("ray_session")
def test_a_final_model_trains_on_train_and_dev_for_its_epochs(tmp_path):
    """``train.fit_on=train+dev``: dev is training data, so it neither stops the fit nor
    calibrates theta; test is scored (its vocabularies: tests/test_prepare.py)."""
    from relext_ray.data.prepared import PreparedData, ensure_prepared
    from relext_ray.training.run import run

    held_out = demo_config(tmp_path, "train.epochs=3")
    base = PreparedData.load(ensure_prepared(held_out))

    cfg = demo_config(tmp_path, "train.epochs=3", "train.patience=1", "train.fit_on=train+dev",
                      f"data.prepared_dir={tmp_path / 'prepared-refit'}")
    result = run(cfg)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]  # patience does not apply
    assert result.best_epoch == 3 and result.dev is None and result.calibrated_theta is None
    assert not any(k.startswith(("dev_", "best_dev")) for h in result.history for k in h)
    assert not any(k.startswith(("best_dev", "dev_calibrated")) for k in result.metrics())
    both = len(base.splits["train"]) + len(base.splits["dev"])
    assert result.metrics()["train_instances"] == both
    assert result.test is not None and 0 <= result.test.f1 <= 1
    meta = json.loads((result.checkpoint / "meta.json").read_text())
    assert meta["theta"] == cfg.loss.theta

    # With averaged weights, the final model is the average after the last epoch.
    from relext_ray.training.checkpoint import load_checkpoint
    states = []
    averaged = run(cfg.model_copy(update={"train": cfg.train.model_copy(update={
        "weight_average": 0.9, "checkpoint_dir": tmp_path / "refit-averaged"})}),
        on_state=lambda m, s: states.append(copy.deepcopy(s)))
    saved = load_checkpoint(averaged.checkpoint).model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in states[-1].average["shadow"].items())
    assert not all(torch.equal(saved[k], v) for k, v in states[-1].model.items())

    # Its default folder is its own; a folder prepared for train alone is refused by name.
    assert load_experiment(DEMO, ["train.fit_on=train+dev"]).prepared_dir.name == "demo+dev"
    with pytest.raises(RelextError, match="training_splits"):
        ensure_prepared(cfg.model_copy(update={"data": held_out.data}))


def test_train_and_dev_together_is_refused_where_dev_must_select():
    from relext_ray.config import load_search
    from relext_ray.training.cv import cross_validate

    with pytest.raises(RelextError, match="fit_on"):
        load_search(ROOT / "tune_configs" / "demo_search.yaml",
                    ["experiment.train.fit_on=train+dev"])
    with pytest.raises(RelextError, match="fit_on"):
        cross_validate(load_experiment(DEMO, ["train.fit_on=train+dev"]), 5)


@pytest.mark.parametrize(("schedule", "half", "end"), [("constant", 1.0, 1.0),
                                                       ("linear", 0.5, 0.0),
                                                       ("cosine", 0.5, 0.0)])
def test_the_learning_rate_follows_its_schedule_over_the_run(schedule, half, end):
    from relext_ray.config import TrainConfig
    from relext_ray.training.optimizers import make_optimizer, set_learning_rate

    t = TrainConfig(lr=0.01, lr_schedule=schedule, epochs=4)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], t)
    assert set_learning_rate(opt, t, 0.0) == pytest.approx(0.01)
    assert set_learning_rate(opt, t, 0.5) == pytest.approx(0.01 * half)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * half)
    assert set_learning_rate(opt, t, 1.0) == pytest.approx(0.01 * end, abs=1e-12)
    if schedule == "cosine":  # slow at both ends
        assert set_learning_rate(opt, t, 0.1) > 0.01 * 0.9
        assert set_learning_rate(opt, t, 0.9) < 0.01 * 0.1
