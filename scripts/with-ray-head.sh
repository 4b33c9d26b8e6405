#!/usr/bin/env bash
# Run a command against a real Ray head on loopback.
# If RAY_ADDRESS is already set (CI starts its own head), just run the command; otherwise start
# a head on a free port with its own temp dir, run the command with RAY_ADDRESS pointing at it,
# and afterwards stop that head's processes only (other Ray instances on the machine live on).
set -euo pipefail
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
if [[ -n "${RAY_ADDRESS:-}" ]]; then
  exec "$@"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
dash=$(free_port)
# Short: Ray's Unix socket paths live under it.
temp_dir=$(mktemp -d /tmp/rayh-XXXXXX)
ray get-auth-token --generate >/dev/null 2>&1 || true
export RAY_AUTH_MODE=token

descendants() {
  local child
  for child in $(pgrep -P "$1" || true); do
    echo "$child"
    descendants "$child"
  done
}

stop_head() {
  # Ray's daemons name the temp dir in their command lines, and the client server the head's
  # address (its parent, `ray start`, has exited); workers are their descendants.
  local pids="" p
  for p in $(pgrep -f -- "$temp_dir" || true) \
           $(pgrep -f -- "--address=127.0.0.1:$port( |$)" || true); do
    pids="$pids $p $(descendants "$p")"
  done
  if [[ -n "${pids// /}" ]]; then
    kill -TERM $pids 2>/dev/null || true
    sleep 2
    kill -KILL $pids 2>/dev/null || true
  fi
  rm -rf "$temp_dir"
}
trap stop_head EXIT

ray start --head --port="$port" --dashboard-host=127.0.0.1 --dashboard-port="$dash" \
  --num-cpus="${RAY_NUM_CPUS:-2}" --temp-dir="$temp_dir" --disable-usage-stats >/dev/null
export RAY_ADDRESS="127.0.0.1:$port" RAY_DASHBOARD_ADDRESS="http://127.0.0.1:$dash"
"$@"
