"""``relext-ensemble --model A --model B [...] --out DIR``: seeds of one configuration as one model.

Each member's decision scores are shifted by its own dev-calibrated theta and averaged; the
ensemble's theta is calibrated on dev and test is scored once, at it. The result is an ordinary
checkpoint (``relext-predict --model DIR``), logged to MLflow as a model like a training run's.
Members are checkpoint directories or MLflow model URIs (``runs:/...``, ``models:/...``) trained on
one prepared corpus with one model configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relext_ray import console
from relext_ray.cli.train import print_saved
from relext_ray.errors import cli_exit
from relext_ray.tracking.runs import ensemble_tracked
from relext_ray.training.ensemble import EnsembleResult


def format_ensemble(r: EnsembleResult) -> str:
    """Each member alone at its dev theta, then the ensemble at its own."""
    lines = [f"{'':28s} {'theta':>8s} {'dev F1':>7s} {'P':>6s} {'R':>6s} {'test F1':>7s}"]
    for i, m in enumerate(r.members, 1):
        lines.append(f"{f'member {i} (seed {m.seed})':28s} {m.theta:8.3f} {100 * m.dev.f1:7.2f} "
                     f"{100 * m.test.precision:6.2f} {100 * m.test.recall:6.2f} "
                     f"{100 * m.test.f1:7.2f}")
    s = r.summary()
    lines.append(f"{f'ensemble of {len(r.members)}':28s} {r.theta:8.3f} {100 * r.dev.f1:7.2f} "
                 f"{100 * r.test.precision:6.2f} {100 * r.test.recall:6.2f} "
                 f"{100 * r.test.f1:7.2f}")
    lines.append(f"members' test F1 {100 * s['member_test_f1_mean']:.2f} ± "
                 f"{100 * s['member_test_f1_sd']:.2f}; the ensemble "
                 f"{100 * (r.test.f1 - s['member_test_f1_mean']):+.2f}; annotated pairs only "
                 f"(relation classification, another task): micro F1 "
                 f"{100 * r.test_annotated.f1:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relext-ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", dest="models", action="append", required=True,
                   help="a member: checkpoint directory or MLflow model URI (two or more)")
    p.add_argument("--out", type=Path, required=True, help="the ensemble's checkpoint directory")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    console.add_options(p)
    args = p.parse_args(argv)
    console.from_options(args)

    def body() -> None:
        result, run_id, model_uri = ensemble_tracked(args.models, args.out, not args.no_track)
        print(format_ensemble(result))
        print_saved(result.checkpoint, run_id, model_uri)

    return cli_exit(body)


if __name__ == "__main__":
    sys.exit(main())
