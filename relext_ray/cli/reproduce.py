"""The paper's study on CoNLL04 and Chinese Literature, one command, with a generated report.

    python jobs/reproduce.py --budget quick        # about 90 minutes on a 2-core CPU machine
    python jobs/reproduce.py --budget medium       # the paper's model, all data: about 2.5 h
    ray job submit --address http://<head>:8265 --working-dir . -- \\
        python jobs/reproduce.py --budget full --gpus-per-trial 0.25

Every run (system x corpus x seed, Figure 3's ratios) is a Ray Tune trial: the study spreads
over the cluster, checkpoints every epoch and resumes after a failure (``--resume``). All runs
are MLflow child runs of one parent run (experiment ``relext-reproduce``). The report,
``docs/RESULTS.md`` with ``docs/fig3.png``, is written from the results at the end; ``--report
-only`` rebuilds it from a finished study's ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relext_ray import console
from relext_ray.errors import RelextError, cli_exit
from relext_ray.reproduce.report import plot_fig3, render
from relext_ray.reproduce.study import BUDGETS, CORPORA, FIG3_RATIOS, SYSTEMS, TUNED, plan

ROOT = Path(__file__).resolve().parents[2]


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def _tuned(specs: list[str]) -> dict[str, list[str]]:
    """``CORPUS=RUN_ID``: the ``best.*`` params a search logged on its parent run."""
    out: dict[str, list[str]] = {}
    if not specs:
        return out
    import mlflow

    from relext_ray.tracking.runs import tracking_uri

    client = mlflow.MlflowClient(tracking_uri())
    for spec in specs:
        corpus, _, run_id = spec.partition("=")
        if corpus not in CORPORA or not run_id:
            raise RelextError(f"--tuned wants CORPUS=RUN_ID with CORPUS one of "
                              f"{', '.join(CORPORA)}, got {spec!r}")
        params = client.get_run(run_id).data.params
        best = {k[5:]: v for k, v in params.items() if k.startswith("best.")}
        if not best:
            raise RelextError(f"MLflow run {run_id} has no best.* params: give the parent run "
                              "of a search (jobs/tune.py)")
        out[corpus] = [f"{k}={v}" for k, v in sorted(best.items())]
    return out


def write_report(result: dict[str, Any], facts: dict[str, Any], report: Path,
                 figure: Path) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    has_fig = plot_fig3(result["rows"], figure)
    rel = os.path.relpath(figure, report.parent) if has_fig else None
    report.write_text(render(result["rows"], facts, rel), encoding="utf-8")


def include(result: dict[str, Any], facts: dict[str, Any], others: list[Path]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Add the runs of other studies (say a tuned row made after a search) to a report's rows;
    a run key the main study has stays the main study's."""
    rows = list(result["rows"])
    keys = {r["key"] for r in rows}
    facts = dict(facts)
    for path in others:
        if not path.exists():
            raise RelextError(f"--include: no results.json at {path}: run that study first")
        other = json.loads(path.read_text(encoding="utf-8"))
        new = [r for r in other["result"]["rows"] if r["key"] not in keys]
        rows += new
        keys |= {r["key"] for r in new}
        f = other["facts"]
        facts[f"included: {path.parent.name}"] = (
            f"{len(new)} runs ({', '.join(sorted({r['system'] for r in new})) or 'none'}) from "
            f"`{f.get('command', '?')}` at commit {f.get('commit', '?')}, {f.get('MLflow', '')}")
        for system in TUNED:
            if f.get(system):
                facts[system] = {**facts.get(system, {}), **f[system]}
    return {**result, "rows": sorted(rows, key=lambda r: r["key"])}, facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python jobs/reproduce.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    p.add_argument("--corpora", default="conll04,chinese_literature",
                   help=f"comma-separated, from {', '.join(CORPORA)}")
    p.add_argument("--systems", default=None,
                   help=f"only these systems (comma-separated, from {', '.join(SYSTEMS)})")
    p.add_argument("--seeds", default=None, help="comma-separated (default: the budget's)")
    p.add_argument("--epochs", type=int, default=None, help="cap (default: the budget's)")
    p.add_argument("--ratios", default=None, help="Figure 3's neg:pos ratios, comma-separated")
    p.add_argument("--cv", type=int, default=None,
                   help="k-fold cross-validation (the paper's protocol) instead of the splits")
    p.add_argument("--tuned", action="append", default=[], metavar="CORPUS=RUN_ID",
                   help="add a +MTL+Tag row with a search's best values (its parent run id)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. model.word_dim=50")
    p.add_argument("--name", default=None, help="study name (default: reproduce-<budget>)")
    p.add_argument("--storage", type=Path, default=Path("out/reproduce"))
    p.add_argument("--prepared-root", type=Path, default=Path("out/prepared/reproduce"))
    p.add_argument("--report", type=Path, default=ROOT / "docs" / "RESULTS.md")
    p.add_argument("--figure", type=Path, default=ROOT / "docs" / "fig3.png")
    p.add_argument("--include", action="append", default=[], metavar="STUDY",
                   help="also report the runs of this other study in --storage (repeatable)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the report from the study's results.json")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--max-failures", type=int, default=2)
    p.add_argument("--experiment", default="relext-reproduce")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    console.add_options(p)
    args = p.parse_args(argv)
    console.from_options(args)

    def body() -> None:
        budget = BUDGETS[args.budget]
        if args.seeds:
            budget = budget.with_seeds(tuple(int(s) for s in args.seeds.split(",")))
        if args.epochs:
            budget = budget.with_epochs(args.epochs)
        budget = replace(budget, overrides=budget.overrides + tuple(args.set))
        name = args.name or f"reproduce-{budget.name}"
        corpora = [c for c in args.corpora.split(",") if c]
        results_file = (args.storage / name).resolve() / "results.json"
        others = [(args.storage / o).resolve() / "results.json" for o in args.include]
        if args.report_only:
            saved = json.loads(results_file.read_text(encoding="utf-8"))
            write_report(*include(saved["result"], saved["facts"], others), args.report,
                         args.figure)
            print(f"report: {args.report}")
            return
        ratios = tuple(float(r) for r in args.ratios.split(",")) if args.ratios \
            else FIG3_RATIOS
        tuned = _tuned(args.tuned)
        runs = plan(budget, corpora, args.systems.split(",") if args.systems else None,
                    ratios, tuned)
        print(f"{len(runs)} runs: {budget.name} budget")
        for corpus, words in budget.describe(corpora).items():
            print(f"  {corpus}: {words}")
        from relext_ray.reproduce.runner import run_study

        t0 = time.perf_counter()
        commit = _commit()  # the code the runs ran, not what the checkout holds at the end
        result = run_study(runs, budget, args.storage, name, cv=args.cv, resume=args.resume,
                           overwrite=args.overwrite, cpu=args.cpus_per_trial,
                           gpu=args.gpus_per_trial, max_concurrent=args.max_concurrent,
                           max_failures=args.max_failures, experiment=args.experiment,
                           prepared_root=args.prepared_root)
        facts: dict[str, Any] = {
            "command": "python jobs/reproduce.py " + " ".join(argv or sys.argv[1:]),
            "commit": commit,
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "budget": budget.name,
            "evaluation": f"{args.cv}-fold cross-validation" if args.cv
            else "official train/dev/test splits",
            "data": "; ".join(f"{c}: {words}" for c, words in budget.describe(corpora).items()),
            "overrides for every run": ", ".join(budget.overrides) or "none",
            "runs": f"{len(result['rows'])} finished of {len(runs)}",
            "wall time": f"{(time.perf_counter() - t0) / 60:.1f} min" + (
                f" (the last of {len(result['parts'])} parts; the first began "
                f"{result['parts'][0]})" if len(result.get("parts", [])) > 1 else ""),
            "MLflow": f"parent run {result['parent_run_id']} in experiment "
                      f"{args.experiment} at {result['tracking_uri']}",
        }
        # per tuned system, where each corpus's values came from: a config, or --tuned's search
        planned = {(r.corpus, r.system) for r in runs}
        for system in TUNED:
            sources = {c: f"tune_configs/{configs[system]}" for c, configs in budget.tuned.items()
                       if system in configs and (c, system) in planned}
            if system == "tuned":
                sources.update({c: f"search values {', '.join(v)}" for c, v in tuned.items()})
            if sources:
                facts[system] = sources
        if result["failed"]:
            facts["failed runs"] = ", ".join(result["failed"])
        results_file.write_text(json.dumps({"result": result, "facts": facts}, indent=2),
                                encoding="utf-8")
        write_report(*include(result, facts, others), args.report, args.figure)
        import mlflow

        with mlflow.start_run(run_id=result["parent_run_id"]):
            mlflow.log_artifact(str(args.report))
            if args.figure.exists():
                mlflow.log_artifact(str(args.figure))
            mlflow.log_artifact(str(results_file))
        print(f"report: {args.report} (figure {args.figure}); MLflow parent run "
              f"{result['parent_run_id']}")
        if result["failed"]:
            raise RelextError(f"{len(result['failed'])} runs failed: {facts['failed runs']}")

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
