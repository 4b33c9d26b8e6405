"""Training and scoring the entity tagger (``model.tagger``) on a corpus's own annotations.

Every sentence of a split is a training example, those with no or one mention included (the
relation instances skip them; a tagger must learn that most sentences hold few entities).
Entity scores are strict: a predicted mention counts only if its span and its type are a gold
mention's. Nested gold mentions that BIO tags cannot express stay in the gold set, as misses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from relext_ray import console
from relext_ray.config import ExperimentConfig, TaggerConfig
from relext_ray.corpus.records import Sentence
from relext_ray.data.local import brat_options, read_split
from relext_ray.errors import RelextError
from relext_ray.instances.features import bio_tags, tag_ids
from relext_ray.instances.vocab import Vocab
from relext_ray.model.tagger import EntityTagger, Mention, TaggerVocab, char_vocab, mentions_from_tags
from relext_ray.model.vectors import read_vectors, resolve, vectors_width, vectors_words
from relext_ray.training.fit import FitState, StateCallback
from relext_ray.training.metrics import prf

EpochCallback = Callable[[int, dict[str, float]], None]
Span = tuple[int, int, str]


@dataclass
class EntityScores:
    """Strict mention P/R/F1 (span and type), overall and per type."""

    precision: float
    recall: float
    f1: float
    tp: int
    predicted: int
    gold: int
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


def entity_scores(gold: Sequence[set[Span]], predicted: Sequence[set[Span]]) -> EntityScores:
    """Compare each sentence's predicted mentions with its gold ones.

    Args:
        gold: Per sentence, its gold mentions as (start, end, type).
        predicted: Per sentence, the predicted mentions, same form.

    Returns:
        Micro P/R/F1 over all mentions and per type.
    """
    tp = n_pred = n_gold = 0
    by_type: dict[str, list[int]] = {}
    for g, p in zip(gold, predicted, strict=True):
        hits = g & p
        tp, n_pred, n_gold = tp + len(hits), n_pred + len(p), n_gold + len(g)
        for spans, k in ((hits, 0), (p, 1), (g, 2)):
            for _, _, t in spans:
                by_type.setdefault(t, [0, 0, 0])[k] += 1
    pr, rc, f1 = prf(tp, n_pred, n_gold)
    per_type = {}
    for t, (hits_t, pred_t, gold_t) in sorted(by_type.items()):
        p_t, r_t, f_t = prf(hits_t, pred_t, gold_t)
        per_type[t] = {"precision": p_t, "recall": r_t, "f1": f_t, "support": float(gold_t)}
    return EntityScores(pr, rc, f1, tp, n_pred, n_gold, per_type)


def mention_spans(sentence: Sentence) -> set[Span]:
    return {(e.start, e.end, e.type) for e in sentence.entities}


def tagger_vocab(train: list[Sentence], words: Vocab, tags: Vocab,
                 lowercase: bool = False, extra_words: list[str] = ()) -> TaggerVocab:
    """The relation model's word and tag vocabularies (the words extended by
    ``extra_words``: those of pretrained vectors), and the training split's characters."""
    if extra_words:
        known = set(words.items)
        words = Vocab((*words.items, *(w for w in dict.fromkeys(extra_words) if w not in known)))
    return TaggerVocab(words, char_vocab([t for s in train for t in s.tokens]), tags, lowercase)


def sentence_batches(sentences: list[Sentence], size: int, rng: np.random.Generator | None
             ) -> list[list[int]]:
    """Sentences grouped by similar length (less padding), in a seeded order when training."""
    order = np.argsort([len(s.tokens) for s in sentences], kind="stable")
    groups = [order[i:i + size].tolist() for i in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(groups)
    return groups


def tag_sentences(tagger: EntityTagger, vocab: TaggerVocab, tokens: Sequence[tuple[str, ...]],
                  device: torch.device, batch_size: int = 64) -> list[list[Mention]]:
    """The mentions the tagger finds in each token tuple (non-empty tuples)."""
    tagger.eval()
    out: list[list[Mention] | None] = [None] * len(tokens)
    order = np.argsort([len(t) for t in tokens], kind="stable")
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size].tolist()
        b = vocab.batch([tokens[j] for j in idx], use_chars=tagger.uses_chars).to(device)
        best, conf = tagger.decode(b)
        for j, seq, c in zip(idx, best, conf, strict=True):
            out[j] = mentions_from_tags([vocab.tags.items[k] for k in seq], c)
    return [m or [] for m in out]


def evaluate_tagger(tagger: EntityTagger, vocab: TaggerVocab, sentences: list[Sentence],
                    device: torch.device) -> EntityScores:
    found = tag_sentences(tagger, vocab, [s.tokens for s in sentences], device)
    return entity_scores([mention_spans(s) for s in sentences],
                         [{(m.start, m.end, m.type) for m in ms} for ms in found])


@dataclass
class TaggerFit:
    tagger: EntityTagger
    vocab: TaggerVocab
    best_epoch: int
    dev: EntityScores
    seconds_per_epoch: float


