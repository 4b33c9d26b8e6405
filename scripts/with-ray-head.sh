#!/usr/bin/env bash
# Run a command against a real Ray head on loopback.
# If RAY_ADDRESS is already set (CI starts its own head), just run the command; otherwise start
# a head on a free port, run the command with RAY_ADDRESS pointing at it, and stop it after.
set -euo pipefail
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
if [[ -n "${RAY_ADDRESS:-}" ]]; then
  exec "$@"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dash=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ray get-auth-token --generate >/dev/null 2>&1 || true
export RAY_AUTH_MODE=token
ray start --head --port="$port" --dashboard-host=127.0.0.1 --dashboard-port="$dash" \
  --num-cpus="${RAY_NUM_CPUS:-2}" --disable-usage-stats >/dev/null
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
export RAY_ADDRESS="127.0.0.1:$port" RAY_DASHBOARD_ADDRESS="http://127.0.0.1:$dash"
"$@"
