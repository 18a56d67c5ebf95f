#!/usr/bin/env bash
# The README's first command: build goclip, pull ViT-B/32 from the Hugging
# Face hub (cached after the first run) and classify a few example photos.
#
# The photos are the public-domain images that scikit-image ships (chelsea
# the cat, coffee, astronaut, horse, motorcycle; see skimage/data/README in
# Debian's python3-skimage). They are fetched with apt-get download and
# unpacked into the cache; nothing is installed system-wide and nothing of
# them is committed to this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -o bin/goclip ./cmd/goclip

cache=${GOCLIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/goclip}
photos=${GOCLIP_DEMO_PHOTOS:-$cache/demo-photos}
want="chelsea coffee astronaut horse motorcycle_left"
if [ ! -f "$photos/chelsea.png" ]; then
  echo "demo: fetching example photos from Debian's python3-skimage package" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download python3-skimage >/dev/null 2>&1) ||
    { echo "demo: 'apt-get download python3-skimage' failed (needs Debian/Ubuntu apt); set GOCLIP_DEMO_PHOTOS to a folder of photos instead" >&2; exit 1; }
  dpkg-deb -x "$tmp"/python3-skimage_*.deb "$tmp/x"
  mkdir -p "$photos"
  for n in $want; do cp "$tmp/x/usr/lib/python3/dist-packages/skimage/data/$n.png" "$photos/"; done
fi

model=${GOCLIP_MODEL:-ViT-B-32}
bin/goclip pull "$model"
bin/goclip classify --model "$model" --top 3 \
  --labels "cat,dog,cup of coffee,astronaut,horse,motorcycle,car,pizza" \
  "$photos"/*.png
