"""``relext-demo``: the main path on the bundled sample corpus, all local.

1. prepare the sample corpus with Ray Data (local Ray) into instances;
2. train the multi-task CNN (+Tag +MTL) on it, tracked in a local MLflow store (``mlruns.db``);
3. search its loss hyper-parameters (Ray Tune + Optuna TPE + ASHA), tracked the same way, and
   register the best model as ``models:/relext-demo@champion``;
4. predict with that model over the sample test split (batch prediction on Ray Data);
5. give it raw text: a few sentences typed into a file, mentions found by its entity tagger.

Each stage ends with a short paragraph of what it did and where to look.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from relext_ray import console
from relext_ray.config import load_experiment
from relext_ray.corpus.sample import SAMPLE_DIR
from relext_ray.errors import cli_exit

CONFIGS = Path(__file__).resolve().parents[2] / "tune_configs"
CONFIG = CONFIGS / "demo.yaml"
SEARCH = CONFIGS / "demo_search.yaml"


# Sentences in the sample corpus's style that it does not contain.
RAW_TEXT = ("Maria Costa works for Silver Lake Energy in Lisbon.",
            "The chairman of Cedar Group, Tomas Petrov, lives in Toronto.",
            "Kumasi lies in Ghana, Omar Novak said.")


def say(text: str) -> None:
    """A paragraph of the demo's story, wrapped."""
    print(textwrap.fill(" ".join(text.split()), width=96), flush=True)


def prepared_paragraph(stats: dict[str, dict[str, int]], out: Path) -> str:
    train = stats["train"]
    per_split = ", ".join(f"{split} {s['positives']:,} + {s['negatives']:,}"
                          for split, s in stats.items())
    return (f"Read {sum(s['records_read'] for s in stats.values()):,} sentences "
            f"({sum(s['rejected'] for s in stats.values())} rejected) and made every entity pair "
            f"an instance: related + unrelated pairs, {per_split}; "
            f"{train['negatives'] / max(train['positives'], 1):.1f} unrelated pairs per related "
            f"one in train, after the type filter removed {train['filtered_out']:,} training "
            f"pairs whose entity types no relation joins. Instances and statistics: {out}.")


def search_paragraph(found: dict[str, Any], trained_dev: float, max_epochs: int) -> str:
    rows = found["ranked"]
    best, worst = rows[0], rows[-1]
    stopped = sum(1 for r in rows if r["epochs"] < max_epochs)
    gain = 100 * (best["best_dev_f1"] - worst["best_dev_f1"])
    test = found["result"].test
    return (f"The search ran {found['trials']} trials ({found['trial_epochs']} epochs in all; "
            f"{stopped} stopped early by ASHA or patience). Best dev F1 "
            f"{100 * best['best_dev_f1']:.2f} (trial {best['trial_id']}) against "
            f"{100 * worst['best_dev_f1']:.2f} for the worst trial ({worst['epochs']} epochs), "
            f"{gain:+.2f}; the hand-set demo "
            f"config "
            f"reached {100 * trained_dev:.2f}. Retrained, the best configuration scores test F1 "
            f"{100 * test.f1:.2f} and is registered as {found['model_uri']}.")


