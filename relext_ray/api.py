"""The Python API: ``relext_ray.load(uri).extract(texts)``.

    import relext_ray
    extractor = relext_ray.load("models:/relext-demo@champion")
    extractor.extract(["Anna Berg works for Acme Corp in Oslo."])

``uri``: a checkpoint directory, ``runs:/<run_id>/model`` or ``models:/<name>/<version>``
(``@<alias>``), read from ``MLFLOW_TRACKING_URI`` or the local ``mlruns.db``.
"""

from __future__ import annotations

from pathlib import Path

from relext_ray.prediction.extractor import Extractor
from relext_ray.prediction.predictor import Predictor
from relext_ray.tracking.runs import resolve_model


def load(uri: str | Path, device: str = "cpu") -> Extractor:
    """A model (and its tagger) ready to ``extract`` relations from texts, in this process.

    Args:
        uri: A checkpoint directory, or a ``runs:/`` or ``models:/`` URI.
        device: ``cpu``, ``cuda``, ``cuda:N``.

    Returns:
        An ``Extractor``; see ``Extractor.extract``.
    """
    return Extractor(Predictor.load(resolve_model(uri), device))