def fit_tagger(cfg: TaggerConfig, vocab: TaggerVocab, train: list[Sentence],
               dev: list[Sentence], device: torch.device, seed: int,
               callback: EpochCallback | None = None, resume: FitState | None = None,
               on_state: StateCallback | None = None) -> TaggerFit:
    """Train with Adam and early stopping on dev entity F1; keep the best epoch's weights.

    Args:
        cfg: The tagger's sizes and schedule.
        vocab: Word, character and tag vocabularies.
        train: Training sentences (gold mentions give the BIO tags).
        dev: The sentences that select the epoch.
        device: Where to train.
        seed: Seeds the weights and the batch order.
        callback: Called with each epoch's number and ``tagger_*`` metrics.
        resume: A state from ``on_state``: continue exactly as if the fit had never stopped
            (a search trial restored after its worker died).
        on_state: Called after each epoch with its metrics and a resumable state.

    Returns:
        The tagger with its best weights, the epoch, its dev scores, seconds per epoch.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if cfg.word_vectors is not None:
        cfg = cfg.model_copy(update={"word_dim": vectors_width(cfg.word_vectors)})
    tagger = EntityTagger(cfg, len(vocab.words), len(vocab.chars), len(vocab.tags)).to(device)
    if cfg.word_vectors is not None and resume is None:
        path, words = resolve(cfg.word_vectors)
        rows, values, _ = read_vectors(path, vocab.words.items, words)
        with torch.no_grad():
            tagger.word.weight[torch.from_numpy(rows).to(device)] = torch.from_numpy(values).to(
                device)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=cfg.lr)
    train = [s for s in train if s.tokens]
    gold = [tag_ids(bio_tags(s), vocab.tags) for s in train]
    best_f1, best_epoch, best_state, best_dev = -1.0, 0, None, None
    history: list[dict[str, float]] = []
    seconds: list[float] = []
    first = 1
    if resume is not None:
        first = resume.restore(tagger, optimizer, rng, cfg.epochs, cfg.patience)
        best_f1, best_epoch = resume.best_f1, resume.best_epoch
        best_state, best_dev = resume.best_model, resume.best_dev
        history, seconds = list(resume.history), list(resume.epoch_seconds)
    for epoch in range(first, cfg.epochs + 1):
        t0 = time.perf_counter()
        tagger.train()
        total, n = 0.0, 0
        bar = console.progress_bar(len(train), f"tagger epoch {epoch}/{cfg.epochs}",
                                   unit="sentence")
        for idx in sentence_batches(train, cfg.batch_size, rng):
            b = vocab.batch([train[i].tokens for i in idx], [gold[i] for i in idx],
                            use_chars=tagger.uses_chars).to(device)
            loss = tagger.loss(b)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tagger.parameters(), 5.0)
            optimizer.step()
            total += loss.item() * len(idx)
            n += len(idx)
            bar.update(len(idx))
        bar.close()
        scores = evaluate_tagger(tagger, vocab, dev, device)
        seconds.append(time.perf_counter() - t0)
        if scores.f1 > best_f1:
            best_f1, best_epoch, best_dev = scores.f1, epoch, scores
            best_state = copy.deepcopy(tagger.state_dict())
        metrics = {"epoch": epoch, "tagger_loss": total / max(n, 1),
                   "tagger_dev_precision": scores.precision, "tagger_dev_recall": scores.recall,
                   "tagger_dev_f1": scores.f1, "tagger_best_dev_f1": best_f1,
                   "tagger_best_epoch": best_epoch, "tagger_epoch_seconds": seconds[-1]}
        history.append(metrics)
        if callback is not None:
            callback(epoch, metrics)
        if on_state is not None:
            on_state(metrics, FitState(epoch, tagger.state_dict(), optimizer.state_dict(),
                                       best_f1, best_epoch, best_state, best_dev, history,
                                       seconds, rng.bit_generator.state, torch.get_rng_state()))
        if epoch - best_epoch >= cfg.patience:
            break
    if best_state is None or best_dev is None:
        raise RelextError("the tagger ran no epoch: tagger.epochs must be at least 1")
    tagger.load_state_dict(best_state)
    tagger.eval()
    return TaggerFit(tagger, vocab, best_epoch, best_dev,
                     float(np.mean(seconds)) if seconds else 0.0)


def tagger_data(cfg: ExperimentConfig, words: Vocab, tags: Vocab
                ) -> tuple[TaggerVocab, dict[str, list[Sentence]]]:
    """The tagger's vocabularies and the corpus's train, dev and test sentences (test may be
    empty)."""
    brat = brat_options(cfg.data.prepare_config(cfg.prepared_dir))
    splits = {s: read_split(cfg.data.corpus, cfg.data.data_dir, s, brat)
              for s in ("train", "dev", "test")}
    if not splits["train"] or not splits["dev"]:
        raise RelextError(f"tagger: {cfg.data.data_dir} needs a train and a dev split")
    extra = (vectors_words(cfg.tagger.word_vectors, cfg.tagger.vectors_vocab)
             if cfg.tagger.word_vectors is not None else [])
    return tagger_vocab(splits["train"], words, tags, cfg.data.lowercase, extra), splits


def run_tagger(cfg: ExperimentConfig, words: Vocab, tags: Vocab, device: torch.device,
               callback: EpochCallback | None = None, resume: FitState | None = None,
               on_state: StateCallback | None = None) -> tuple[TaggerFit, dict[str, float]]:
    """Train the config's tagger on the corpus's train split (dev selects the epoch) and score
    it on test; returns it and its ``tagger_*`` metrics (per type too). ``resume`` and
    ``on_state`` as in :func:`fit_tagger`."""
    vocab, splits = tagger_data(cfg, words, tags)
    fitted = fit_tagger(cfg.tagger, vocab, splits["train"], splits["dev"], device,
                        cfg.train.seed, callback, resume, on_state)
    metrics = {"tagger_best_epoch": float(fitted.best_epoch),
               "tagger_seconds_per_epoch": fitted.seconds_per_epoch,
               **{f"tagger_best_dev_{k}": v for k, v in fitted.dev.summary().items()}}
    if splits["test"]:
        test = evaluate_tagger(fitted.tagger, vocab, splits["test"], device)
        metrics.update({f"tagger_test_{k}": v for k, v in test.summary().items()})
        metrics.update({f"tagger_test_f1_{t}": row["f1"] for t, row in test.per_type.items()})
    return fitted, metrics
