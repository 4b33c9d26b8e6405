"""``relext-devcluster``: a multi-node Ray cluster in network namespaces on one machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relext_ray.cluster.devcluster import DEFAULT_STATE, DevCluster, down, up
from relext_ray.errors import cli_exit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-devcluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", type=Path, default=DEFAULT_STATE)
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up")
    u.add_argument("--workers", type=int, default=2)
    u.add_argument("--cpus-per-node", type=float, default=1)
    sub.add_parser("down")
    e = sub.add_parser("exec", help="run a command in the head's namespace")
    e.add_argument("argv", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)

    def body() -> None:
        if args.command == "up":
            c = up(args.workers, args.cpus_per_node, args.state)
            print(f"dev cluster {c.tag}: head {c.ip(0)} + {args.workers} worker(s); "
                  f"RAY_ADDRESS={c.ray_address}, dashboard {c.dashboard}, MLflow {c.mlflow} "
                  f"(reachable from inside: relext-devcluster exec -- <command>)")
        elif args.command == "down":
            down(args.state)
        else:
            argv_ = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            c = DevCluster.load(args.state)
            sys.exit(c.run(argv_).returncode)

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
