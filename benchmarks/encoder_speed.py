"""Factored vs per-pair encoder: training and evaluation pairs/s, side by side in one run.

    python benchmarks/encoder_speed.py [--sentences 400] [--threads 1 2] [--data-dir DIR]

The paper's full model (+MTL+Tag, CNN, windows 4..10 × 64 filters) with each corpus's config
(``tune_configs/<corpus>.yaml``: margins, batch sizes), on CoNLL04 train (unordered, every
sentence) and Chinese Literature train (ordered, full length, all documents; the per-pair
reference is too slow for its 622k pairs, so both paths run on the same seeded sample of
``--sentences`` sentences drawn uniformly from all of them, with all their pairs).

Each measurement runs in a fresh process (its own torch threads and peak RSS), with the same
initial weights (seeded), the same pairs and the same batches (seeded plan):

* training: one pass, forward + backward + RMSprop step, the training objective, on the
  default batches (``train.pairs_per_sentence: 1``: pairs drawn independently, each sentence
  encoded once per batch) and, for the factored path, also on whole-sentence batches
  (``pairs_per_sentence: null``: every pair of a sentence in one batch, the most sharing);
* evaluation: one pass of inference at the config's evaluation batch size.

Then both paths score the same pairs with the same weights: the largest |difference| of the
class scores. The last line gives each corpus's smallest speed-up over the thread counts, for
training on whole-sentence batches (the encoder's own speed-up; the line above it gives both).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CORPORA = {
    "chinese_literature": ("brat", "chinese_literature", "ordered"),
    "conll04": ("conll04", "conll04", "unordered"),
}
PATHS = ("factored", "per-pair")
ROOT = Path(__file__).resolve().parents[1]


def _sample(corpus: str, data_dir: Path, sentences: int | None):
    from relext_ray.config import load_experiment
    from relext_ray.data.local import prepare_local

    reader, sub, mode = CORPORA[corpus]
    os.environ.setdefault("RELEXT_DATA_DIR", str(data_dir))
    cfg = load_experiment(ROOT / "tune_configs" / f"{corpus}.yaml")
    data = prepare_local(reader, data_dir / sub, mode, splits=("train",))
    train = data.splits["train"]
    if sentences is not None and sentences < len(train.sentences):
        keep = np.random.default_rng(0).choice(len(train.sentences), sentences, replace=False)
        train = train.subset(np.flatnonzero(np.isin(train.sentence, keep)))
    return cfg, data, train


def _model(cfg, data, path: str):
    import torch

    from relext_ray.model.relation import build_model

    torch.manual_seed(0)
    m = build_model(cfg.model, data.vocabs, len(data.vocabs.labels), cfg.data.max_distance)
    m.reference = path == "per-pair"
    return m


def measure(corpus: str, data_dir: Path, sentences: int | None, path: str, threads: int) -> dict:
    """One path at one thread count: training and evaluation pairs/s, peak RSS."""
    import torch

    from relext_ray.data.batching import iterate
    from relext_ray.model.losses import Objective

    torch.set_num_threads(threads)
    cfg, data, train = _sample(corpus, data_dir, sentences)
    m = _model(cfg, data, path)
    optimizer = torch.optim.RMSprop(m.parameters(), lr=cfg.train.lr, alpha=cfg.train.rmsprop_alpha)
    objective = Objective.from_config(cfg.loss)
    t, md = cfg.train, cfg.data.max_distance
    m.train()

    def train_pass(pairs_per_sentence: int | None) -> float:
        start = time.perf_counter()
        for _, b in iterate(train, t.batch_size, t.batch_tokens, md, np.random.default_rng(1),
                            pairs_per_sentence):
            loss = objective(m(b), b.labels).total
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return len(train) / (time.perf_counter() - start)

    training = train_pass(t.pairs_per_sentence)
    whole = train_pass(None) if path == "factored" else None
    m.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for _, b in iterate(train, t.eval_batch_size, t.batch_tokens, md):
            m(b)
    evaluation = time.perf_counter() - start
    return {"pairs": len(train), "sentences": len(np.unique(train.sentence)),
            "training": training, "training_whole": whole, "evaluation": len(train) / evaluation,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def max_difference(corpus: str, data_dir: Path, sentences: int | None) -> float:
    """Largest |score difference| of the two paths, same weights, same pairs."""
    import torch

    from relext_ray.data.batching import iterate

    cfg, data, train = _sample(corpus, data_dir, sentences)
    m = _model(cfg, data, "factored").eval()
    worst = 0.0
    with torch.inference_mode():
        for _, b in iterate(train, cfg.train.eval_batch_size, cfg.train.batch_tokens,
                            cfg.data.max_distance):
            f = m.classes(m.fc(m.encode_factored(b)))
            p = m.classes(m.fc(m.encode_pairs(b)))
            worst = max(worst, (f - p).abs().max().item())
    return worst


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=400,
                   help="Chinese Literature sentences sampled (CoNLL04 runs whole)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    p.add_argument("--data-dir", type=Path,
                   default=Path(os.environ.get("RELEXT_DATA_DIR", ROOT.parent / "shared/data")))
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    data_dir = args.data_dir.resolve()

    if args.child:
        kind, corpus, n = args.child[:3]
        sentences = None if n == "all" else int(n)
        if kind == "diff":
            print(json.dumps({"max_diff": max_difference(corpus, data_dir, sentences)}))
        else:
            print(json.dumps(measure(corpus, data_dir, sentences, kind, int(args.child[3]))))
        return

    results: dict[str, dict] = {}
    print("| corpus | pairs (sentences) | threads | path | training pairs/s | training, "
          "whole-sentence batches | evaluation pairs/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for corpus in args.corpora:
        n = str(args.sentences) if corpus == "chinese_literature" else "all"
        runs: dict[str, dict] = {}
        for threads in args.threads:
            for path in PATHS:
                r = _child([path, corpus, n, str(threads), "--data-dir", str(data_dir)])
                runs[f"{path}/{threads}"] = r
                whole = f"{r['training_whole']:,.0f}" if r["training_whole"] else "-"
                print(f"| {corpus} | {r['pairs']:,} ({r['sentences']:,}) | {threads} | {path} | "
                      f"{r['training']:,.0f} | {whole} | {r['evaluation']:,.0f} | "
                      f"{r['peak_rss_mb']:,.0f} |", flush=True)
        diff = _child(["diff", corpus, n, "0", "--data-dir", str(data_dir)])["max_diff"]
        ratios = {kind: min(runs[f"factored/{t}"][kind] / runs[f"per-pair/{t}"][base]
                            for t in args.threads)
                  for kind, base in (("training", "training"), ("evaluation", "evaluation"),
                                     ("training_whole", "training"))}
        results[corpus] = {"runs": runs, "max_diff": diff, "speedup": ratios}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print()
    for corpus, r in results.items():
        print(f"{corpus}: training {r['speedup']['training']:.1f}x (whole-sentence batches "
              f"{r['speedup']['training_whole']:.1f}x), evaluation "
              f"{r['speedup']['evaluation']:.1f}x, max |diff| {r['max_diff']:.1e}")
    parts = []
    if "chinese_literature" in results:
        s = results["chinese_literature"]["speedup"]
        parts.append(f"chinese_literature: training {s['training_whole']:.1f}x, "
                     f"evaluation {s['evaluation']:.1f}x")
    if "conll04" in results:
        parts.append(f"conll04: training {results['conll04']['speedup']['training_whole']:.1f}x")
    worst = max(r["max_diff"] for r in results.values())
    print(f"speed-up {'; '.join(parts)}; max |diff| {worst:.1e}")


if __name__ == "__main__":
    main()
