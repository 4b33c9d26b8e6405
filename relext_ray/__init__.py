"""relext_ray: relation extraction on imbalanced data (Ye et al., ACL 2019) on Ray."""

import os as _os

__version__ = "0.1.0"
__all__ = ["load"]

# Without RAY_ADDRESS there is no cluster to join, and a local Ray instance should listen on
# 127.0.0.1 only. Ray reads this setting once, when it is first imported, so it is set here,
# before any module of the package imports Ray; a value set in the environment is kept.
if not _os.environ.get("RAY_ADDRESS"):
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def load(uri, device="cpu"):
    """``relext_ray.api.load``: a model ready to ``extract`` relations from raw texts or
    records in this process (no Ray); imported on first use, so ``import relext_ray`` stays
    light."""
    from relext_ray.api import load as _load

    return _load(uri, device)
