#!/usr/bin/env bash
# Builds weaviate-server from the Go module proxy at a pinned version into
# the cache (reused between runs): prints the binary's path.
#   scripts/weaviate/build.sh            # build if missing
# Env: WEAVIATE_VERSION (default v1.35.2), GOCLIP_WEAVIATE_CACHE
# (default ~/.cache/goclip/weaviate). A cold build takes 15+ minutes on
# 2 cores and ~2 GB of module cache.
set -euo pipefail
version="${WEAVIATE_VERSION:-v1.35.2}"
cache="${GOCLIP_WEAVIATE_CACHE:-$HOME/.cache/goclip/weaviate}"
bin="$cache/$version/weaviate-server"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache/$version"
  echo "building weaviate-server $version into $bin (slow the first time)" >&2
  GOBIN="$cache/$version" CGO_ENABLED=0 go install "github.com/weaviate/weaviate/cmd/weaviate-server@$version"
fi
echo "$bin"
