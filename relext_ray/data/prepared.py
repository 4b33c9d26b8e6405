"""A prepared corpus in memory, prepared on first use, and the subsets a run trains on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from relext_ray.config import ExperimentConfig, TrainConfig
from relext_ray.data.arrays import LAYOUT, SplitArrays, load_split
from relext_ray.data.subsample import short_sentences, training_index
from relext_ray.errors import RelextError
from relext_ray.instances.pairs import TypeFilter
from relext_ray.instances.vocab import Vocabularies
from relext_ray.locks import preparing


@dataclass
class PreparedData:
    """A prepared corpus in memory: vocabularies, type filter, statistics and split arrays."""

    path: Path
    vocabs: Vocabularies
    type_filter: TypeFilter
    stats: dict[str, dict[str, int]]
    max_distance: int
    splits: dict[str, SplitArrays] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.vocabs.labels.items)

    def missed_positives(self, split: str) -> int:
        """Positives the type filter removed: false negatives of any model."""
        return self.stats.get(split, {}).get("filtered_out_positives", 0)

    @classmethod
    def load(cls, path: Path, splits: tuple[str, ...] = ("train", "dev", "test")) -> PreparedData:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        stats = json.loads((path / "stats.json").read_text(encoding="utf-8"))
        data = cls(path, Vocabularies.load(path / "vocab"), TypeFilter.load(path / "type_filter.json"),
                   stats, int(meta["config"]["max_distance"]))
        for s in splits:
            if s in stats and (path / s).is_dir():
                data.splits[s] = load_split(path, s)
        return data


def capped(a: SplitArrays, max_length: int | None) -> SplitArrays:
    """Only the instances of sentences of at most ``max_length`` tokens (all without a cap)."""
    return a if max_length is None else a.subset(short_sentences(a.lengths, max_length))


def training_subset(train: SplitArrays, t: TrainConfig, epoch: int = 1) -> SplitArrays:
    """The training instances a run sees in ``epoch``: ``train.documents`` and
    ``train.neg_ratio``; a fresh draw of the negatives each epoch with
    ``train.resample_negatives`` (the same draw throughout without)."""
    if t.documents == 1 and t.neg_ratio is None:
        return train
    return train.subset(training_index(train.labels, train.sentence_ids, t.documents,
                                       t.neg_ratio, t.seed,
                                       epoch if t.resample_negatives else 1))


def ensure_prepared(cfg: ExperimentConfig) -> Path:
    """Prepare the corpus with Ray Data unless a matching preparation exists.

    Runs started side by side on one config take turns: the first prepares, the others wait
    for it and then read what it wrote.
    """
    out = cfg.prepared_dir
    with preparing(out):
        if _is_prepared(out, cfg):
            return out
        from relext_ray.data.pipeline import prepare  # Ray only when preparing

        prepare(cfg.prepare_config())
    return out


def _is_prepared(out: Path, cfg: ExperimentConfig) -> bool:
    """Whether ``out`` holds a finished preparation of this layout (``meta.json`` comes last);
    one made with other settings is an error, never silently replaced."""
    meta_file = out / "meta.json"
    if not meta_file.exists():
        return False
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("layout") != LAYOUT:
        return False
    have = {"training_splits": ["train"], **meta["config"]}
    want = cfg.prepare_config().model_dump(mode="json")
    for key in ("corpus", "mode", "max_distance", "min_freq", "lowercase", "training_splits"):
        if have[key] != want[key]:
            raise RelextError(f"{out} was prepared with {key}={have[key]!r}, the config asks "
                              f"for {want[key]!r}: remove it or set data.prepared_dir")
    return True
