#!/usr/bin/env bash
# Starts an N-node (default 3) Weaviate cluster on 127.0.0.1 only, node 0
# first (the others join once its gossip port answers). Writes one PID
# per line to $DIR/pids; stop it with stop-cluster.sh $DIR.
#   scripts/weaviate/start-cluster.sh DIR [N] [BASEPORT]
# Node i listens on: HTTP BASEPORT+i, gRPC BASEPORT+100+i, gossip
# BASEPORT+200+2i, data BASEPORT+201+2i, raft BASEPORT+300+2i, raft RPC
# BASEPORT+301+2i, Go profiling BASEPORT+400+i (default BASEPORT 18080).
# The REST API, gossip and raft listen on 127.0.0.1 only; Weaviate 1.35
# binds its gRPC, internal data and profiling ports on every interface
# whatever the host (the tests therefore run the nodes in a network
# namespace): firewall those ports on a machine with other interfaces.
set -euo pipefail
dir="${1:?usage: start-cluster.sh DIR [N] [BASEPORT]}"
n="${2:-3}"
base="${3:-18080}"
bin="${WEAVIATE_BIN:-$("$(dirname "$0")/build.sh")}"
mkdir -p "$dir"
: > "$dir/pids"
wait_port() { # host port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1:$2 did not open in $3 s" >&2; return 1
}
voters=""
for i in $(seq 0 $((n - 1))); do voters="${voters:+$voters,}node$i"; done
join=""
for i in $(seq 0 $((n - 1))); do join="${join:+$join,}node$i:$((base + 300 + 2 * i))"; done
for i in $(seq 0 $((n - 1))); do
  mkdir -p "$dir/node$i"
  joinenv=()
  if [ "$i" -gt 0 ]; then joinenv=(CLUSTER_JOIN=127.0.0.1:$((base + 200))); fi
  env -i PATH="$PATH" HOME="$HOME" \
    CLUSTER_IN_LOCALHOST=true \
    CLUSTER_HOSTNAME="node$i" \
    CLUSTER_BIND_ADDR=127.0.0.1 CLUSTER_ADVERTISE_ADDR=127.0.0.1 \
    CLUSTER_GOSSIP_BIND_PORT=$((base + 200 + 2 * i)) \
    CLUSTER_DATA_BIND_PORT=$((base + 201 + 2 * i)) \
    "${joinenv[@]}" \
    RAFT_PORT=$((base + 300 + 2 * i)) RAFT_INTERNAL_RPC_PORT=$((base + 301 + 2 * i)) \
    RAFT_JOIN="$join" RAFT_BOOTSTRAP_EXPECT=$n \
    PERSISTENCE_DATA_PATH="$dir/node$i" \
    AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true \
    DEFAULT_VECTORIZER_MODULE=none \
    ${ENABLE_MODULES:+ENABLE_MODULES=$ENABLE_MODULES} \
    ${CLIP_INFERENCE_API:+CLIP_INFERENCE_API=$CLIP_INFERENCE_API} \
    GRPC_PORT=$((base + 100 + i)) GO_PROFILING_PORT=$((base + 400 + i)) \
    DISABLE_TELEMETRY=true LOG_LEVEL=warning QUERY_DEFAULTS_LIMIT=25 \
    "$bin" --host 127.0.0.1 --port $((base + i)) --scheme http \
    > "$dir/node$i.log" 2>&1 &
  echo $! >> "$dir/pids"
  if [ "$i" -eq 0 ]; then wait_port 127.0.0.1 $((base + 200)) 60; fi
done
for i in $(seq 0 $((n - 1))); do
  ok=""
  for _ in $(seq 1 900); do
    if curl -sf "http://127.0.0.1:$((base + i))/v1/.well-known/ready" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "weaviate node$i not ready; log: $dir/node$i.log" >&2; tail -20 "$dir/node$i.log" >&2; exit 1; }
done
echo "weaviate: $n nodes ready on 127.0.0.1:$base..$((base + n - 1)) (gRPC $((base + 100))..)" >&2
