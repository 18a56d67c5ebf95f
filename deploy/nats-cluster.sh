#!/usr/bin/env bash
# Starts a 3-server NATS JetStream cluster on 127.0.0.1 (client ports
# 4222-4224, cluster ports 6222-6224); PIDs go to DIR/pids, stop with
# scripts/weaviate/stop-cluster.sh DIR. Needs nats-server on PATH:
#   go install github.com/nats-io/nats-server/v2@v2.15.2
set -euo pipefail
dir="${1:?usage: nats-cluster.sh DIR}"
mkdir -p "$dir"; : > "$dir/pids"
routes="nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224"
for i in 0 1 2; do
  nats-server --name "n$i" -a 127.0.0.1 -p $((4222 + i)) -js -sd "$dir/n$i" \
    --cluster_name goclip --cluster "nats://127.0.0.1:$((6222 + i))" --routes "$routes" \
    > "$dir/n$i.log" 2>&1 &
  echo $! >> "$dir/pids"
done
echo "nats: 3 servers on 127.0.0.1:4222-4224" >&2
