"""A training run's progress on disk, so that a stopped run can be continued where it was.

A full-data run takes hours; a run killed at epoch 7 of 8 (out of time, preempted, a crash)
should not start again from nothing. After each epoch the relation fit's and the entity
tagger's resumable states (:class:`FitState`: weights, optimizer, best weights, random
generators) are written beside the checkpoint, in ``<checkpoint_dir>.resume/``; ``relext-train
--resume`` reads them back and the run ends exactly as if it had never stopped. The folder also
records the config it belongs to (a state is never continued under another config) and the
MLflow run, which the resumed run continues. It is removed once the run has finished.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relext_ray.config import ExperimentConfig, flatten
from relext_ray.errors import RelextError
from relext_ray.files import replace_atomically, write_text_atomically
from relext_ray.training.fit import FitState, StateCallback
from relext_ray.training.metrics import Scores
from relext_ray.training.tagging import EntityScores

RUN_FILE = "run.json"
PARTS = ("relation", "tagger")
NOTHING_YET = "no epoch finished yet"
# Settings that change where or how fast a run trains, not what it learns.
NOT_THE_RUN = ("train.num_threads", "train.device", "train.checkpoint_dir", "data.prepared_dir",
               "data.data_dir")


def identity(cfg: ExperimentConfig) -> dict[str, Any]:
    """The settings that decide a run's result: its config without tracking and placement."""
    tree = flatten(json.loads(cfg.model_dump_json()))
    return {k: v for k, v in tree.items()
            if not k.startswith("tracking.") and k not in NOT_THE_RUN}


@dataclass(frozen=True)
class RunProgress:
    """The ``.resume`` folder of one run's checkpoint directory.

    Args:
        path: The folder (``<checkpoint_dir>.resume``).
    """

    path: Path

    @classmethod
    def of(cls, cfg: ExperimentConfig) -> RunProgress:
        d = cfg.checkpoint_dir
        return cls(d.with_name(d.name + ".resume"))

    def start(self, cfg: ExperimentConfig, resume: bool) -> bool:
        """Begin a run: continue the saved one if ``resume`` and there is one (its config must
        match), else start afresh, removing any older progress (with a note on stderr when
        that progress held a finished epoch). Returns whether it resumes."""
        run_file = self.path / RUN_FILE
        if resume and run_file.exists():
            saved = json.loads(run_file.read_text(encoding="utf-8"))["config"]
            now = identity(cfg)
            changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
            if changed:
                shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:5])
                raise RelextError(
                    f"cannot resume the run saved in {self.path}: its config differs in "
                    f"{len(changed)} setting(s) ({shown}); run without --resume to start again")
            return True
        if run_file.exists() and (done := self.describe()) != NOTHING_YET:
            print(f"note: starting afresh; the progress of a stopped run in {self.path} "
                  f"({done}) is discarded (--resume would continue it)", file=sys.stderr)
        self.clear()
        self.path.mkdir(parents=True)
        self._write_run({"config": identity(cfg), "mlflow_run_id": None})
        return False

    def state(self, part: str) -> FitState | None:
        """The saved state of the ``relation`` or ``tagger`` fit, or None if it has not begun."""
        f = self.path / f"{part}.pt"
        if not f.exists():
            return None
        return FitState.load(f, EntityScores if part == "tagger" else Scores)

    def saver(self, part: str) -> StateCallback:
        """An ``on_state`` callback that keeps the newest state of ``part``, replaced atomically
        (a kill while writing leaves the previous epoch's state)."""
        if part not in PARTS:
            raise ValueError(part)

        def keep(metrics: dict[str, float], state: FitState) -> None:
            replace_atomically(self.path / f"{part}.pt", state.save)

        return keep

    def describe(self) -> str:
        """What the saved progress holds, e.g. ``relation after epoch 7``."""
        done = [f"{part} after epoch {s.epoch}" for part in PARTS
                if (s := self.state(part)) is not None]
        return ", ".join(done) or NOTHING_YET

    @property
    def mlflow_run_id(self) -> str | None:
        f = self.path / RUN_FILE
        return json.loads(f.read_text(encoding="utf-8")).get("mlflow_run_id") if f.exists() else None

    def set_mlflow_run_id(self, run_id: str) -> None:
        run = json.loads((self.path / RUN_FILE).read_text(encoding="utf-8"))
        self._write_run({**run, "mlflow_run_id": run_id})

    def clear(self) -> None:
        """Forget the progress (the run has finished, or starts again)."""
        if self.path.exists():
            shutil.rmtree(self.path)

    def _write_run(self, run: dict[str, Any]) -> None:
        write_text_atomically(self.path / RUN_FILE,
                              json.dumps(run, indent=1, sort_keys=True) + "\n")
