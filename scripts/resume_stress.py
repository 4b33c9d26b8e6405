"""Kill a search's driver at a random moment, resume it, and check that the resume was exact.

    python scripts/resume_stress.py 10                 # against the Ray head in RAY_ADDRESS
    python scripts/resume_stress.py 5 --cluster        # on a three-node dev cluster (root, ip)

Run ``scripts/resume-stress.sh`` instead: it starts the Ray head (single node) or checks what
the dev cluster needs. Each run starts the smoke search (4 trials, 2 at a time), SIGKILLs its
driver at a moment drawn from a seeded generator — right after the k-th trial's finish marker
appears (plus 0-1.5 s), or a delay after the search's state first exists —, in about a third of
the runs kills the resumed driver too (1-10 s after it started), then runs ``--resume`` to the
end and checks:

- Tune holds ``num_samples`` trials, all TERMINATED;
- MLflow holds one parent run with ``num_samples`` trial runs, one per Tune trial, all FINISHED;
- every trial run logged each epoch once (steps 1..n, no repeats);
- no trial that was finished when the driver died ran again (its steps are unchanged), and
  none was dropped;
- the exported Optuna study holds ``num_samples`` trials, each COMPLETE or PRUNED, one per Tune
  trial, with no two of the same parameters.

The last line is ``resume-stress: K of N exact``; the exit code is 0 only when K = N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "stress-answer: "
SAMPLES = 4


def inspect(tracking_uri: str, experiment: str, exp_dir: str) -> dict:
    """Every record of the search: MLflow runs with their steps, Tune's trials, the study."""
    import mlflow
    import optuna

    client = mlflow.MlflowClient(tracking_uri)
    out: dict = {"runs": [], "tune": None, "study": None}
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        for r in client.search_runs([exp.experiment_id], max_results=1000):
            history = client.get_metric_history(r.info.run_id, "dev_f1")
            out["runs"].append({"id": r.info.run_id, "name": r.info.run_name,
                                "status": r.info.status, "tags": r.data.tags,
                                "steps": sorted(m.step for m in history)})
    path = Path(exp_dir)
    if any(path.glob("experiment_state-*.json")):
        from ray.tune import ExperimentAnalysis

        out["tune"] = [{"id": t.trial_id, "status": t.status}
                       for t in ExperimentAnalysis(str(path)).trials]
        out["folders"] = sorted(d.name for d in path.iterdir() if (d / "params.json").exists())
    db = path / "optuna.db"
    if db.exists():
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{db}"
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        out["study"] = [{"state": t.state.name, "trial_id": t.user_attrs.get("tune_trial_id"),
                         "params": t.params}
                        for name in names
                        for t in optuna.load_study(study_name=name, storage=storage).trials]
    return out


def search_args(work: Path, i: int) -> list[str]:
    return [sys.executable, str(ROOT / "jobs" / "tune.py"),
            "--config", str(ROOT / "tune_configs" / "smoke.yaml"),
            "--set", f"search.storage_path={work / f'run{i}' / 'tune'}",
            "--set", f"search.num_samples={SAMPLES}",
            "--set", f"experiment.data.data_dir={ROOT / 'relext_ray' / 'corpus' / 'sample_data'}",
            "--set", f"experiment.data.prepared_dir={work / 'prepared'}",
            "--set", f"experiment.train.checkpoint_dir={work / f'run{i}' / 'best'}",
            "--set", f"experiment.tracking.experiment=relext-stress-{i}",
            "--set", "search.register_as=null"]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


class Local:
    """The search driver as a plain process beside a Ray head (RAY_ADDRESS)."""

    def __init__(self, work: Path) -> None:
        if not os.environ.get("RAY_ADDRESS"):
            raise SystemExit("RAY_ADDRESS is not set: run scripts/resume-stress.sh")
        self.tracking = f"sqlite:///{work / 'mlflow.db'}"
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": self.tracking}

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        fh = open(log, "w")  # noqa: SIM115 (the child holds it)
        return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=fh,
                                stderr=subprocess.STDOUT)

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    def succeeded(self, proc: subprocess.Popen, log: Path) -> bool:
        return proc.returncode == 0

    def inspect(self, experiment: str, exp_dir: Path) -> dict:
        return inspect(self.tracking, experiment, str(exp_dir))

    def close(self) -> None:
        pass


