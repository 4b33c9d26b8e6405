"""The folder of a job run as Tune trials (a search, the paper study): Tune's state, the trial
checkpoints and our record of the job (its MLflow parent run, tracking store and config).

Starting and resuming are the same for every such job: a new job refuses an existing folder
unless asked to replace it; a resumed one needs the record, Tune's state, the same config and
the same tracking store.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from relext_ray.config import flatten
from relext_ray.errors import RelextError

Normalize = Callable[[dict[str, Any]], dict[str, Any]]


def changed_settings(was: dict[str, Any], now: dict[str, Any],
                     normalize: Normalize | None = None) -> list[str]:
    """The settings (dotted keys) in which a job's recorded config and the requested one differ.

    ``normalize`` reads the recorded config as this version of the package would (validated,
    defaults filled in), so a setting added since the job started, left at its default, is no
    difference; a recorded config this version cannot read is reported as one.
    """
    if normalize is not None:
        try:
            was = normalize(was)
        except Exception as exc:  # validation: a setting removed or renamed since
            return [f"(the recorded config no longer validates: {str(exc).splitlines()[0]})"]
    a, b = flatten(was), flatten(now)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def start(folder: Path, record_name: str, resume: bool, overwrite: bool, *, what: str,
          tracking_uri: str, config: dict[str, Any] | None = None,
          normalize: Normalize | None = None) -> dict[str, Any] | None:
    """Check the job folder against the request.

    Args:
        folder: The job's folder (Tune's experiment directory).
        record_name: The file name of our record in it.
        resume: Continue the job in ``folder``.
        overwrite: Replace a job already in ``folder``.
        what: What the job is called in messages ("search", "study").
        tracking_uri: The MLflow tracking store in use now.
        config: The job's config as JSON data; a resumed job must have the same.
        normalize: Reads a recorded config as the current version would (``changed_settings``).

    Returns:
        The record of the job to resume, or None for a new job (the folder is then empty).
    """
    record_path = folder / record_name
    if resume:
        if not record_path.exists() or not tune.Tuner.can_restore(str(folder)):
            raise RelextError(f"nothing to resume at {folder}: no {what} was started there "
                              "(run without --resume)")
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if config is not None:
            changed = changed_settings(record["config"], config, normalize)
            if changed:
                raise RelextError(f"--resume needs the config the {what} at {folder} started "
                                  f"with; these values differ: {', '.join(changed)}")
        if record["tracking_uri"] != tracking_uri:
            raise RelextError(f"the {what} at {folder} is tracked in {record['tracking_uri']}; "
                              f"set MLFLOW_TRACKING_URI to it to resume (now {tracking_uri})")
        return record
    if folder.exists():
        if not overwrite:
            raise RelextError(f"a {what} already exists at {folder}: continue it with --resume "
                              "or replace it with --overwrite (or choose another storage path)")
        shutil.rmtree(folder)
    return None


def write_record(folder: Path, record_name: str, parent_run_id: str, tracking_uri: str,
                 config: dict[str, Any] | None = None) -> None:
    """What a resumed job needs to find its MLflow parent run and check its config."""
    record: dict[str, Any] = {"parent_run_id": parent_run_id, "tracking_uri": tracking_uri}
    if config is not None:
        record["config"] = config
    (folder / record_name).write_text(json.dumps(record, indent=2), encoding="utf-8")
