"""The entity tagger as a separate model or as a multi-task head of the relation model: which
gives better raw-text results? Both arms, the same config and seeds, side by side.

- ``separate``: what ``relext-train`` does (the relation model, then the BiLSTM-CRF tagger
  with its own word embedding and vocabulary, ``tagger.*``).
- ``shared``: one training loop; the tagger's word embedding *is* the relation model's, every
  relation step also takes a tagger step on the next batch of sentences (loss
  ``relation + weight * tagger``, one optimizer), so the NER task shapes the words the relation
  encoder reads. Each part keeps the weights of its own best dev epoch.

    python benchmarks/tagger_sharing.py --config tune_configs/conll04_tuned.yaml --seeds 1 2 3

Prints entity F1, end-to-end relation F1 and gold-mention relation F1 per arm and seed, then
mean ± sd; writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

from ablation import mean_sd  # (the sibling benchmark's mean ± sd of test scores)
from end_to_end import end_to_end

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def shared_run(cfg, weight: float) -> tuple[Path, float]:
    """Train the relation model and a tagger head on its word embedding together; save both
    in one checkpoint. Returns it and the relation model's test F1 (gold mentions)."""
    import numpy as np
    import torch

    from relext_ray.data.batching import iterate
    from relext_ray.data.prepared import PreparedData, capped, ensure_prepared, training_subset
    from relext_ray.instances.features import bio_tags, tag_ids
    from relext_ray.model.losses import Objective
    from relext_ray.model.relation import build_model
    from relext_ray.model.tagger import EntityTagger
    from relext_ray.model.vectors import load_word_vectors, tie_word_dim
    from relext_ray.training.checkpoint import Tagger
    from relext_ray.training.device import configure_threads, resolve_device
    from relext_ray.training.evaluate import decision_matrix, scores_at
    from relext_ray.training.fit import FitResult, seed_everything
    from relext_ray.training.optimizers import make_optimizer
    from relext_ray.training.run import evaluate_fitted
    from relext_ray.training.tagging import evaluate_tagger, sentence_batches, tagger_data

    cfg = tie_word_dim(cfg)
    # the head's vocabulary is the relation model's: no extra words of its own
    cfg = cfg.model_copy(update={"tagger": cfg.tagger.model_copy(update={
        "word_vectors": None, "word_dim": cfg.model.word_dim})})
    data = PreparedData.load(ensure_prepared(cfg))
    data.splits = {n: capped(a, cfg.train.max_length) for n, a in data.splits.items()}
    device = resolve_device(cfg.train.device)
    configure_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, data.vocabs, len(data.labels), data.max_distance).to(device)
    load_word_vectors(model, cfg.model, data.vocabs)
    vocab, splits = tagger_data(cfg, data.vocabs.tokens, data.vocabs.tags)
    assert vocab.words.items == data.vocabs.tokens.items
    tagger = EntityTagger(cfg.tagger, len(vocab.words), len(vocab.chars), len(vocab.tags))
    tagger.word = model.word  # the shared embedding
    tagger.to(device)
    params = list({id(p): p for p in [*model.parameters(), *tagger.parameters()]}.values())
    head = [p for n, p in tagger.named_parameters() if not n.startswith("word.")]
    optimizer = make_optimizer(params, cfg.train)
    objective = Objective.from_config(cfg.loss)
    rng = np.random.default_rng(cfg.train.seed)
    sentences = [s for s in splits["train"] if s.tokens]
    gold = [tag_ids(bio_tags(s), vocab.tags) for s in sentences]
    train, dev = training_subset(data.splits["train"], cfg.train), data.splits["dev"]
    best = {"rel": (-1.0, 0, None, None), "tag": (-1.0, 0, None)}
    history, seconds = [], []
    tag_batches = itertools.chain.from_iterable(
        sentence_batches(sentences, cfg.tagger.batch_size, rng) for _ in itertools.count())
    for epoch in range(1, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        tagger.train()
        for _, batch in iterate(train, cfg.train.batch_size, cfg.train.batch_tokens,
                                data.max_distance, rng, cfg.train.pairs_per_sentence):
            b = batch.to(device)
            idx = next(tag_batches)
            tb = vocab.batch([sentences[i].tokens for i in idx], [gold[i] for i in idx],
                             use_chars=tagger.uses_chars).to(device)
            loss = objective(model(b), b.labels).total + weight * tagger.loss(tb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head, 5.0)
            optimizer.step()
        seconds.append(time.perf_counter() - t0)
        rel = scores_at(decision_matrix(model, cfg, dev, data.max_distance, device), dev,
                        cfg.loss.theta, data.labels, data.missed_positives("dev"))
        ent = evaluate_tagger(tagger, vocab, splits["dev"], device)
        if rel.f1 > best["rel"][0]:
            best["rel"] = (rel.f1, epoch, copy.deepcopy(model.state_dict()), rel)
        if ent.f1 > best["tag"][0]:
            best["tag"] = (ent.f1, epoch, copy.deepcopy(tagger.state_dict()))
        history.append({"epoch": epoch, "dev_f1": rel.f1, "tagger_dev_f1": ent.f1})
        print(f"  shared epoch {epoch}: dev relation F1 {100 * rel.f1:.2f}, dev entity F1 "
              f"{100 * ent.f1:.2f}, {seconds[-1]:.1f}s", flush=True)
        if (epoch - best["rel"][1] >= cfg.train.patience
                and epoch - best["tag"][1] >= cfg.tagger.patience):
            break
    model.load_state_dict(best["rel"][2])
    head_model = EntityTagger(cfg.tagger, len(vocab.words), len(vocab.chars), len(vocab.tags))
    head_model.load_state_dict(best["tag"][2])  # its own copy of the embedding at its epoch
    head_model.to(device).eval()
    fitted = FitResult(model, best["rel"][1], best["rel"][3], history, float(np.mean(seconds)))
    result = evaluate_fitted(cfg, data, fitted, device, True, Tagger(head_model, vocab))
    return result.checkpoint, result.test.f1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tune_configs/conll04_tuned.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--arms", nargs="+", default=["separate", "shared"],
                   choices=["separate", "shared"])
    p.add_argument("--weight", type=float, default=1.0, help="the tagger loss's weight (shared)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", type=Path, default=Path("out/tagger_sharing.json"))
    args = p.parse_args()

    from relext_ray.config import load_experiment
    from relext_ray.training.run import run

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, arm in itertools.product(args.seeds, args.arms):
            cfg = load_experiment(args.config, [
                *args.overrides, "tagger.enabled=true", f"train.seed={seed}",
                "tracking.enabled=false", f"train.checkpoint_dir={tmp}/{arm}-{seed}"])
            if arm == "separate":
                r = run(cfg)
                checkpoint, gold_f1 = r.checkpoint, r.test.f1
            else:
                checkpoint, gold_f1 = shared_run(cfg, args.weight)
            row = {"arm": arm, "seed": seed, "gold_entities_f1": gold_f1,
                   **end_to_end(checkpoint)}
            rows.append(row)
            print(f"{arm} seed {seed}: gold mentions F1 {100 * gold_f1:.2f}; entities F1 "
                  f"{100 * row['entity_f1']:.2f}; end to end F1 "
                  f"{100 * row['end_to_end_f1']:.2f}", flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"config": args.config, "overrides": args.overrides,
                                             "weight": args.weight, "runs": rows}, indent=2)
                                 + "\n")
    print("\n| arm | relations, gold mentions | entities | relations end to end |")
    print("|---|---:|---:|---:|")
    for arm in args.arms:
        got = [r for r in rows if r["arm"] == arm]
        print(f"| {arm} | " + " | ".join(mean_sd([r[k] for r in got]) for k in (
            "gold_entities_f1", "entity_f1", "end_to_end_f1")) + " |")


if __name__ == "__main__":
    main()
