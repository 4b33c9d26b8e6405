"""``relext-demo``: the main path on the bundled sample corpus, all local.

1. prepare the sample corpus with Ray Data (local Ray) and print its statistics;
2. train the multi-task CNN (+Tag +MTL) on it, tracked in a local MLflow store (``mlruns.db``);
3. run the smoke hyper-parameter search (Ray Tune + Optuna + ASHA), tracked the same way;
4. predict with the best model over the sample test split (batch prediction on Ray Data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relext_ray.config import load_experiment
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import cli_exit

CONFIGS = Path(__file__).resolve().parents[2] / "tune_configs"
CONFIG = CONFIGS / "demo.yaml"


def demo(out: Path) -> None:
    from relext_ray.data.pipeline import prepare
    from relext_ray.data.statistics import format_stats
    from relext_ray.tracking.runs import run_tracked, tracking_uri
    from relext_ray.training.run import format_result

    cfg = load_experiment(CONFIG, [f"data.data_dir={SAMPLE_DIR}",
                                   f"data.prepared_dir={out / 'prepared'}",
                                   f"train.checkpoint_dir={out / 'checkpoint'}"])
    print("== 1. prepare: sample corpus → instances (Ray Data)")
    stats = prepare(cfg.data.prepare_config(cfg.prepared_dir))
    print(format_stats(stats))
    print("\n== 2. train: multi-task CNN with entity BIO tags (+MTL +Tag)")
    result, run_id, model_uri = run_tracked(
        cfg, callback=lambda e, m: print(f"epoch {e}: loss {m['loss']:.3f}, "
                                         f"dev F1 {100 * m['dev_f1']:.1f}", flush=True),
        run_name="demo")
    print(format_result(result))
    uri = tracking_uri()
    print(f"\ncheckpoint: {result.checkpoint}\nMLflow run {run_id} in {uri}\nmodel: {model_uri}")

    print("\n== 3. search: Ray Tune + Optuna (TPE) + ASHA over m+, m-, gamma, theta, alpha, beta")
    from relext_ray.config import load_search
    from relext_ray.search.tuner import search

    found = search(load_search(CONFIGS / "smoke.yaml", [
        f"experiment.data.data_dir={SAMPLE_DIR}",
        f"experiment.data.prepared_dir={out / 'prepared'}",
        f"experiment.train.checkpoint_dir={out / 'best'}",
        f"search.storage_path={out / 'tune'}"]), overwrite=True)
    print(f"best config: {found['best_config']}")
    print(f"MLflow search run {found['parent_run_id']}, best model {found['model_uri']}")
    print("\n== 4. predict: the best model over the demo corpus's test split (Ray Data replicas)")
    import pyarrow.parquet as pq

    from relext_ray.cli.predict import format_summary
    from relext_ray.tracking.runs import predict_tracked

    summary = predict_tracked(str(SAMPLE_DIR / "sample_test.jsonl"), found["model_uri"],
                      out / "predictions", concurrency=2, chunk_size=25, overwrite=True,
                      experiment="relext-demo")
    print(format_summary(summary))
    rows = pq.read_table(sorted((out / "predictions").glob("part-*.parquet"))).to_pylist()
    print("a few output rows (pairs the model relates):")
    for r in [r for r in rows if r["relation"] != "Other"][:4]:
        print(f"  {r['sentence_id']}: {r['head_text']} ({r['head_type']}) -> {r['relation']} -> "
              f"{r['tail_text']} ({r['tail_type']}), score {r['score']:.2f}")
    from relext_ray.tracking.runs import experiment_id, ui_link

    base = uri if uri.startswith("http") else "http://127.0.0.1:5000"
    print("\nSee it all in the MLflow UI:")
    if not uri.startswith("http"):
        print(f"  .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    for name in ("relext-demo", "relext-smoke"):
        print(f"  {name}: {ui_link(base, experiment_id(name))}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    args = p.parse_args(argv)
    return cli_exit(lambda: demo(args.out))


if __name__ == "__main__":
    sys.exit(main())
