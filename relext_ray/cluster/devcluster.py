"""A real multi-node Ray cluster on one Linux machine: one network namespace per node.

    relext-devcluster up --workers 2      # prints the addresses, writes a state file
    relext-devcluster exec -- ray status  # run a command beside the head
    relext-devcluster down

Each node is a separate host as far as Ray can tell: its own network namespace with its own
address on a private bridge, its own raylet and object store. The bridge lives in the head's
namespace and the other namespaces hang off it by veth pairs, so the cluster's traffic never
leaves the namespaces created here (the machine's own interfaces are not involved). The head's
namespace also runs an MLflow tracking server. Needs root and iproute2. ``down`` kills every
process in the namespaces and deletes them, so nothing outlives it.

Storage: the nodes share this machine's filesystem, so Tune's ``storage_path``, the prepared
corpus and prediction output are seen by all of them. A real cluster needs NFS or object
storage for the same paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from relext_ray.errors import RelextError

DEFAULT_STATE = Path("/tmp/relext-devcluster.json")
RAY_PORT, DASHBOARD_PORT, MLFLOW_PORT = 6379, 8265, 5000
HEALTH_CHECK = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
                "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3"}


def missing_requirements() -> str | None:
    """Why a dev cluster cannot be made here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    return None


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RelextError(f"{shlex.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res


@dataclass
class DevCluster:
    """What ``up`` made: enough for ``exec`` and ``down`` to find it again."""

    tag: str
    subnet: str  # first three octets, e.g. "10.213.7"
    namespaces: list[str]
    cpus_per_node: float
    temp_root: str
    mlflow_dir: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def head_ns(self) -> str:
        return self.namespaces[0]

    def ip(self, node: int) -> str:
        return f"{self.subnet}.{node + 1}"

    @property
    def ray_address(self) -> str:
        return f"{self.ip(0)}:{RAY_PORT}"

    @property
    def dashboard(self) -> str:
        return f"http://{self.ip(0)}:{DASHBOARD_PORT}"

    @property
    def mlflow(self) -> str:
        return f"http://{self.ip(0)}:{MLFLOW_PORT}"

    def command(self, node: int, argv: list[str]) -> list[str]:
        """``argv`` run inside node ``node``'s namespace with the cluster's environment."""
        env = [f"{k}={v}" for k, v in self.env.items()]
        return ["ip", "netns", "exec", self.namespaces[node], "env", *env, *argv]

    def run(self, argv: list[str], node: int = 0, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(node, argv), **kwargs)

    def popen(self, argv: list[str], node: int = 0, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(node, argv), **kwargs)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> DevCluster:
        if not path.exists():
            raise RelextError(f"no dev cluster state at {path} (run `up` first)")
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def pids(self, node: int | None = None) -> list[int]:
        """Processes in one node's namespace, or in all of them."""
        out: list[int] = []
        for ns in self.namespaces if node is None else [self.namespaces[node]]:
            res = _sh("ip", "netns", "pids", ns, check=False)
            out += [int(p) for p in res.stdout.split()]
        return out

    def kill_node(self, node: int) -> list[int]:
        """SIGKILL every process of one node (its raylet, object store and workers)."""
        pids = self.pids(node)
        _kill(pids)
        return pids

    def ray_start(self, node: int) -> list[str]:
        ray = str(Path(self.env["PATH"].split(":")[0]) / "ray")
        head = ["--head"] if node == 0 else [f"--address={self.ray_address}"]
        return [ray, "start", *head, f"--node-ip-address={self.ip(node)}",
                f"--temp-dir={self.temp_root}-{node}", "--disable-usage-stats"]

    def start_worker(self, node: int) -> None:
        """Start (or, after ``kill_node``, replace) worker node ``node``'s Ray processes."""
        res = self.run([*self.ray_start(node), f"--num-cpus={self.cpus_per_node:g}"],
                       node=node, capture_output=True, text=True)
        if res.returncode:
            raise RelextError(f"ray worker {node} did not start: {res.stderr[-2000:]}")


def _kill(pids: list[int]) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _network(c: DevCluster) -> None:
    head = c.head_ns
    for ns in c.namespaces:
        _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
    _sh("ip", "-n", head, "link", "add", "br0", "type", "bridge")
    _sh("ip", "-n", head, "addr", "add", f"{c.ip(0)}/24", "dev", "br0")
    _sh("ip", "-n", head, "link", "set", "br0", "up")
    for k, ns in enumerate(c.namespaces[1:], start=1):
        # Both ends are created in the head's namespace; one end then moves to the worker's.
        _sh("ip", "-n", head, "link", "add", f"p{k}", "type", "veth", "peer", "name", f"n{k}")
        _sh("ip", "-n", head, "link", "set", f"n{k}", "netns", ns)
        _sh("ip", "-n", head, "link", "set", f"p{k}", "master", "br0")
        _sh("ip", "-n", head, "link", "set", f"p{k}", "up")
        _sh("ip", "-n", ns, "addr", "add", f"{c.ip(k)}/24", "dev", f"n{k}")
        _sh("ip", "-n", ns, "link", "set", f"n{k}", "up")


def up(workers: int = 2, cpus_per_node: float = 1, state: Path = DEFAULT_STATE,
       head_cpus: float | None = None, mlflow: bool = True) -> DevCluster:
    why = missing_requirements()
    if why:
        raise RelextError(f"cannot make a dev cluster here: {why}")
    if state.exists():
        raise RelextError(f"a dev cluster is already recorded in {state}: run `down` first")
    tag = "rx" + secrets.token_hex(3)
    bin_dir = str(Path(sys.executable).parent)
    c = DevCluster(
        tag=tag, subnet=f"10.213.{secrets.randbelow(250) + 1}",
        namespaces=[f"{tag}-h", *(f"{tag}-w{k}" for k in range(1, workers + 1))],
        cpus_per_node=cpus_per_node, temp_root=f"/tmp/{tag}", mlflow_dir=f"/tmp/{tag}-mlflow")
    c.env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token",
             "RAY_ADDRESS": c.ray_address, "RAY_DASHBOARD_ADDRESS": c.dashboard,
             "MLFLOW_TRACKING_URI": c.mlflow, "HOME": os.environ.get("HOME", "/root"),
             # Multi-node on purpose: the namespaces have only the private bridge addresses.
             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
             # A killed node is declared dead after about 3 s instead of Ray's 30 or so.
             **HEALTH_CHECK}
    c.save(state)
    try:
        _network(c)
        _sh(str(Path(bin_dir) / "ray"), "get-auth-token", "--generate", check=False)
        cpus = head_cpus if head_cpus is not None else cpus_per_node
        res = c.run([*c.ray_start(0), f"--port={RAY_PORT}", f"--dashboard-host={c.ip(0)}",
                     f"--dashboard-port={DASHBOARD_PORT}", f"--num-cpus={cpus:g}"],
                    capture_output=True, text=True)
        if res.returncode:
            raise RelextError(f"ray head did not start: {res.stderr[-2000:]}")
        for k in range(1, workers + 1):
            c.start_worker(k)
        if mlflow:
            Path(c.mlflow_dir).mkdir(parents=True, exist_ok=True)
            log = open(Path(c.mlflow_dir) / "server.log", "w")  # noqa: SIM115
            # Tracking only: MLflow's background job runners would cost CPU for nothing.
            c.popen(["env", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
                     str(Path(bin_dir) / "mlflow"), "server", "--host", c.ip(0),
                     "--port", str(MLFLOW_PORT), "--workers", "1",
                     "--backend-store-uri", f"sqlite:///{c.mlflow_dir}/mlflow.db",
                     "--artifacts-destination", f"{c.mlflow_dir}/artifacts"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_nodes(c, workers + 1, 120)
        if mlflow:
            _wait_http_in(c, f"{c.mlflow}/health", 120)
    except BaseException:
        down(state)
        raise
    return c


def _wait_http_in(c: DevCluster, url: str, seconds: float) -> None:
    """Poll ``url`` from inside the head's namespace (the only place it can be reached)."""
    code = ("import sys,time,urllib.request\n"
            f"end=time.time()+{seconds}\n"
            "while time.time()<end:\n"
            "    try:\n"
            f"        urllib.request.urlopen({url!r}, timeout=2); sys.exit(0)\n"
            "    except OSError: time.sleep(0.5)\n"
            "sys.exit(1)\n")
    if c.run([sys.executable, "-c", code]).returncode:
        raise RelextError(f"{url} did not answer within {seconds:.0f} s")


def wait_for_nodes(c: DevCluster, n: int, seconds: float) -> None:
    code = ("import ray,sys,time\n"
            "ray.init(log_to_driver=False)\n"
            f"end=time.time()+{seconds}\n"
            f"while sum(x['Alive'] for x in ray.nodes())<{n}:\n"
            "    if time.time()>end: sys.exit(1)\n"
            "    time.sleep(0.5)\n")
    if c.run([sys.executable, "-c", code], capture_output=True).returncode:
        raise RelextError(f"fewer than {n} Ray nodes joined within {seconds:.0f} s")


def down(state: Path = DEFAULT_STATE) -> None:
    """Kill everything in the cluster's namespaces, delete them, remove its files."""
    if not state.exists():
        return
    c = DevCluster.load(state)
    for _ in range(3):
        pids = c.pids()
        if not pids:
            break
        _kill(pids)
        time.sleep(0.5)
    for ns in c.namespaces:
        _sh("ip", "netns", "del", ns, check=False)
    for k in range(len(c.namespaces)):
        shutil.rmtree(f"{c.temp_root}-{k}", ignore_errors=True)
    shutil.rmtree(c.mlflow_dir, ignore_errors=True)
    state.unlink(missing_ok=True)
