"""The import contract: the package is a stack of stages in data-path order.

Read from the source (every import, at module level or inside a function), so it holds for
code paths no other test runs:

- no import cycle between modules;
- a stage imports only itself and the stages below it (``STAGES``, bottom first);
- the package root re-exports the public API (``relext_ray.load`` from ``relext_ray.api``, a
  command-level module, imported when called): the one import allowed upwards;
- ``ray`` only in the Ray glue modules, ``mlflow`` only in ``tracking/`` and ``cli/``
  (the exact lists below); ``model/`` and ``training/`` import neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "relext_ray"

# Bottom first. The top-level modules errors, registry, config and console are the shared
# base; the two top-level shims (python -m relext_ray.predict / .train) belong to the commands.
STAGES = ("base", "cluster", "corpus", "instances", "data", "model", "training", "prediction",
          "tracking", "search", "reproduce", "cli")
BASE = {"errors", "registry", "config", "console", "locks", "files", "__init__"}
SHIMS = {"predict", "train", "api"}
ROOT_EXPORTS = {("relext_ray", "relext_ray.api")}
RAY_GLUE = {
    "relext_ray.cluster.connect",  # joining a cluster; what a worker was given
    "relext_ray.data.pipeline",  # the Ray Data prepare pipeline
    "relext_ray.prediction.job",  # the Ray Data batch-prediction job and its replicas
    "relext_ray.tracking.trials",  # a Ray Tune callback that writes MLflow runs
    "relext_ray.search.space",  # Tune sampling domains
    "relext_ray.search.trainable",  # the Tune trainable
    "relext_ray.search.resume",  # Tune's snapshot, searcher and callbacks on resume
    "relext_ray.search.tuner",  # the Tuner
    "relext_ray.search.progress",  # the search's console lines, a Tune callback
    "relext_ray.search.folder",  # Tune's experiment folder
    "relext_ray.reproduce.runner",  # the study's runs as Tune trials
}
MLFLOW_STAGES = {"tracking", "cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    if parts[1] in SHIMS and len(parts) == 2:
        return "cli"
    return parts[1]


def imports(module: str) -> set[str]:
    """Every module ``module`` imports (package modules resolved to the deepest one)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if f"{node.module}.{a.name}" in MODULES)
    return found


# (the root's export is imported when called, after the package has loaded: not a cycle)
GRAPH = {m: {i for i in imports(m) if i in MODULES and i != m and (m, i) not in ROOT_EXPORTS}
         for m in MODULES}


def test_every_module_has_a_stage():
    assert {stage(m) for m in MODULES} <= set(STAGES)


def test_no_import_cycle():
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = [*path[path.index(n):], n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


def test_stages_import_only_downwards():
    rank = {s: i for i, s in enumerate(STAGES)}
    upward = sorted(f"{m} ({stage(m)}) imports {n} ({stage(n)})"
                    for m, deps in GRAPH.items() for n in deps
                    if rank[stage(n)] > rank[stage(m)])
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize(("library", "allowed"), [
    ("ray", lambda m: m in RAY_GLUE),
    ("mlflow", lambda m: stage(m) in MLFLOW_STAGES),
])
def test_ray_and_mlflow_stay_in_their_rooms(library, allowed):
    users = sorted(m for m in MODULES
                   if any(i == library or i.startswith(library + ".") for i in imports(m)))
    assert [m for m in users if not allowed(m)] == []
    assert users, f"no module imports {library}: the check would pass vacuously"


def test_model_and_training_import_neither_ray_nor_mlflow():
    for m in MODULES:
        if stage(m) in ("model", "training"):
            assert not {i.split(".")[0] for i in imports(m)} & {"ray", "mlflow"}, m


def test_every_registered_name_has_its_implementation():
    import torch

    from relext_ray import registry
    from relext_ray.config import ModelConfig
    from relext_ray.model.encoders import ENCODERS
    from relext_ray.model.losses import classification_loss
    from relext_ray.registry import LOSS_VARIANTS

    assert set(ENCODERS) == set(registry.ENCODERS)
    for name in registry.ENCODERS:
        encoder = ENCODERS[name](8, ModelConfig(encoder=name, windows=(2, 3), filters=2,
                                                pcnn_filters=2, gru_hidden=2))
        out = encoder(torch.zeros(1, 5, 8), torch.ones(1, 5, dtype=torch.bool),
                      torch.tensor([[0, 1, 2, 3]]))
        assert out.shape == (1, encoder.out_dim)
    scores, other, labels = torch.zeros(2, 3), torch.zeros(2), torch.tensor([0, 2])
    for variant in LOSS_VARIANTS:
        assert classification_loss(variant, scores, other, labels, 2.5, 0.5, 2.0).dim() == 0
    from relext_ray.config import TrainConfig
    from relext_ray.training.optimizers import OPTIMIZERS, make_optimizer

    assert set(OPTIMIZERS) == set(registry.OPTIMIZERS)
    for name in registry.OPTIMIZERS:
        opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], TrainConfig(optimizer=name))
        assert type(opt).__name__.lower() == name
    from relext_ray.training.optimizers import LR_SCHEDULES

    assert set(LR_SCHEDULES) == set(registry.LR_SCHEDULES)


def test_the_repository_paths_the_package_names_exist():
    from relext_ray.cli import demo, reproduce
    from relext_ray.reproduce import study

    assert demo.CONFIG.is_file()
    assert (study.CONFIGS / "conll04.yaml").is_file()
    assert (reproduce.ROOT / "docs").is_dir()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "False"),  # a local instance: loopback only
    ({"RAY_ADDRESS": "10.0.0.1:6379"}, "True"),  # joining a cluster: Ray's own default
    ({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}, "True"),  # the user's setting wins
])
def test_a_local_ray_instance_stays_on_loopback(env, expected):
    """Ray reads the setting when first imported: the package sets it before any import of Ray
    (checked in a fresh interpreter; nothing connects anywhere)."""
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    code = ("import relext_ray.cli.predict, ray._private.ray_constants as c; "
            "print(c.ENABLE_RAY_CLUSTER)")
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected
