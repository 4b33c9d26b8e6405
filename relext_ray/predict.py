"""Batch prediction on Ray Data: every entity pair of a corpus of any size, streamed to disk.

    python -m relext_ray.predict --input corpus/ --model models:/relext-conll04/1 --output preds/

``--input``: a file, directory or glob of canonical JSONL, CoNLL04 JSON or brat (.txt + .ann).
``--model``: a checkpoint directory, ``runs:/<run_id>/model`` or ``models:/<name>/<version>``.
Replicas (Ray Data's actor pool) load the model once, then read, featurise and score units of
input and write each unit's pairs to ``OUTPUT/part-<unit>.parquet`` (or ``.jsonl``); the driver
only sums their accounting into ``OUTPUT/summary.json`` and writes bad records to
``OUTPUT/rejects.jsonl``. On a multi-node cluster ``OUTPUT`` must be on storage every node
shares (NFS or similar), as for any Ray Data write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from relext_ray.errors import RelextError, cli_exit
from relext_ray.prediction import (
    OUTPUT_FORMATS,
    Accounting,
    UnitScorer,
    pack_directory,
    plan_input,
)

OUTPUT_FILES = ("summary.json", "rejects.jsonl")


def resolve_model(uri: str | Path) -> Path:
    """A local checkpoint directory for a path, ``runs:/`` or ``models:/`` URI."""
    text = str(uri)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        import mlflow

        from relext_ray.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())
        try:
            # Loading resolves every URI kind (run artifacts, logged and registered models).
            local = Path(mlflow.pyfunc.load_model(text).unwrap_python_model().checkpoint_dir)
        except Exception as exc:
            raise RelextError(f"cannot load model {text} from {tracking_uri()}: {exc}") from exc
    else:
        local = Path(text)
        if not local.exists():
            raise RelextError(f"--model not found: {local}")
    for candidate in (local, local / "artifacts" / "checkpoint", local / "checkpoint"):
        if (candidate / "model.pt").exists():
            return candidate
    raise RelextError(f"{text} is not a relext_ray model: no model.pt in {local} or its "
                      "artifacts/checkpoint")


def _leftovers(out: Path) -> list[Path]:
    """Temporary files of attempts that died before renaming their part."""
    return list(out.glob(".part-*.tmp"))


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        old = [p for p in out.iterdir() if p.name.startswith("part-") or p.name in OUTPUT_FILES]
        old += _leftovers(out)
        if not overwrite:
            raise RelextError(f"--output {out} already holds files: pass --overwrite to replace "
                              "earlier predictions, or choose another directory")
        for p in old:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def predict(input_spec: str, model: str, output: str | Path, *, fmt: str | None = None,
            out_format: str = "parquet", batch_size: int = 512, chunk_size: int = 1000,
            concurrency: int = 1, cpus_per_replica: float = 1.0, gpus_per_replica: float = 0.0,
            theta: float | None = None, all_scores: bool = False, overwrite: bool = False,
            progress: bool = True,
            track: bool = True, experiment: str = "relext-predict") -> dict[str, Any]:
    """Run batch prediction; return the summary (also written to ``OUTPUT/summary.json``)."""
    import ray

    from relext_ray.cluster import init_ray

    if concurrency < 1 or batch_size < 1:
        raise RelextError("--concurrency and --batch-size must be at least 1")
    if out_format not in OUTPUT_FORMATS:
        raise RelextError(f"--output-format must be parquet or jsonl, got {out_format!r}")
    t0 = time.perf_counter()
    checkpoint_dir = resolve_model(model)
    # The driver needs only labels and threshold; the replicas load the weights.
    meta = json.loads((checkpoint_dir / "meta.json").read_text(encoding="utf-8"))
    labels = list(meta["labels"])
    used_theta = float(meta["theta"]) if theta is None else float(theta)
    units = plan_input(input_spec, fmt, chunk_size)
    out = Path(output).resolve()
    _prepare_output(out, overwrite)

    init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    # Ray Data restarts a replica that died (process killed, node lost) and reruns its unit;
    # the rerun replaces the unit's part file, and the unit's accounting reaches the driver
    # once, from the attempt that finished. A unit that fails in our code fails the job
    # instead of being skipped: nothing is dropped silently.
    ctx.max_errored_blocks = 0
    ds = ray.data.from_items([{"index": i, **asdict(u)} for i, u in enumerate(units)],
                             override_num_blocks=len(units))
    accounted = ds.map_batches(
        UnitScorer, batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=cpus_per_replica, num_gpus=gpus_per_replica or None,
        fn_constructor_kwargs={"checkpoint": [ray.put(pack_directory(checkpoint_dir))],
                               "output": str(out), "units": len(units),
                               "out_format": out_format, "theta": theta,
                               "all_scores": all_scores, "batch_size": batch_size},
    )
    account = Accounting(labels)
    with open(out / "rejects.jsonl", "w", encoding="utf-8") as rejects:
        for batch in accounted.iter_batches(batch_size=None, batch_format="pyarrow"):
            for kind, payload in zip(batch.column("kind").to_pylist(),
                                     batch.column("payload").to_pylist(), strict=True):
                if kind == "counts":
                    account.add(json.loads(payload))
                else:
                    rejects.write(payload + "\n")
    for tmp in _leftovers(out):
        tmp.unlink(missing_ok=True)
    account.check(out, out_format)
    seconds = time.perf_counter() - t0
    summary = {
        "model": str(model), "input": str(input_spec), "output": str(out),
        "output_format": out_format, "theta": used_theta, "replicas": concurrency,
        "cpus_per_replica": cpus_per_replica, "gpus_per_replica": gpus_per_replica,
        **account.summary(),
        "seconds": round(seconds, 3),
        "pairs_per_second": round(account.rows_written / seconds, 1) if seconds else 0.0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    if track:
        summary["mlflow_run_id"] = _track(summary, out, experiment)
    return summary


def _track(summary: dict[str, Any], out: Path, experiment: str) -> str:
    import mlflow

    from relext_ray.tracking import experiment_id

    exp = experiment_id(experiment)
    with mlflow.start_run(experiment_id=exp, run_name=f"predict-{Path(summary['input']).name}",
                          tags={"job": "predict"}) as run:
        mlflow.log_params({k: summary[k] for k in (
            "model", "input", "output", "output_format", "theta", "replicas",
            "cpus_per_replica", "gpus_per_replica")})
        metrics = {k: float(v) for k, v in summary.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)
                   and k not in ("theta", "replicas", "cpus_per_replica", "gpus_per_replica")}
        metrics.update({f"predicted_{k}": float(v)
                        for k, v in summary["relations_predicted"].items()})
        if summary["metrics"]:
            metrics.update({f"gold_{k}": float(summary["metrics"][k])
                            for k in ("precision", "recall", "f1")})
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(out / "summary.json"))
        return run.info.run_id


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"sentences read {s['sentences_read']:,} = predicted {s['sentences_predicted']:,} + "
        f"rejected {s['sentences_rejected']:,}",
        f"pairs scored {s['pairs_scored']:,}, removed by the type filter {s['pairs_filtered']:,}",
        "relations predicted: " + ", ".join(f"{k} {v:,}"
                                            for k, v in s["relations_predicted"].items()),
        f"{s['seconds']:.1f} s, {s['pairs_per_second']:,.0f} pairs/s with {s['replicas']} "
        f"replica(s) ({s['scoring_pairs_per_second']:,.0f} pairs/s from the first unit's start "
        "to the last unit's end)",
        "units per node: " + ", ".join(f"{k} {v}" for k, v in s["units_per_node"].items()),
    ]
    if s.get("annotations_rejected") or s.get("documents_rejected"):
        lines.append(f"brat: {s['documents_rejected']} documents and "
                     f"{s['annotations_rejected']} annotations rejected")
    if s["metrics"]:
        m = s["metrics"]
        lines.append(f"against the gold relations: P {100 * m['precision']:.2f} "
                     f"R {100 * m['recall']:.2f} F1 {100 * m['f1']:.2f}")
    lines.append(f"output: {s['output']} ({s['files']:,} part files), summary.json, "
                 "rejects.jsonl")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="file, directory or glob of input records")
    p.add_argument("--model", required=True,
                   help="checkpoint directory, runs:/<run_id>/model or models:/<name>/<version>")
    p.add_argument("--output", required=True, type=Path, help="directory for the predictions")
    p.add_argument("--format", choices=("jsonl", "conll04", "brat"), default=None,
                   help="input format (default: from each file's suffix)")
    p.add_argument("--output-format", choices=("parquet", "jsonl"), default="parquet")
    p.add_argument("--batch-size", type=int, default=512, help="pairs per model batch")
    p.add_argument("--chunk-size", type=int, default=1000,
                   help="records per unit of work and output file (brat: one document)")
    p.add_argument("--concurrency", type=int, default=1, help="model replicas")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument("--gpus-per-replica", type=float, default=0.0,
                   help="fractions such as 0.25 let replicas share a GPU")
    p.add_argument("--theta", type=float, default=None,
                   help="decision threshold (default: the model's own)")
    p.add_argument("--all-scores", action="store_true", help="add every class's score")
    p.add_argument("--overwrite", action="store_true", help="replace earlier predictions")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-tracking", action="store_true", help="do not log an MLflow run")
    p.add_argument("--experiment", default="relext-predict", help="MLflow experiment")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    def body() -> None:
        summary = predict(
            args.input, args.model, args.output, fmt=args.format, out_format=args.output_format,
            batch_size=args.batch_size, chunk_size=args.chunk_size, concurrency=args.concurrency,
            cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
            theta=args.theta, all_scores=args.all_scores, overwrite=args.overwrite,
            progress=not args.no_progress, track=not args.no_tracking,
            experiment=args.experiment)
        print(format_summary(summary))
        if summary.get("mlflow_run_id"):
            from relext_ray.tracking import tracking_uri

            print(f"MLflow run {summary['mlflow_run_id']} in {tracking_uri()}")

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
