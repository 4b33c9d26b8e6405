"""What a search prints while it runs: one line per trial that ends, and a bar in a terminal.

Tune's own reporter prints every metric of every trial in wide boxes; here a finished trial is
one line (trial, state, epochs, best dev F1, why it ended, the values it tried), so a search of
50 trials reads as 50 lines in a CI log. In a terminal a bar above them counts finished trials
and shows the best dev F1 so far. Runs on the driver, as a Tune callback.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from relext_ray import console
from relext_ray.training.fit import stop_reason

REASONS = {"completed": "all epochs", "early_stopping": "early stop",
           "stopped_by_scheduler": "stopped by ASHA"}


def short(value: Any) -> str:
    """A searched value as a table cell: 4 significant digits for floats."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_line(trial_id: str, state: str, last: dict[str, Any], params: dict[str, Any],
               epochs: int, patience: int, metric: str) -> str:
    """One finished (or failed) trial as a line of the search's output."""
    epoch = int(last.get("epoch", 0))
    best = last.get(metric)
    score = f"{100 * best:6.2f}" if isinstance(best, float) else "     -"
    why = REASONS.get(stop_reason(last, epochs, patience), "") if state == "done" else state
    values = "  ".join(f"{k.rsplit('.', 1)[-1]}={short(v)}" for k, v in params.items())
    return f"trial {trial_id[-8:]}  {state:6}  epoch {epoch:>2}/{epochs}  dev F1 {score}  " \
           f"{why:15}  {values}"


class TrialProgress(Callback):
    """Tune callback: a line per trial that ends or fails, a bar over trials in a terminal.

    Args:
        num_samples: The trials the search runs (the bar's total).
        keys: The searched values, in the order to print them.
        epochs: Epochs per trial (ASHA's ``max_t``).
        patience: Early-stopping patience (to tell why a trial ended).
        metric: The result key that ranks trials.
    """

    def __init__(self, num_samples: int, keys: list[str], epochs: int, patience: int,
                 metric: str) -> None:
        self.num_samples, self.keys, self.metric = num_samples, keys, metric
        self.epochs, self.patience = epochs, patience
        self.best: float | None = None
        self.ended = 0
        self._bar: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune saves its callbacks with the search; a bar belongs to one terminal session.
        return {**self.__dict__, "_bar": None}

    def _write(self, line: str) -> None:
        if self._bar is None:
            self._bar = console.progress_bar(self.num_samples, "trials", unit="trial",
                                             initial=self.ended)
        if self._bar.disable:
            print(line, flush=True)
        else:
            self._bar.write(line)

    def _params(self, trial: Any) -> dict[str, Any]:
        config = trial.config or {}
        return {k: config[k] for k in self.keys if k in config}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        best = last.get(self.metric)
        if isinstance(best, float) and (self.best is None or best > self.best):
            self.best = best
        self.ended += 1
        self._write(trial_line(trial.trial_id, "done", last, self._params(trial), self.epochs,
                               self.patience, self.metric))
        self._bar.update(1)
        if self.best is not None:
            self._bar.set_postfix(best=f"{100 * self.best:.2f}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial_line(trial.trial_id, "error", trial.last_result or {},
                               self._params(trial), self.epochs, self.patience, self.metric))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._bar is not None:
            self._bar.close()
