"""What reaches the terminal: library loggers quiet unless asked, progress only in a terminal,
the search's one line per trial, and the demo's whole output."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import logging, warnings
from relext_ray import console
console.configure({verbose})
print(logging.getLevelName(logging.getLogger("ray").level),
      logging.getLevelName(logging.getLogger("mlflow").level), console.progress_enabled())
"""


def _probe(verbose: bool = False, **env: str) -> list[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RELEXT_")}
    res = subprocess.run([sys.executable, "-c", PROBE.format(verbose=verbose)], env={**full, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return res.stdout.split()


def test_libraries_are_quiet_unless_asked():
    assert _probe() == ["ERROR", "ERROR", "False"]  # not a terminal: no bars either
    assert _probe(verbose=True) == ["INFO", "INFO", "False"]
    assert _probe(RELEXT_LOG_LEVEL="warning") == ["WARNING", "WARNING", "False"]
    assert _probe(RELEXT_LOG_LEVEL="nonsense") == ["ERROR", "ERROR", "False"]
    assert _probe(RELEXT_PROGRESS="1")[2] == "True"


def test_a_disabled_bar_takes_the_same_calls(monkeypatch):
    from relext_ray import console

    monkeypatch.setenv(console.PROGRESS_ENV, "0")
    bar = console.progress_bar(10, "epoch 1/1", unit="pair")
    bar.update(4)
    bar.set_postfix(loss="0.5")
    bar.close()
    assert bar.disable


def _trial(trial_id: str, epoch: int, best: float, **config) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config=config,
                           last_result={"epoch": epoch, "best_epoch": epoch, "best_dev_f1": best})


def test_one_line_per_finished_trial(capsys, monkeypatch):
    from relext_ray import console
    from relext_ray.search.progress import TrialProgress

    monkeypatch.setenv(console.PROGRESS_ENV, "0")
    cb = TrialProgress(3, ["loss.m_pos", "model.use_tag"], epochs=8, patience=4,
                       metric="best_dev_f1")
    cb.on_trial_complete(1, [], _trial("00001a2b3c4d", 2, 0.4012, **{"loss.m_pos": 2.123456,
                                                                     "model.use_tag": True}))
    cb.on_trial_complete(2, [], _trial("00005e6f7a8b", 8, 0.9031, **{"loss.m_pos": 4.0,
                                                                     "model.use_tag": False}))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.search(r"trial 1a2b3c4d\s+done\s+epoch\s+2/8\s+dev F1\s+40\.12\s+stopped by ASHA"
                     r"\s+m_pos=2\.123\s+use_tag=True$", lines[0]), lines[0]
    assert "epoch  8/8  dev F1  90.31  all epochs" in lines[1]
    assert cb.best == 0.9031 and cb.ended == 2
    # Tune saves its callbacks with the search: the bar is not part of the saved state.
    again = pickle.loads(pickle.dumps(cb))
    assert again.ended == 2 and again._bar is None


NATIVE_NOTICE_SCRIPT = r"""
import os, sys
from relext_ray import console
notice = (b"[2026-12-01 15:48:08,670 E 24165 24165] core_worker.cc:2465: Actor with class "
          b"name: 'MapWorker(MapBatches(UnitScorer))' and ID: 'd5' has constructor arguments "
          b"in the object store and max_restarts > 0. If the arguments ...\n")
with console.native_lines_dropped():
    os.write(2, b"before\n" + notice[:40])  # a native line may arrive in pieces
    os.write(2, notice[40:] + b"epoch 1/2:  40%|####  | 4/10\r")  # a bar: no newline
    print("python's own stderr", file=sys.stderr)
os.write(2, b"after\n")
"""


def test_a_native_notice_is_dropped_and_everything_else_passes():
    """In a fresh process: descriptor 2 there is only what the script writes (the test
    process may hold a live Ray core worker, whose own native lines could land in between)."""
    env = {k: v for k, v in os.environ.items() if k != "RELEXT_LOG_LEVEL"}
    res = subprocess.run([sys.executable, "-c", NATIVE_NOTICE_SCRIPT], capture_output=True,
                         env=env, timeout=120, check=True)
    assert res.stderr == (b"before\nepoch 1/2:  40%|####  | 4/10\rpython's own stderr\n"
                          b"after\n")


# The demo's whole output may hold no log line or warning from the libraries.
NOISE = re.compile(r"\b(WARNING|Warning|INFO|DEBUG|UserWarning|FutureWarning|"
                   r"DeprecationWarning)\b|^\[\d{4}-\d\d-\d\d .* [EWI] \d+ \d+\]")


@pytest.mark.slow
def test_the_demo_tells_its_story_without_library_noise(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    env.pop("RELEXT_LOG_LEVEL", None)
    res = subprocess.run([sys.executable, "-m", "relext_ray.cli.demo", "--out",
                          str(tmp_path / "demo")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text[-4000:]
    noise = [line for line in text.splitlines() if NOISE.search(line)]
    assert not noise, "\n".join(noise)
    assert len(text.splitlines()) < 120, text
    for stage in ("== 1. prepare", "== 2. train", "== 3. search", "== 4. predict",
                  "== 5. raw text", "== See it all in the MLflow UI", "== Next, on a real corpus"):
        assert stage in text
    m = re.search(r"Best\s+dev\s+F1\s+([\d.]+)\s+\(trial\s+\w+\)\s+against\s+([\d.]+)\s+for\s+the"
                  r"\s+worst", text)
    assert m and float(m.group(1)) > float(m.group(2)), text
    f1 = re.search(r"against the gold relations: P [\d.]+ R [\d.]+ F1 ([\d.]+)", text)
    assert f1 and 50 < float(f1.group(1)) < 100, "the sample corpus should be learnable, not trivial"
    found = re.search(r"The tagger found (\d+) mentions in 3 sentences", text)
    assert found and int(found.group(1)) >= 3, text  # raw text: the tagger finds mentions
