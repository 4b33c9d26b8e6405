"""What the reproduction runs: systems, tables, Figure 3's ratios, budgets, the paper's numbers.

Pure data and functions: ``plan`` turns a budget into the list of runs, each a training
configuration (a corpus's config plus overrides) and a seed. Runs that several tables share
(Table 4's "+Tag, ranking" is Table 2's "+Tag") are trained once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from relext_ray.errors import RelextError

CONFIGS = Path(__file__).resolve().parents[2] / "tune_configs"

# system → (label, overrides). All start from the corpus config (its language's margins).
SYSTEMS: dict[str, tuple[str, dict[str, object]]] = {
    "baseline": ("Baseline", {"model.encoder": "cnn", "model.use_tag": False, "model.mtl": False}),
    "tag": ("Baseline + Tag", {"model.encoder": "cnn", "model.use_tag": True, "model.mtl": False}),
    "mtl": ("Baseline + MTL", {"model.encoder": "cnn", "model.use_tag": False, "model.mtl": True}),
    "mtl_tag": ("Baseline + MTL + Tag", {"model.encoder": "cnn", "model.use_tag": True,
                                         "model.mtl": True}),
    "pcnn": ("PCNN", {"model.encoder": "pcnn", "model.use_tag": False, "model.mtl": False}),
    "pcnn_tag": ("PCNN + Tag", {"model.encoder": "pcnn", "model.use_tag": True,
                                "model.mtl": False}),
    "bigru": ("Eatt-BiGRU", {"model.encoder": "bigru", "model.use_tag": False,
                             "model.mtl": False}),
    "bigru_tag": ("Eatt-BiGRU + Tag", {"model.encoder": "bigru", "model.use_tag": True,
                                       "model.mtl": False}),
    "tag_ce": ("+Tag, CE", {"model.use_tag": True, "model.mtl": False, "loss.variant": "ce"}),
    "tag_ce_ranking": ("+Tag, CE + ranking", {"model.use_tag": True, "model.mtl": False,
                                              "loss.variant": "ce_ranking"}),
    "mtl_tag_ce": ("+MTL+Tag, CE", {"model.use_tag": True, "model.mtl": True,
                                    "loss.variant": "ce"}),
    # +MTL+Tag with a search's best values on top (``--tuned CORPUS=RUN_ID``)
    "tuned": ("+MTL+Tag, tuned", {"model.use_tag": True, "model.mtl": True}),
    # +MTL+Tag from the search around the anchor: a PCNN that also pools over the mentions
    "tuned_pcnn": ("+MTL+Tag, tuned PCNN with mention pooling", {
        "model.use_tag": True, "model.mtl": True, "model.encoder": "pcnn"}),
    # what a practitioner would try first: one window of 3 × 230 filters, cross-entropy, Adam,
    # the same tag embedding (the tuned row is compared with it)
    "anchor": ("single-window CNN + CE (anchor)", {
        "model.use_tag": True, "model.mtl": False, "loss.variant": "ce",
        "model.windows": "[3]", "model.filters": 230, "train.optimizer": "adam"}),
}
# the rows made from tuned values (a tuned config or a search's best), outside the paper's tables
TUNED = ("tuned", "tuned_pcnn")
for _label, _o in SYSTEMS.values():
    _o.setdefault("loss.variant", "ranking")
    _o.setdefault("model.encoder", "cnn")

# table → rows (system keys). Table 3 and 4 keep the CNN rows they are compared with.
TABLES: dict[str, list[str]] = {
    "main": ["baseline", "tag", "mtl", "mtl_tag"],
    "encoders": ["pcnn", "pcnn_tag", "bigru", "bigru_tag", "baseline", "mtl_tag"],
    "losses": ["tag", "tag_ce", "tag_ce_ranking", "mtl_tag", "mtl_tag_ce"],
}
FIG3_SYSTEMS = ("baseline", "mtl_tag")
FIG3_RATIOS = (0.5, 1.0, 5.0, 10.0, 15.0)

# The paper's F1 (Ye et al. 2019): English = Table 1 (ACE05 English), Chinese = Tables 2-4.
PAPER: dict[str, dict[str, float]] = {
    "en": {"baseline": 57.2, "tag": 67.4, "mtl": 59.5, "mtl_tag": 68.9},
    "zh": {"baseline": 51.7, "tag": 61.4, "mtl": 53.8, "mtl_tag": 62.9, "pcnn": 46.1,
           "pcnn_tag": 58.2, "bigru": 52.0, "bigru_tag": 61.1, "tag_ce": 61.5,
           "tag_ce_ranking": 61.7, "mtl_tag_ce": 62.0},
}
PAPER_ERRORS = {"false_negatives": 0.302, "false_positives": 0.628, "wrong_class": 0.070}


@dataclass(frozen=True)
class Corpus:
    """A corpus of the study: its config, the paper setting it stands for, what runs on it."""

    name: str
    config: str
    language: str  # "en" or "zh": which of the paper's numbers it is compared with
    tables: tuple[str, ...]
    fig3: bool


CORPORA = {
    "conll04": Corpus("conll04", "conll04.yaml", "en", ("main",), False),
    "chinese_literature": Corpus("chinese_literature", "chinese_literature.yaml", "zh",
                                 ("main", "encoders", "losses"), True),
    # the bundled sample: for the end-to-end test of the job itself
    "demo": Corpus("demo", "demo.yaml", "zh", ("main", "encoders", "losses"), True),
}


# The quick budget's model: the paper's architecture, narrower (embeddings 50/10/10/10, CNN
# windows 3-5, BiGRU 50 units): about ten times less compute per instance on a CPU.
SMALL_MODEL = ("model.word_dim=50", "model.pos_dim=10", "model.tag_dim=10",
               "model.windows=[3,4,5]", "model.gru_hidden=50")


@dataclass(frozen=True)
class Budget:
    """How much compute a study gets. Both budgets run the same code; quick narrows the model,
    caps epochs and trains on part of Chinese Literature (the report prints all of it)."""

    name: str
    epochs: int
    patience: int
    seeds: tuple[int, ...] = (1, 2, 3)
    documents: dict[str, float] = field(default_factory=dict)  # corpus → share of train docs
    max_length: dict[str, int] = field(default_factory=dict)  # corpus → sentence cap, all splits
    corpus_epochs: dict[str, tuple[int, int]] = field(default_factory=dict)  # → (epochs, patience)
    corpus_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # instead of seeds
    corpus_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()  # applied to every run (e.g. smaller models)
    # corpus → the neg:pos the table runs train at (training negatives subsampled, dev and test
    # untouched); Figure 3's runs at that ratio are then the table runs themselves
    train_ratio: dict[str, float] = field(default_factory=dict)
    # corpus → systems this budget cannot afford there, and why (the report says so)
    leave_out: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    # corpus → {tuned system: a config in tune_configs/ whose overrides make that row}
    tuned: dict[str, dict[str, str]] = field(default_factory=dict)
    anchor: tuple[str, ...] = ()  # corpora that get the single-window anchor row too

    def seeds_for(self, corpus: str) -> tuple[int, ...]:
        return self.corpus_seeds.get(corpus, self.seeds)

    def epochs_for(self, corpus: str) -> tuple[int, int]:
        return self.corpus_epochs.get(corpus, (self.epochs, self.patience))

    def with_seeds(self, seeds: tuple[int, ...]) -> Budget:
        """The same budget with these seeds for every corpus."""
        return replace(self, seeds=seeds, corpus_seeds={})

    def with_epochs(self, epochs: int) -> Budget:
        """The same budget with one epoch cap for every corpus (patience no longer than it)."""
        return replace(self, epochs=epochs, patience=min(self.patience, epochs), corpus_epochs={})

    def describe(self, corpora: list[str]) -> dict[str, str]:
        """What each corpus gets, in words, for the report."""
        out = {}
        for c in corpora:
            epochs, patience = self.epochs_for(c)
            parts = [f"seeds {', '.join(map(str, self.seeds_for(c)))}",
                     f"at most {epochs} epochs (early stopping after {patience} without a "
                     f"better dev score)"]
            share = self.documents.get(c, 1.0)
            if share < 1:
                parts.append(f"{share:.0%} of the training documents (seeded per run)")
            if c in self.max_length:
                parts.append(f"only sentences of at most {self.max_length[c]} tokens, in train, "
                             f"dev and test alike")
            if c in self.train_ratio:
                parts.append(f"table runs train at neg:pos {self.train_ratio[c]:g} (training "
                             f"negatives subsampled, seeded; dev and test untouched)")
            parts += self.corpus_overrides.get(c, ())
            if c in self.leave_out:
                systems, why = self.leave_out[c]
                parts.append(f"not run: {', '.join(SYSTEMS[s][0] for s in systems)} ({why})")
            for system, config in self.tuned.get(c, {}).items():
                parts.append(f"{SYSTEMS[system][0]} row from tune_configs/{config}")
            if c in self.anchor:
                parts.append(f"an anchor row ({SYSTEMS['anchor'][0]})")
            out[c] = "; ".join(parts)
        return out


BUDGETS = {
    # Sized for a 2-core CPU in about 90 minutes: see the report's wall time. Chinese
    # Literature learns slowly at batch 256 within a few epochs; batches of 64 learn faster
    # for the same compute, and two seeds leave room for its 42 runs.
    "quick": Budget("quick", epochs=20, patience=5,
                    documents={"chinese_literature": 0.1},
                    max_length={"chinese_literature": 80},
                    corpus_epochs={"chinese_literature": (6, 3)},
                    corpus_seeds={"chinese_literature": (1, 2)},
                    corpus_overrides={"chinese_literature": ("train.batch_size=64",)},
                    overrides=SMALL_MODEL),
    # The paper's model on all of both corpora, sized for a 2-core CPU in about 2.5 hours
    # (README, "Budgets"). Chinese Literature's table runs train at neg:pos 10 (an epoch takes
    # a third of the 52:1 one and tests better: README, "Chinese Literature on all of its
    # data"), pick their epoch on the calibrated dev F1, get 4 epochs and one seed. The
    # Eatt-BiGRU cannot share a sentence's encoding: one of its epochs costs more than the
    # budget has for all of its runs.
    "medium": Budget("medium", epochs=30, patience=5,
                     corpus_epochs={"chinese_literature": (4, 4)},
                     corpus_seeds={"chinese_literature": (1,)},
                     train_ratio={"chinese_literature": 10.0},
                     corpus_overrides={"chinese_literature": (
                         "train.select_on=dev_calibrated_f1",)},
                     leave_out={"chinese_literature": (("bigru", "bigru_tag"), (
                         "per-pair encoding: one epoch on a fifth of the training documents "
                         "had not finished after 14 minutes on 2 cores, against 2 minutes for "
                         "the CNN's on all of them; run it on a GPU with --budget full"))},
                     tuned={"conll04": {"tuned": "conll04_tuned.yaml",
                                        "tuned_pcnn": "conll04_tuned_pcnn.yaml"}},
                     anchor=("conll04",)),
    "full": Budget("full", epochs=30, patience=5),
}


@dataclass(frozen=True)
class Run:
    corpus: str
    system: str
    seed: int
    neg_ratio: float | None = None  # a Figure 3 point: train at this neg:pos
    extra: tuple[str, ...] = ()  # the tuned row's values
    train_ratio: float | None = None  # a table run that trains at the budget's neg:pos

    @property
    def key(self) -> str:
        ratio = "" if self.neg_ratio is None else f"-neg{self.neg_ratio:g}"
        return f"{self.corpus}-{self.system}{ratio}-s{self.seed}"

    def overrides(self, budget: Budget) -> list[str]:
        out = [f"{k}={str(v).lower() if isinstance(v, bool) else v}"
               for k, v in SYSTEMS[self.system][1].items()]
        epochs, patience = budget.epochs_for(self.corpus)
        out += [f"train.seed={self.seed}", f"train.epochs={epochs}",
                f"train.patience={patience}"]
        ratio = self.neg_ratio if self.neg_ratio is not None else self.train_ratio
        if ratio is not None:
            out.append(f"train.neg_ratio={ratio:g}")
        share = budget.documents.get(self.corpus)
        if share is not None and share < 1:
            out.append(f"train.documents={share:g}")
        if self.corpus in budget.max_length:
            out.append(f"train.max_length={budget.max_length[self.corpus]}")
        out += budget.corpus_overrides.get(self.corpus, ())
        return out + list(budget.overrides) + list(self.extra)


def plan(budget: Budget, corpora: list[str], systems: list[str] | None = None,
         ratios: tuple[float, ...] = FIG3_RATIOS,
         tuned: dict[str, list[str]] | None = None) -> list[Run]:
    """Every run of the study, each once, in a stable order."""
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown:
        raise RelextError(f"unknown corpus {unknown[0]!r}; choose from {', '.join(CORPORA)}")
    if systems is not None:
        bad = [s for s in systems if s not in SYSTEMS]
        if bad:
            raise RelextError(f"unknown system {bad[0]!r}; choose from {', '.join(SYSTEMS)}")
    wanted = set(systems) if systems is not None else set(SYSTEMS) - {*TUNED, "anchor"}
    # corpus → {tuned system: its values}: the budget's tuned configs, then a search's values
    rows_tuned: dict[str, dict[str, list[str]]] = {}
    for c, configs in budget.tuned.items():
        for s, config in configs.items():
            if systems is None or s in systems:
                rows_tuned.setdefault(c, {})[s] = tuned_overrides(config)
    for c, values in (tuned or {}).items():
        rows_tuned.setdefault(c, {})["tuned"] = values
    runs: list[Run] = []
    for name in corpora:
        c = CORPORA[name]
        left_out = budget.leave_out.get(name, ((), ""))[0]
        rows = list(dict.fromkeys(s for t in c.tables for s in TABLES[t]
                                  if s in wanted and s not in left_out))
        ratio = budget.train_ratio.get(name)
        for seed in budget.seeds_for(name):
            runs += [Run(name, s, seed, train_ratio=ratio) for s in rows]
            if c.fig3:
                runs += [Run(name, s, seed, r) for r in ratios for s in FIG3_SYSTEMS
                         if s in wanted and not (r == ratio and s in rows)]
            runs += [Run(name, s, seed, extra=tuple(values), train_ratio=ratio)
                     for s, values in rows_tuned.get(name, {}).items()]
            if name in budget.anchor and (systems is None or "anchor" in systems):
                runs.append(Run(name, "anchor", seed, train_ratio=ratio))
    return runs


def tuned_overrides(config: str) -> list[str]:
    """The ``overrides`` of a tuned config in ``tune_configs/`` (its tracking settings left
    out: the study tracks its runs itself)."""
    import yaml

    path = CONFIGS / config
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RelextError(f"{path}: cannot read the tuned config ({e.strerror})") from e
    overrides = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise RelextError(f"{path}: field 'overrides' must be a list of KEY=VALUE strings")
    return [o for o in overrides if not o.startswith("tracking.")]