class Cluster:
    """The search as a ``ray job submit`` job on a three-node dev cluster; MLflow on its head."""

    def __init__(self, work: Path) -> None:
        from relext_ray.cluster import devcluster

        why = devcluster.missing_requirements()
        if why:
            raise SystemExit(f"no dev cluster: {why}")
        self.devcluster = devcluster
        self.state = work / "devcluster.json"
        self.c = devcluster.up(workers=2, cpus_per_node=1, state=self.state)
        self.tracking = self.c.mlflow

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        fh = open(log, "w")  # noqa: SIM115 (the child holds it)
        return self.c.popen(["ray", "job", "submit", "--address", self.c.dashboard, "--",
                             "python", *argv[1:]], stdout=fh, stderr=subprocess.STDOUT)

    def kill(self, proc: subprocess.Popen) -> None:
        # The job's entrypoint (a shell and the Python driver under it), not the submitting CLI.
        for pid in self.c.pids(0):
            cmd = _cmdline(pid)
            if b"jobs/tune.py" in cmd and b"job submit" not in cmd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=120)

    def succeeded(self, proc: subprocess.Popen, log: Path) -> bool:
        # `ray job submit` prints the job's fate; its exit code does not always carry it.
        return proc.returncode == 0 and "succeeded" in log.read_text()[-2000:]

    def inspect(self, experiment: str, exp_dir: Path) -> dict:
        res = self.c.run([sys.executable, __file__, "inspect", self.tracking, experiment,
                          str(exp_dir)], capture_output=True, text=True, timeout=300)
        lines = [x for x in res.stdout.splitlines() if x.startswith(ANSWER)]
        if res.returncode != 0 or len(lines) != 1:
            raise RuntimeError(res.stdout[-2000:] + res.stderr[-3000:])
        return json.loads(lines[0].removeprefix(ANSWER))

    def close(self) -> None:
        self.devcluster.down(self.state)


