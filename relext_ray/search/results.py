"""Ranking a search's results: the table, the best trial, the exported study's trials, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relext_ray.config import SearchConfig
from relext_ray.errors import RelextError
from relext_ray.tracking.trials import REPLAYED
from relext_ray.training.fit import stop_reason


def plots(results: list[dict[str, Any]], importances: dict[str, float], directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(results)), [r["best_dev_f1"] for r in results])
    ax.set_xticks(range(len(results)), [r["trial_id"] for r in results], rotation=60, fontsize=7)
    ax.set_ylabel("best dev F1")
    ax.set_title("dev F1 per trial")
    fig.tight_layout()
    fig.savefig(directory / "dev_f1_per_trial.png", dpi=120)
    plt.close(fig)
    if importances:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = list(importances)
        ax.barh(names, [importances[n] for n in names])
        ax.set_xlabel("importance (fANOVA)")
        fig.tight_layout()
        fig.savefig(directory / "param_importances.png", dpi=120)
        plt.close(fig)


def ranked(grid: Any) -> list[dict[str, Any]]:
    """One row per trial that reported (trial id, best dev F1, epochs, status, config), best
    first; ties go to the smaller trial id."""
    results = []
    for r in grid:
        if r.metrics is None:
            continue
        results.append({
            "trial_id": r.metrics.get("trial_id", "?"),
            "best_dev_f1": float(r.metrics.get("best_dev_f1", 0.0)),
            "epochs": int(r.metrics.get("epoch", 0)),
            "status": "error" if r.error else "ok",
            "config": r.config,
        })
    return sorted(results, key=lambda r: (-r["best_dev_f1"], r["trial_id"]))


def ranked_table(results: list[dict[str, Any]], keys: list[str]) -> str:
    head = ["rank", "trial", "best dev F1", "epochs", "status", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(results, 1):
        vals = [f"{r['config'].get(k):.4g}" if isinstance(r["config"].get(k), float)
                else str(r["config"].get(k)) for k in keys]
        lines.append(f"| {i} | {r['trial_id']} | {100 * r['best_dev_f1']:.2f} | {r['epochs']} | "
                     f"{r['status']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def best_result(grid: Any, metric: str, mode: str) -> Any:
    """The best trial's result; ties go to the smaller trial id, so a resumed search picks the
    same trial as the search it continues (Tune's own order of results can differ)."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [r for r in grid if r.metrics and metric in r.metrics]
    if not scored:
        raise RelextError(f"no trial of the search reported {metric!r}")
    return min(scored, key=lambda r: (-sign * float(r.metrics[metric]), r.metrics["trial_id"]))


def study_trials(grid: Any, s: SearchConfig, epochs: int, patience: int) -> list[dict[str, Any]]:
    """Tune's results as the trials of the exported Optuna study: trials that ran all their
    epochs or stopped early are COMPLETE with their final metric, trials that ASHA stopped are
    PRUNED, failed ones FAIL; intermediate values are the metric per epoch."""
    out = []
    for r in grid:
        last = r.metrics or {}
        history = r.metrics_dataframe
        steps: dict[int, float] = {}
        if history is not None and s.metric in history and "epoch" in history:
            rows = history if REPLAYED not in history else history[history[REPLAYED] != 1]
            steps = {int(e): float(v) for e, v in zip(rows["epoch"], rows[s.metric], strict=True)
                     if e == e and v == v}  # skip NaN (rows without an epoch)
        if r.error is not None or s.metric not in last:
            state = "FAIL"
        elif stop_reason(last, epochs, patience) == "stopped_by_scheduler":
            state = "PRUNED"
        else:
            state = "COMPLETE"
        out.append({"trial_id": last.get("trial_id", r.path), "state": state,
                    "params": {k: r.config[k] for k in s.space if k in (r.config or {})},
                    "value": float(last[s.metric]) if s.metric in last else None,
                    "intermediate": steps})
    return out
