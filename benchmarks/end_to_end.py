"""Raw text in, relations out, on a corpus's test split: the tagger's mentions, then the
relations the model finds between them, against the gold annotations; beside the same model's
score with the gold mentions given. Several seeds, mean ± sd.

    python benchmarks/end_to_end.py --config tune_configs/conll04.yaml --seeds 1 2 3 \\
        --set tagger.word_vectors=glove-6b-50d

Entities: strict span + type. Relations: strict (both spans and types, the relation type; the
direction in ordered mode, else compared as unordered pairs). Writes the raw numbers as JSON.
``--checkpoint DIR`` scores a trained checkpoint (relation model + tagger) instead of training;
its gold-mention score is then the same model through ``predict`` with the gold mentions.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from ablation import mean_sd  # (the sibling benchmark's mean ± sd of test scores)

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def end_to_end(checkpoint: Path, theta: str | None = None) -> dict[str, float]:
    """Strict entity and end-to-end relation P/R/F1 of a checkpoint on its corpus's test split,
    and (``gold_mentions_f1``) its relation F1 when the gold mentions are given; at the model's
    theta, or ``theta`` (a number, or ``calibrated``: the checkpoint's dev-calibrated one)."""
    from relext_ray.data.local import brat_options, read_split
    from relext_ray.prediction.end_to_end import end_to_end_counts, end_to_end_scores, untag
    from relext_ray.prediction.predictor import Predictor

    predictor = Predictor.load(checkpoint)
    cfg = predictor.checkpoint.config
    gold = read_split(cfg.data.corpus, cfg.data.data_dir, "test",
                      brat_options(cfg.data.prepare_config(cfg.prepared_dir)))
    directed = cfg.data.mode == "ordered"
    chosen = (None if theta is None else float(predictor.checkpoint.meta["calibrated_theta"])
              if theta == "calibrated" else float(theta))
    out: dict[str, float] = {"theta": predictor.default_theta() if chosen is None else chosen}
    for name, sentences in (("tagger", predictor.tag([untag(s) for s in gold])),
                            ("gold", gold)):
        pairs = predictor.score(sentences, chosen).table.select(
            ["sentence_id", "head", "tail", "relation"]).to_pylist()
        scores = end_to_end_scores(end_to_end_counts(gold, sentences, pairs, directed))
        if name == "tagger":
            out.update(scores)
        else:
            out["gold_mentions_f1"] = scores["end_to_end_f1"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tune_configs/conll04.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", type=Path, default=Path("out/end_to_end.json"))
    p.add_argument("--checkpoint", type=Path, nargs="+", default=None,
                   help="score these trained checkpoints instead of training")
    p.add_argument("--theta", default=None,
                   help="with --checkpoint: the decision threshold, a number or 'calibrated' "
                        "(the checkpoint's dev-calibrated theta); default: the model's")
    args = p.parse_args()
    if args.checkpoint:
        rows = [{"checkpoint": str(c), **end_to_end(c, args.theta)} for c in args.checkpoint]
        for r in rows:
            print(f"{r['checkpoint']} (theta {r['theta']:.3f}): gold mentions F1 "
                  f"{100 * r['gold_mentions_f1']:.2f}; "
                  f"entities F1 {100 * r['entity_f1']:.2f} (P {100 * r['entity_precision']:.2f}, "
                  f"R {100 * r['entity_recall']:.2f}); end to end F1 "
                  f"{100 * r['end_to_end_f1']:.2f} (P {100 * r['end_to_end_precision']:.2f}, "
                  f"R {100 * r['end_to_end_recall']:.2f})", flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": rows}, indent=2) + "\n")
        return

    from relext_ray.config import load_experiment
    from relext_ray.training.run import run

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            cfg = load_experiment(args.config, [
                *args.overrides, "tagger.enabled=true", f"train.seed={seed}",
                "tracking.enabled=false", f"train.checkpoint_dir={tmp}/seed-{seed}"])
            r = run(cfg)
            e2e = end_to_end(r.checkpoint)
            row = {"seed": seed, "gold_entities_f1": r.test.f1, **e2e,
                   "tagger_best_epoch": r.train_counts["tagger_best_epoch"],
                   "best_epoch": r.best_epoch}
            rows.append(row)
            print(f"seed {seed}: gold mentions F1 {100 * r.test.f1:.2f}; entities F1 "
                  f"{100 * e2e['entity_f1']:.2f}; end to end F1 {100 * e2e['end_to_end_f1']:.2f} "
                  f"(P {100 * e2e['end_to_end_precision']:.2f}, "
                  f"R {100 * e2e['end_to_end_recall']:.2f})", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"config": args.config, "overrides": args.overrides,
                                     "runs": rows}, indent=2) + "\n")
    print("\n| score | test F1 |\n|---|---:|")
    for key, name in (("gold_entities_f1", "relations, gold mentions given"),
                      ("entity_f1", "entities (tagger), strict"),
                      ("end_to_end_f1", "relations end to end, strict")):
        print(f"| {name} | {mean_sd([r[key] for r in rows])} |")


if __name__ == "__main__":
    main()
