"""The checkpoint format: everything prediction needs without the training data."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from relext_ray.config import ExperimentConfig, TaggerConfig
from relext_ray.data.prepared import PreparedData
from relext_ray.errors import RelextError
from relext_ray.instances.pairs import TypeFilter
from relext_ray.instances.vocab import Vocab, Vocabularies
from relext_ray.model.ensemble import SeedEnsemble
from relext_ray.model.relation import RelationModel, build_model
from relext_ray.model.tagger import EntityTagger, TaggerVocab


@dataclass
class Tagger:
    """A trained entity tagger and the vocabularies that feed it."""

    model: EntityTagger
    vocab: TaggerVocab


def _weights(path: Path, device: str | torch.device) -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RelextError(f"{path} is not a relext_ray model file (it holds objects "
                          f"other than tensors, which are never loaded): "
                          f"{str(exc).splitlines()[0]}") from None


def save_tagger(directory: Path, tagger: Tagger) -> None:
    """``tagger.pt`` (weights) and ``tagger.json`` (sizes, characters) beside the relation
    model: one checkpoint, and so one MLflow model, carries both."""
    torch.save(tagger.model.state_dict(), directory / "tagger.pt")
    spec = {"config": json.loads(tagger.model.cfg.model_dump_json()),
            "chars": list(tagger.vocab.chars.items), "lowercase": tagger.vocab.lowercase,
            "words": list(tagger.vocab.words.items)}
    (directory / "tagger.json").write_text(json.dumps(spec, ensure_ascii=False) + "\n",
                                           encoding="utf-8")


def load_tagger(directory: Path, vocabs: Vocabularies,
                device: str | torch.device = "cpu") -> Tagger | None:
    """The checkpoint's tagger, or None when it was trained without one."""
    if not (directory / "tagger.json").exists():
        return None
    spec = json.loads((directory / "tagger.json").read_text(encoding="utf-8"))
    vocab = TaggerVocab(Vocab(tuple(spec["words"])), Vocab(tuple(spec["chars"])), vocabs.tags,
                        bool(spec["lowercase"]))
    model = EntityTagger(TaggerConfig.model_validate(spec["config"]), len(vocab.words),
                         len(vocab.chars), len(vocab.tags))
    model.load_state_dict(_weights(directory / "tagger.pt", device))
    model.to(device).eval()
    return Tagger(model, vocab)


def save_checkpoint(directory: Path, model: RelationModel | SeedEnsemble, cfg: ExperimentConfig,
                    data: PreparedData, calibrated_theta: float | None,
                    tagger: Tagger | None = None,
                    ensemble: dict[str, Any] | None = None) -> Path:
    """Everything ``predict`` needs without the training data: weights, config, vocabularies,
    type filter, labels and thresholds, and the entity tagger if one was trained.

    An ensemble (``ensemble``: its members' count, sources and thetas, kept in ``meta.json``)
    is saved like one model: all members' weights in ``model.pt``, the members' common config,
    and its dev-calibrated theta as the one prediction uses."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / "model.pt")
    (directory / "config.yaml").write_text(
        yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False), encoding="utf-8")
    if (directory / "vocab").exists():
        shutil.rmtree(directory / "vocab")
    shutil.copytree(data.path / "vocab", directory / "vocab")
    shutil.copy2(data.path / "type_filter.json", directory / "type_filter.json")
    train = data.splits.get("train")
    meta = {"labels": data.labels, "max_distance": data.max_distance, "mode": cfg.data.mode,
            # the theta prediction uses: the config's, or for a model whose epoch was chosen at
            # its calibrated theta, that one (the pair the selection measured)
            "theta": calibrated_theta if (cfg.train.select_on == "dev_calibrated_f1"
                                          or ensemble is not None)
            and calibrated_theta is not None else cfg.loss.theta,
            "loss_theta": cfg.loss.theta, "calibrated_theta": calibrated_theta,
            "loss_variant": cfg.loss.variant,
            # the longest sentence training saw: prediction's default record-length limit
            "max_train_tokens": int(train.sentences.lengths.max())
            if train is not None and len(train.sentences) else None}
    if ensemble is not None:
        meta["ensemble"] = ensemble
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for name in ("tagger.pt", "tagger.json"):
        (directory / name).unlink(missing_ok=True)
    if tagger is not None:
        save_tagger(directory, tagger)
    return directory


@dataclass
class Checkpoint:
    model: RelationModel | SeedEnsemble
    config: ExperimentConfig
    vocabs: Vocabularies
    type_filter: TypeFilter
    meta: dict[str, Any]
    tagger: Tagger | None = None


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    d = Path(directory)
    if not (d / "model.pt").exists():
        raise RelextError(f"not a relext_ray checkpoint (no model.pt): {d}")
    cfg = ExperimentConfig.model_validate(yaml.safe_load((d / "config.yaml").read_text("utf-8")))
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    vocabs = Vocabularies.load(d / "vocab")
    model: RelationModel | SeedEnsemble
    if meta.get("ensemble"):
        n = int(meta["ensemble"]["members"])
        model = SeedEnsemble([build_model(cfg.model, vocabs, len(meta["labels"]),
                                          meta["max_distance"]) for _ in range(n)],
                             [0.0] * n, cfg.loss.variant)  # (the shifts are in model.pt)
    else:
        model = build_model(cfg.model, vocabs, len(meta["labels"]), meta["max_distance"])
    model.load_state_dict(_weights(d / "model.pt", device))
    model.to(device).eval()
    return Checkpoint(model, cfg, vocabs, TypeFilter.load(d / "type_filter.json"), meta,
                      load_tagger(d, vocabs, device))
