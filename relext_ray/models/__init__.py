"""Encoders and the multi-task relation model."""

from relext_ray.config import ModelConfig
from relext_ray.models.encoders import ENCODERS, PCNN, EattBiGRU, MultiWindowCNN
from relext_ray.models.model import Batch, RelationModel

__all__ = ["ENCODERS", "PCNN", "Batch", "EattBiGRU", "ModelConfig", "MultiWindowCNN",
           "RelationModel"]
