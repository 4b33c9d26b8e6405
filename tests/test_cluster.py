"""A real multi-node Ray cluster: one network namespace per node (``relext_ray.devcluster``).

Three nodes of one CPU each (head + two workers) and an MLflow server on the head's address.
Work that needs more than one CPU must spread over the nodes; the tests kill a worker node
(every process in its namespace: raylet, object store, workers) or a job's driver mid-run and
check that nothing is lost or done twice. The test process itself stays outside the cluster's
network: it reaches the cluster by running commands inside the head's namespace, and reads
results from the filesystem that all nodes share (as NFS would on a real cluster).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from relext_ray.cluster import devcluster
from relext_ray.corpus.sample import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
PROBE = str(ROOT / "tests" / "cluster_probe.py")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(devcluster.missing_requirements() is not None,
                       reason=f"no dev cluster: {devcluster.missing_requirements()}"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("devcluster") / "state.json"
    c = devcluster.up(workers=2, cpus_per_node=1, state=state)
    try:
        yield c
    finally:
        devcluster.down(state)


def ask(c: devcluster.DevCluster, what: str, arg: str) -> list[dict]:
    res = c.run([sys.executable, PROBE, what, arg], capture_output=True, text=True, timeout=120)
    answers = [x for x in res.stdout.splitlines() if x.startswith("probe-answer: ")]
    assert res.returncode == 0 and len(answers) == 1, res.stdout[-2000:] + res.stderr[-3000:]
    return json.loads(answers[0].removeprefix("probe-answer: "))


def submit(c: devcluster.DevCluster, argv: list[str], log: Path) -> subprocess.Popen:
    """``ray job submit`` from the head's namespace; the job's output goes to ``log``."""
    fh = open(log, "w")  # noqa: SIM115 (closed by the child's exit)
    return c.popen(["ray", "job", "submit", "--address", c.dashboard, "--", *argv],
                   stdout=fh, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"job still running after {timeout:.0f} s:\n"
                             f"{log.read_text()[-4000:]}") from None
    text = log.read_text()
    # `ray job submit` prints the job's fate; its exit code does not always carry it.
    assert proc.returncode == 0 and "succeeded" in text[-2000:], text[-4000:]
    return text


def replace_node(c: devcluster.DevCluster, node: int) -> None:
    """Bring a killed worker back, so the next test starts with three nodes again."""
    c.start_worker(node)
    devcluster.wait_for_nodes(c, len(c.namespaces), 120)


def search_args(tmp: Path, experiment: str, samples: int, extra: list[str]) -> list[str]:
    return ["python", str(ROOT / "jobs" / "tune.py"),
            "--config", str(ROOT / "tune_configs" / "smoke.yaml"),
            "--set", f"search.storage_path={tmp / 'tune'}",
            "--set", f"search.num_samples={samples}",
            "--set", f"experiment.data.data_dir={SAMPLE_DIR}",
            "--set", f"experiment.data.prepared_dir={tmp / 'prepared'}",
            "--set", f"experiment.train.checkpoint_dir={tmp / 'best'}",
            "--set", f"experiment.tracking.experiment={experiment}",
            "--set", f"search.register_as={experiment}", *extra]


def trial_results(search_dir: Path) -> dict[str, list[dict]]:
    """Every trial's reported results (Tune's ``result.json`` lines), by trial directory."""
    out = {}
    for f in search_dir.glob("*/result.json"):
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        out[f.parent.name] = lines
    return out


def test_search_spreads_over_nodes_and_resumes_after_its_driver_is_killed(cluster, tmp_path):
    """Kill: the search job's driver (SIGKILL), once two of four trials have finished.
    Verified: the resumed job finishes all four trials without rerunning finished ones, the
    MLflow parent run on the head is continued, and trials ran on at least two nodes."""
    experiment, samples = "relext-cluster-resume", 4
    args = search_args(tmp_path, experiment, samples, ["--set", "search.max_concurrent=3"])
    first = submit(cluster, args, tmp_path / "first.log")
    deadline, finished = time.time() + 600, []
    while time.time() < deadline and first.poll() is None:
        finished = [r for r in ask(cluster, "runs", experiment)
                    if r["name"].startswith("trial_") and r["status"] == "FINISHED"]
        if len(finished) >= 2:
            break
        time.sleep(1)
    # The job's entrypoint (a shell and the Python driver under it), not the submitting CLI.
    drivers = [p for p in cluster.pids(0)
               if b"jobs/tune.py" in (cmd := _cmdline(p)) and b"job submit" not in cmd]
    assert len(finished) >= 2 and drivers, (tmp_path / "first.log").read_text()[-3000:]
    for pid in drivers:
        _signal(pid, signal.SIGKILL)
    first.wait(timeout=120)
    tail = (tmp_path / "first.log").read_text()[-3000:]
    assert "failed" in tail and "succeeded" not in tail, tail
    before = {r["tags"]["trial_id"]: r["steps"] for r in finished}

    text = finish(submit(cluster, [*args, "--resume"], tmp_path / "second.log"),
                  tmp_path / "second.log", 900)
    assert "resuming the search" in text

    runs = ask(cluster, "runs", experiment)
    parents = [r for r in runs if r["name"] == "search-smoke"]
    assert len(parents) == 1 and parents[0]["tags"].get("resumed") == "1"
    assert parents[0]["status"] == "FINISHED"
    trials = [r for r in runs if r["name"].startswith("trial_")
              and r["tags"].get("mlflow.parentRunId") == parents[0]["id"]]
    ids = [r["tags"]["trial_id"] for r in trials]
    assert len(ids) == len(set(ids)) == samples
    assert all(r["status"] == "FINISHED" for r in trials)
    for r in trials:
        tid = r["tags"]["trial_id"]
        if tid in before:
            assert r["steps"][:len(before[tid])] == before[tid], "a finished trial ran again"

    results = trial_results(tmp_path / "tune" / "smoke")
    assert len(results) == samples
    ips = {rows[-1]["node_ip"] for rows in results.values()}
    assert ips <= {cluster.ip(k) for k in range(3)}
    assert len(ips) >= 2, f"all trials ran on {ips}"
    import optuna

    study = optuna.load_study(study_name="smoke",
                              storage=f"sqlite:///{tmp_path / 'tune' / 'smoke' / 'optuna.db'}")
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    assert sorted(t.user_attrs["tune_trial_id"] for t in study.trials) == sorted(ids)


def test_search_survives_a_killed_worker_node(cluster, tmp_path):
    """Kill: every process of the worker node that runs a trial, after that trial reported an
    epoch (with its checkpoint). Verified: the search job succeeds with all trials TERMINATED;
    the trial that lost its node failed once and continued from its checkpoint (its next
    result is not epoch 1 again)."""
    from ray.tune import ExperimentAnalysis

    experiment, samples = "relext-cluster-nodekill", 3
    args = search_args(tmp_path, experiment, samples, [
        "--set", "search.max_concurrent=3", "--set", "search.scheduler.type=none",
        "--set", "experiment.train.epochs=4", "--set", "experiment.train.patience=4"])
    job = submit(cluster, args, tmp_path / "job.log")
    search_dir = tmp_path / "tune" / "smoke"
    workers = {cluster.ip(k): k for k in range(1, len(cluster.namespaces))}
    deadline, victim = time.time() + 600, None
    while time.time() < deadline and job.poll() is None and victim is None:
        for trial, rows in trial_results(search_dir).items():
            last = rows[-1] if rows else {}
            if last.get("node_ip") in workers and not last.get("done") \
                    and last.get("training_iteration", 0) in (1, 2):
                victim = (trial, last["node_ip"], last["training_iteration"])
                break
        time.sleep(0.3)
    assert victim, (tmp_path / "job.log").read_text()[-3000:]
    trial, ip, epochs_before = victim
    killed = cluster.kill_node(workers[ip])
    assert killed
    try:
        finish(job, tmp_path / "job.log", 900)
    finally:
        replace_node(cluster, workers[ip])

    analysis = ExperimentAnalysis(str(search_dir))
    assert len(analysis.trials) == samples
    assert all(t.status == "TERMINATED" for t in analysis.trials)
    hit = [t for t in analysis.trials if Path(t.path).name == trial]
    assert len(hit) == 1 and hit[0].num_failures >= 1
    rows = trial_results(search_dir)[trial]
    iterations = [r["training_iteration"] for r in rows]
    after = iterations[iterations.index(epochs_before) + 1:]
    assert after and after[0] > 1, f"restarted from scratch: {iterations}"
    assert iterations[-1] == 4
    print(f"killed node {ip} while {trial} was past epoch {epochs_before}; its epochs: "
          f"{iterations}, failures {hit[0].num_failures}")


def test_prediction_spreads_and_survives_a_killed_worker_node(cluster, sample_model, tmp_path):
    """Kill: every process of a worker node that hosts a prediction replica, once some part
    files are written; the other replica is paused meanwhile. Verified: the lost replica is
    replaced on a live node while the job runs; the job succeeds; every kept pair of the corpus
    is in the output exactly once with the model's own prediction; the summary's counts add up;
    units were scored on at least two nodes."""
    from relext_ray.corpus.jsonl import read_jsonl
    from relext_ray.data.synth import Shape, Source, write
    from relext_ray.prediction.predictor import Predictor

    source = Source.load(str(sample_model))
    files = write(8000, tmp_path / "corpus", source, Shape.of_corpus(source.corpus, SAMPLE_DIR),
                  per_file=1000)
    out = tmp_path / "preds"
    job = submit(cluster, ["python", "-m", "relext_ray.predict", "--input",
                           str(tmp_path / "corpus"), "--model", str(sample_model),
                           "--output", str(out), "--concurrency", "2", "--chunk-size", "50",
                           "--batch-size", "64", "--no-progress"], tmp_path / "job.log")
    workers = {cluster.ip(k): k for k in range(1, len(cluster.namespaces))}
    deadline, victim, others = time.time() + 300, None, []
    while time.time() < deadline and job.poll() is None and victim is None:
        if len(list(out.glob("part-*.parquet"))) >= 4:
            alive = [a for a in ask(cluster, "actors", "UnitScorer") if a["state"] == "ALIVE"]
            on_workers = [a["ip"] for a in alive if a["ip"] in workers]
            victim = on_workers[0] if on_workers else None
            others = [a for a in alive if a["ip"] != victim]
        time.sleep(0.3)
    assert victim, (tmp_path / "job.log").read_text()[-3000:]
    # One CPU per replica: the lost replica can only come back on the node that had none.
    spare = ({cluster.ip(k) for k in range(len(cluster.namespaces))}
             - {victim} - {a["ip"] for a in others})
    # The other replica is paused (SIGSTOP) until a part file is written after the kill: with
    # it paused, only a replacement can write one, so the job cannot end on the survivor alone
    # however fast scoring is. Part files appear by rename, so a paused writer adds none.
    for a in others:
        _signal(a["pid"], signal.SIGSTOP)
    try:
        cluster.kill_node(workers[victim])
        done_before = len(list(out.glob("part-*.parquet")))
        deadline = time.time() + 300
        while (job.poll() is None and time.time() < deadline
               and len(list(out.glob("part-*.parquet"))) <= done_before + 1):
            time.sleep(0.3)
        done_at_replacement = len(list(out.glob("part-*.parquet")))
    finally:
        for a in others:
            _signal(a["pid"], signal.SIGCONT)
    try:
        finish(job, tmp_path / "job.log", 600)
    finally:
        replace_node(cluster, workers[victim])
    print(f"killed {victim} after {done_before} of 160 units; {done_at_replacement} written "
          f"before the paused replica went on")

    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == 160 and summary["files"] > done_before
    sentences = [s for f in files for s in read_jsonl(f).sentences]
    assert summary["sentences_read"] == summary["sentences_predicted"] == len(sentences)
    rows = pq.read_table(sorted(out.glob("part-*.parquet"))).to_pylist()
    keys = [(r["sentence_id"], r["head"], r["tail"]) for r in rows]
    assert len(keys) == len(set(keys)) == summary["pairs_scored"] == summary["rows_written"]
    direct = Predictor.load(sample_model).score(sentences).table.to_pylist()
    want = {(r["sentence_id"], r["head"], r["tail"]): r["relation"] for r in direct}
    assert dict(zip(keys, (r["relation"] for r in rows), strict=True)) == want
    assert not list(out.glob(".part-*"))
    assert len(summary["units_per_node"]) >= 2, summary["units_per_node"]
    assert set(summary["units_per_node"]) <= {cluster.ip(k) for k in range(3)}
    assert len(spare) == 1 and summary["units_per_node"].get(spare.pop(), 0) > 0, \
        f"the lost replica was not replaced while the job ran: {summary['units_per_node']}"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def _signal(pid: int, sig: int) -> None:
    import contextlib
    import os

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
