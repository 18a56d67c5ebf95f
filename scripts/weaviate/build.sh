#!/usr/bin/env bash
# Builds weaviate-server from the Go module proxy at a pinned version into
# the cache (reused between runs) and prints the binary's path.
#   scripts/weaviate/build.sh            # build if missing
# Env: WEAVIATE_VERSION (default v1.35.2), GOCLIP_WEAVIATE_CACHE
# (default ~/.cache/goclip/weaviate). A cold build takes ~20 minutes on
# 2 cores and ~2 GB of module cache; an interrupted build keeps its
# compiled packages in Go's build cache, so the next one is shorter.
# The binary appears atomically (built aside, then renamed), so a reader
# never sees a half-written file; concurrent builds are serialised.
set -euo pipefail
version="${WEAVIATE_VERSION:-v1.35.2}"
cache="${GOCLIP_WEAVIATE_CACHE:-$HOME/.cache/goclip/weaviate}"
bin="$cache/$version/weaviate-server"
mkdir -p "$cache/$version"
exec 9>"$cache/$version/.lock"
flock 9
if [ ! -x "$bin" ]; then
  rm -rf "$cache/$version"/.build.*
  stage="$cache/$version/.build.$$"
  rm -rf "$stage"; mkdir -p "$stage"
  echo "building weaviate-server $version into $bin (slow the first time)" >&2
  GOBIN="$stage" CGO_ENABLED=0 go install "github.com/weaviate/weaviate/cmd/weaviate-server@$version"
  mv "$stage/weaviate-server" "$bin"
  rm -rf "$stage"
fi
echo "$bin"
