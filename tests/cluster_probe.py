"""Questions the cluster tests ask from inside the dev cluster's head namespace (the only place
its Ray head and MLflow server can be reached); answers are JSON on stdout.

    python tests/cluster_probe.py actors UnitScorer      # node IPs of the alive replicas
    python tests/cluster_probe.py runs relext-cluster    # the experiment's runs and their steps
"""

from __future__ import annotations

import json
import sys

PREFIX = "probe-answer: "


def actors(class_part: str) -> list[dict]:
    import ray
    from ray.util.state import list_actors

    ray.init(log_to_driver=False)
    ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    found = list_actors(limit=1000)
    return [{"ip": ips.get(a.node_id), "pid": a.pid, "state": a.state} for a in found
            if class_part in (a.class_name or "")]


def runs(experiment: str) -> list[dict]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out = []
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, "dev_f1"))
        out.append({"id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                    "tags": r.data.tags, "steps": steps})
    return out


if __name__ == "__main__":
    what, arg = sys.argv[1], sys.argv[2]
    # Ray may log to stdout too (e.g. about a node just killed): mark the answer's line.
    print(PREFIX + json.dumps(actors(arg) if what == "actors" else runs(arg)), flush=True)