def wait_for_kill_moment(rng: random.Random, exp_dir: Path, proc: subprocess.Popen,
                         timeout: float = 600) -> str:
    """Wait for the drawn moment; return what it was. The clock starts once the search has
    written its first state (before that there is nothing to resume)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(exp_dir.glob("experiment_state-*.json")):
            break
        time.sleep(0.05)
    if rng.random() < 0.6:
        k, extra = rng.randint(1, SAMPLES - 1), rng.uniform(0.0, 1.5)
        while time.time() < deadline and proc.poll() is None:
            if len(list((exp_dir / "finished").glob("*.json"))) >= k:
                time.sleep(extra)
                return f"{extra:.2f} s after finish marker {k}"
            time.sleep(0.02)
        return "never (the driver ended first)"
    delay = rng.uniform(0.0, 25.0)
    end = time.time() + delay
    while time.time() < min(end, deadline) and proc.poll() is None:
        time.sleep(0.05)
    return f"{delay:.1f} s after the first saved state"


def check(before: dict, after: dict) -> list[str]:
    """What is not exact about a resumed search (empty: it was exact)."""
    problems = []
    tune_trials = after["tune"] or []
    tune_ids = {t["id"] for t in tune_trials}
    if len(tune_trials) != SAMPLES or any(t["status"] != "TERMINATED" for t in tune_trials):
        problems.append(f"Tune trials: {tune_trials}")
    if len(after.get("folders", [])) != SAMPLES:
        problems.append(f"{len(after.get('folders', []))} trial folders")
    parents = [r for r in after["runs"] if r["name"] == "search-smoke"]
    if len(parents) != 1:
        return [*problems, f"{len(parents)} parent runs"]
    trial_runs = [r for r in after["runs"] if "trial_id" in r["tags"]
                  and r["tags"].get("mlflow.parentRunId") == parents[0]["id"]]
    ids = [r["tags"]["trial_id"] for r in trial_runs]
    if len(ids) != SAMPLES or set(ids) != tune_ids:
        problems.append(f"MLflow trial runs {sorted(ids)} != Tune trials {sorted(tune_ids)}")
    for r in trial_runs:
        if r["status"] != "FINISHED":
            problems.append(f"run {r['name']} is {r['status']}")
        if r["steps"] != list(range(1, len(r["steps"]) + 1)):
            problems.append(f"run {r['name']} logged steps {r['steps']}")
    now = {r["tags"]["trial_id"]: r for r in trial_runs}
    for r in before["runs"]:
        if "trial_id" not in r["tags"] or r["status"] != "FINISHED":
            continue
        tid = r["tags"]["trial_id"]
        if tid not in now:
            problems.append(f"finished trial {tid} was dropped")
        elif now[tid]["steps"] != r["steps"]:
            problems.append(f"finished trial {tid} ran again: {r['steps']} -> {now[tid]['steps']}")
    study = after["study"] or []
    if len(study) != SAMPLES or any(t["state"] not in ("COMPLETE", "PRUNED") for t in study):
        problems.append(f"study trials: {[t['state'] for t in study]}")
    if {t["trial_id"] for t in study} != tune_ids:
        problems.append("study trials are not Tune's trials")
    if len({json.dumps(t["params"], sort_keys=True) for t in study}) != len(study):
        problems.append("two study trials have the same parameters")
    return problems


def stress(n: int, cluster: bool, seed: int, keep: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="resume-stress-"))
    where = Cluster(work) if cluster else Local(work)
    exact = 0
    try:
        for i in range(n):
            rng = random.Random(seed * 1000 + i)
            args = search_args(work, i)
            exp_dir = work / f"run{i}" / "tune" / "smoke"
            experiment = f"relext-stress-{i}"
            t0 = time.time()
            first = where.start(args, work / f"run{i}-first.log")
            moment = wait_for_kill_moment(rng, exp_dir, first)
            if first.poll() is None:
                where.kill(first)
                killed = True
            else:
                killed = False
            befores = [where.inspect(experiment, exp_dir)]
            if killed and rng.random() < 0.3:
                # Kill the resumed driver too, early (before or just after its first snapshot).
                early = rng.uniform(1.0, 10.0)
                again = where.start([*args, "--resume"], work / f"run{i}-again.log")
                end = time.time() + early
                while time.time() < end and again.poll() is None:
                    time.sleep(0.05)
                if again.poll() is None:
                    where.kill(again)
                    moment += f", and its resume {early:.1f} s after it started"
                    befores.append(where.inspect(experiment, exp_dir))
            second = where.start([*args, "--resume"], work / f"run{i}-second.log")
            try:
                second.wait(timeout=900)
            except subprocess.TimeoutExpired:
                where.kill(second)
            problems = [] if where.succeeded(second, work / f"run{i}-second.log") else \
                [f"the resumed search failed (see {work / f'run{i}-second.log'})"]
            if not problems:
                after = where.inspect(experiment, exp_dir)
                problems = sorted({p for before in befores for p in check(before, after)})
            finished = sum(1 for r in befores[0]["runs"]
                           if "trial_id" in r["tags"] and r["status"] == "FINISHED")
            verdict = "exact" if not problems else "NOT exact: " + "; ".join(problems)
            exact += not problems
            print(f"run {i + 1}/{n}: driver {'killed' if killed else 'not killed'} {moment} "
                  f"({finished} trials finished then), {time.time() - t0:.0f} s: {verdict}",
                  flush=True)
    finally:
        where.close()
        if not keep and exact == n:
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            print(f"logs and state kept in {work}")
    print(f"resume-stress: {exact} of {n} exact", flush=True)
    return 0 if exact == n else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["inspect"]:
        print(ANSWER + json.dumps(inspect(*argv[1:4])), flush=True)
        return 0
    p = argparse.ArgumentParser(prog="scripts/resume-stress.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", type=int, help="how many kill-and-resume runs")
    p.add_argument("--cluster", action="store_true", help="on a three-node dev cluster")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    p.add_argument("--keep", action="store_true", help="keep the runs' folders and logs")
    args = p.parse_args(argv)
    return stress(args.n, args.cluster, args.seed, args.keep)


if __name__ == "__main__":
    sys.exit(main())
