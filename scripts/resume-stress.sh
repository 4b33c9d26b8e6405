#!/usr/bin/env bash
# Kill the smoke search's driver at N seeded random moments, resume it each time, check that
# every resume was exact. Last line: "resume-stress: K of N exact".
#   scripts/resume-stress.sh N              # single node: a Ray head on loopback of its own
#   scripts/resume-stress.sh N --cluster    # a three-node dev cluster in network namespaces (root)
# Options after N: --seed S (the kill moments), --keep (keep logs and state).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH" PYTHONUNBUFFERED=1
if [[ " $* " == *" --cluster "* ]]; then
  exec "$PY" scripts/resume_stress.py "$@"
fi
unset RAY_ADDRESS   # always a head of its own, so the kills touch nothing else
exec scripts/with-ray-head.sh "$PY" scripts/resume_stress.py "$@"
