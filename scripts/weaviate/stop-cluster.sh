#!/usr/bin/env bash
# Stops the processes start-cluster.sh started, by PID (TERM, then KILL).
set -uo pipefail
dir="${1:?usage: stop-cluster.sh DIR}"
[ -f "$dir/pids" ] || exit 0
while read -r pid; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done < "$dir/pids"
for _ in $(seq 1 50); do
  alive=0
  while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done < "$dir/pids"
  [ $alive -eq 0 ] && exit 0
  sleep 0.2
done
while read -r pid; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; done < "$dir/pids"
exit 0
