"""``relext-predict`` (``python -m relext_ray.predict``): batch prediction on Ray Data."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

from relext_ray import console
from relext_ray.errors import cli_exit
from relext_ray.prediction.job import predict
from relext_ray.registry import ENTITY_SOURCES, INPUT_FORMATS, OUTPUT_FORMATS
from relext_ray.tracking.runs import predict_tracked, tracking_uri


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"model: {s['model']}",
        f"sentences read {s['sentences_read']:,} = predicted {s['sentences_predicted']:,} + "
        f"rejected {s['sentences_rejected']:,}",
        f"pairs scored {s['pairs_scored']:,}, removed by the type filter {s['pairs_filtered']:,}",
        "relations predicted: " + ", ".join(f"{k} {v:,}"
                                            for k, v in s["relations_predicted"].items()),
        f"{s['seconds']:.1f} s, {s['pairs_per_second']:,.0f} pairs/s with {s['replicas']} "
        f"replica(s) ({s['scoring_pairs_per_second']:,.0f} pairs/s from the first unit's start "
        "to the last unit's end)",
        "units per node: " + ", ".join(f"{k} {v}" for k, v in s["units_per_node"].items()),
        f"largest replica peak memory: {s['replica_peak_rss_mb']:,.0f} MiB",
    ]
    if s.get("sentences_too_long"):
        lines.append(f"{s['sentences_too_long']:,} records over the limit of {s['max_tokens']:,} "
                     "tokens rejected (--max-tokens)")
    if s.get("duplicate_ids"):
        lines.append(f"{s['duplicate_ids']:,} sentence ids occur more than once: "
                     f"{s['records_renamed']:,} later records renamed <id>#2, #3, ... "
                     "(summary.json lists examples)")
    if s.get("sentences_failed"):
        lines.append(f"{s['sentences_failed']:,} records could not be scored (their replica died, "
                     "or scoring raised): rejected, the rest of their units scored")
    if s.get("annotations_rejected") or s.get("documents_rejected"):
        lines.append(f"brat: {s['documents_rejected']} documents and "
                     f"{s['annotations_rejected']} annotations rejected")
    if s["metrics"]:
        m = s["metrics"]
        lines.append(f"against the gold relations: P {100 * m['precision']:.2f} "
                     f"R {100 * m['recall']:.2f} F1 {100 * m['f1']:.2f}")
    if s.get("sentences_tagged"):
        lines.append(f"the tagger found {s['mentions_tagged']:,} mentions in "
                     f"{s['sentences_tagged']:,} sentences")
    if s.get("end_to_end"):
        e = s["end_to_end"]
        how = "directed" if s.get("directed") else "direction not scored (an unordered model)"
        lines.append(f"end to end (the tagger's mentions against the gold ones): entities P "
                     f"{100 * e['entity_precision']:.2f} R {100 * e['entity_recall']:.2f} F1 "
                     f"{100 * e['entity_f1']:.2f}; relations, strict, {how}: P "
                     f"{100 * e['end_to_end_precision']:.2f} R "
                     f"{100 * e['end_to_end_recall']:.2f} F1 {100 * e['end_to_end_f1']:.2f}")
    lines.append(f"output: {s['output']} ({s['files']:,} part files), summary.json, "
                 "rejects.jsonl")
    return "\n".join(lines)


# The job's own defaults (``prediction.job.predict``), so the command never restates them.
DEFAULTS = {k: v.default for k, v in inspect.signature(predict).parameters.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relext_ray.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="file, directory or glob of input records")
    p.add_argument("--model", default=None,
                   help="checkpoint directory, runs:/<run_id>/model, models:/<name>/<version> or "
                        "models:/<name>@<alias> (default: the registered model with the alias "
                        "@champion that a search set last)")
    p.add_argument("--output", type=Path, default=None,
                   help="directory for the predictions (default: a new folder under "
                        "predictions/ named after the input)")
    p.add_argument("--format", choices=INPUT_FORMATS, default=None,
                   help="input format (default: from each file's suffix)")
    p.add_argument("--output-format", choices=OUTPUT_FORMATS, default=OUTPUT_FORMATS[0])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="pairs per model batch")
    p.add_argument("--max-tokens", type=int, default=None, help=(
        "records of more tokens go to rejects.jsonl with the reason (0: no limit; default: "
        "twice the longest sentence the model was trained on)"))
    p.add_argument("--chunk-size", type=int, default=DEFAULTS["chunk_size"],
                   help="records per unit of work and output file (brat: one document; default: "
                   "eight units per replica, 50 to 1,000 records each)")
    p.add_argument("--concurrency", type=int, default=DEFAULTS["concurrency"], help="model replicas")
    p.add_argument("--cpus-per-replica", type=float, default=DEFAULTS["cpus_per_replica"])
    p.add_argument("--gpus-per-replica", type=float, default=DEFAULTS["gpus_per_replica"],
                   help="fractions such as 0.25 let replicas share a GPU")
    p.add_argument("--theta", type=float, default=None,
                   help="decision threshold (default: the model's own)")
    p.add_argument("--all-scores", action="store_true", help="add every class's score")
    p.add_argument("--entities", choices=ENTITY_SOURCES, default=ENTITY_SOURCES[0], help=(
        "given: the records' mentions (raw text is tagged); tagger: tag every record and "
        "score the tagger's mentions and the relations found between them against the "
        "records' gold ones (end-to-end)"))
    p.add_argument("--overwrite", action="store_true", help="replace earlier predictions")
    p.add_argument("--no-tracking", action="store_true", help="do not log an MLflow run")
    p.add_argument("--experiment", default="relext-predict", help="MLflow experiment")
    console.add_options(p)
    args = p.parse_args(argv)
    console.from_options(args)

    def body() -> None:
        summary = predict_tracked(
            args.input, args.model, args.output, fmt=args.format, out_format=args.output_format,
            batch_size=args.batch_size, chunk_size=args.chunk_size, concurrency=args.concurrency,
            cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
            theta=args.theta, all_scores=args.all_scores, overwrite=args.overwrite,
            progress=console.progress_enabled(), track=not args.no_tracking,
            experiment=args.experiment, max_tokens=args.max_tokens, entities=args.entities)
        print(format_summary(summary))
        if summary.get("mlflow_run_id"):
            print(f"MLflow run {summary['mlflow_run_id']} in {tracking_uri()}")

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