def demo(out: Path) -> None:
    from relext_ray.data.pipeline import prepare
    from relext_ray.tracking.runs import run_tracked, tracking_uri
    from relext_ray.training.run import format_result

    cfg = load_experiment(CONFIG, [f"data.data_dir={SAMPLE_DIR}",
                                   f"data.prepared_dir={out / 'prepared'}",
                                   f"train.checkpoint_dir={out / 'checkpoint'}"])
    print("== 1. prepare: the sample corpus → entity-pair instances (Ray Data)")
    stats = prepare(cfg.data.prepare_config(cfg.prepared_dir))
    say(prepared_paragraph(stats, cfg.prepared_dir))

    print("\n== 2. train: multi-task CNN with entity BIO-tag embeddings (+MTL +Tag)")
    result, run_id, _ = run_tracked(
        cfg, callback=lambda e, m: "loss" in m and print(
            f"epoch {e:2d}: loss {m['loss']:.3f}, dev F1 {100 * m['dev_f1']:5.1f}", flush=True),
        run_name="demo")
    print(format_result(result))
    uri = tracking_uri()
    say(f"Kept the weights of epoch {result.best_epoch} (best dev F1); test F1 "
        f"{100 * result.test.f1:.2f} at theta {result.theta:g}, the 'calibrated' rows use the "
        f"theta that is best on dev. Checkpoint {result.checkpoint}; MLflow run {run_id} "
        f"(experiment relext-demo) has the curves, per-class scores and confusion matrices.")

    print("\n== 3. search: Ray Tune + Optuna (TPE) + ASHA over m+, m-, gamma, theta, alpha, beta "
          "and the tag embedding")
    from relext_ray.config import load_search
    from relext_ray.search.tuner import search

    search_cfg = load_search(SEARCH, [
        f"experiment.data.data_dir={SAMPLE_DIR}",
        f"experiment.data.prepared_dir={out / 'prepared'}",
        f"experiment.train.checkpoint_dir={out / 'best'}",
        f"search.storage_path={out / 'tune'}"])
    found = search(search_cfg, overwrite=True)
    say(search_paragraph(found, result.dev.f1, search_cfg.experiment.train.epochs))

    print("\n== 4. predict: the champion over the sample test split (Ray Data, 2 replicas)")
    import pyarrow.parquet as pq

    from relext_ray.cli.predict import format_summary
    from relext_ray.tracking.runs import predict_tracked

    summary = predict_tracked(str(SAMPLE_DIR / "sample_test.jsonl"), found["model_uri"],
                              out / "predictions", concurrency=2, chunk_size=25, overwrite=True,
                              experiment="relext-demo", progress=console.progress_enabled())
    print(format_summary(summary))
    rows = pq.read_table(sorted((out / "predictions").glob("part-*.parquet"))).to_pylist()
    print("a few output rows (pairs the model relates):")
    for r in [r for r in rows if r["relation"] != "Other"][:4]:
        print(f"  {r['sentence_id']}: {r['head_text']} ({r['head_type']}) -> {r['relation']} -> "
              f"{r['tail_text']} ({r['tail_type']}), score {r['score']:.2f}")
    print("\n== 5. raw text: sentences typed into a file; the model's tagger finds the mentions")
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "notes.txt").write_text("\n".join(RAW_TEXT) + "\n", encoding="utf-8")
    for line in RAW_TEXT:
        print(f"  {line}")
    summary = predict_tracked(str(raw), found["model_uri"], out / "raw_predictions",
                              concurrency=1, overwrite=True, experiment="relext-demo",
                              progress=console.progress_enabled())
    rows = pq.read_table(sorted((out / "raw_predictions").glob("part-*.parquet"))).to_pylist()
    say(f"The tagger found {summary['mentions_tagged']} mentions in "
        f"{summary['sentences_tagged']} sentences; the model scored {summary['pairs_scored']} "
        f"pairs of them. The relations it found (characters are offsets into the line):")
    for r in [r for r in rows if r["relation"] != "Other"]:
        print(f"  line {r['sentence_id'].split(':')[1]}: {r['head_text']} ({r['head_type']}, "
              f"chars {r['head_char_start']}-{r['head_char_end']}) -> {r['relation']} -> "
              f"{r['tail_text']} ({r['tail_type']}), score {r['score']:.2f}")
    from relext_ray.tracking.runs import experiment_id, ui_link

    base = uri if uri.startswith("http") else "http://127.0.0.1:5000"
    print("\n== See it all in the MLflow UI")
    if not uri.startswith("http"):
        print(f"  .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    for name in ("relext-demo", "relext-demo-search"):
        print(f"  {name}: {ui_link(base, experiment_id(name))}")
    print(textwrap.dedent("""
        == Next, on a real corpus (CoNLL04; relext-download fetches it)
          relext-prepare --corpus conll04 --data-dir data/conll04 --out prepared/conll04
          relext-tune --config tune_configs/conll04_search.yaml
          python -m relext_ray.predict --input my_corpus/      # the champion the search registered"""
                          ).rstrip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    console.add_options(p)
    args = p.parse_args(argv)
    console.from_options(args)
    return cli_exit(lambda: demo(args.out))


if __name__ == "__main__":
    sys.exit(main())
