"""The container and cluster files: they parse, and every command and path they name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from relext_ray.config import load_search

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
REPO_PATH = re.compile(r"\b((?:jobs|tune_configs|relext_ray|docker)/[\w./-]+\.(?:py|yaml))")


def _texts() -> dict[Path, str]:
    return {p: p.read_text() for p in sorted(DOCKER.rglob("*")) if p.is_file()}


def test_every_referenced_repository_path_exists():
    seen = set()
    for path, text in _texts().items():
        for ref in REPO_PATH.findall(text):
            seen.add(ref)
            assert (ROOT / ref).exists(), f"{path.name} refers to missing {ref}"
    assert {"jobs/tune.py", "tune_configs/smoke.yaml", "tune_configs/conll04_search.yaml"} <= seen


def test_dockerfile_copies_existing_paths_onto_rays_image():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG RAY_IMAGE=rayproject/ray:[\w.-]+-cpu$", text, re.M)
    assert "rayproject/ray:" in text and "-gpu" in text
    copies = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M)
    sources = [s for line in copies for s in line.split()]
    assert sources and all((ROOT / s).exists() for s in sources)


def test_compose_topology_and_commands():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"mlflow", "ray-head", "ray-worker"}
    head = shlex.split(services["ray-head"]["command"])
    worker = shlex.split(services["ray-worker"]["command"])
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert worker[:2] == ["ray", "start"] and "--address=ray-head:6379" in worker
    # the dev cluster's topology: a head and two workers of one CPU each
    assert services["ray-worker"]["deploy"]["replicas"] == 2
    assert "--num-cpus=1" in head and "--num-cpus=1" in worker
    assert services["mlflow"]["command"].split()[:2] == ["mlflow", "server"]
    for name in ("ray-head", "ray-worker"):
        assert services[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert "shared:/shared" in services[name]["volumes"]
    # published ports stay on the host's loopback
    for svc in services.values():
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", []))


def _gpu_groups(spec: dict) -> list[dict]:
    return [g for g in spec["workerGroupSpecs"]
            if any("nvidia.com/gpu" in c["resources"]["limits"]
                   for c in g["template"]["spec"]["containers"])]


def test_kuberay_manifests():
    cluster = yaml.safe_load((DOCKER / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((DOCKER / "kuberay" / "rayjob.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert _gpu_groups(cluster["spec"]) and _gpu_groups(job["spec"]["rayClusterSpec"])
    entry = shlex.split(job["spec"]["entrypoint"])
    assert entry[:2] == ["python", "jobs/tune.py"] and (ROOT / entry[1]).exists()
    config = entry[entry.index("--config") + 1]
    search = load_search(ROOT / config)
    assert 0 < search.search.resources_per_trial.gpu < 1  # trials share the GPUs
