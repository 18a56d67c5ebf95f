#!/usr/bin/env bash
# The README's first command: build goclip and serve its web page over a
# gallery of emoji images, searched with goclip's built-in model (trained by
# goclip itself; no model download). Type "red heart", "cat" or "猫".
#
#   scripts/demo.sh            # build, index the gallery, serve on 127.0.0.1:8080
#   scripts/demo.sh --check    # same, but run two searches and exit
#   scripts/demo.sh hub        # pull ViT-B/32 from the Hugging Face hub and
#                              # classify the public-domain example photos
#                              # that Debian's python3-skimage ships
#
# The gallery is the held-out test set of the built-in model: twitter-style
# emoji of concepts the model never saw in training, from the MIT-licensed npm
# packages emoji-datasource-twitter/-google and emojibase-data. The first run
# fetches them with `npm pack` into the cache (nothing of them is committed);
# every later run is offline.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -o bin/goclip ./cmd/goclip
cache=${GOCLIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/goclip}

if [ "${1:-}" = hub ]; then
  photos=${GOCLIP_DEMO_PHOTOS:-$cache/demo-photos}
  if [ ! -f "$photos/chelsea.png" ]; then
    echo "demo: fetching example photos from Debian's python3-skimage package" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download python3-skimage >/dev/null 2>&1) ||
      { echo "demo: 'apt-get download python3-skimage' failed; set GOCLIP_DEMO_PHOTOS to a folder of photos" >&2; exit 1; }
    dpkg-deb -x "$tmp"/python3-skimage_*.deb "$tmp/x"
    mkdir -p "$photos"
    for n in chelsea coffee astronaut horse motorcycle_left; do
      cp "$tmp/x/usr/lib/python3/dist-packages/skimage/data/$n.png" "$photos/"
    done
  fi
  bin/goclip pull ViT-B-32
  exec bin/goclip classify --model ViT-B-32 --top 3 \
    --labels "cat,dog,cup of coffee,astronaut,horse,motorcycle,car,pizza" "$photos"/*.png
fi

data=${GOCLIP_DATA:-$cache/emoji}
mkdir -p "$data"
for pkg in emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 emojibase-data@17.0.0; do
  name=${pkg%@*}; ver=${pkg#*@}
  if [ ! -d "$data/$name-$ver/package" ]; then
    echo "demo: fetching $pkg from the npm registry (once)" >&2
    (cd "$data" && npm pack --silent "$pkg" >/dev/null)
    mkdir -p "$data/$name-$ver" && tar -xzf "$data/$name-$ver.tgz" -C "$data/$name-$ver"
  fi
done
[ -f "$data/test.csv" ] || go run ./scripts/emoji/prepare -src "$data" -vocab=false 2>/dev/null

# The gallery: one file per held-out concept, named after it.
gallery=$data/gallery
if [ ! -d "$gallery" ]; then
  mkdir -p "$gallery.tmp"
  tail -n +2 "$data/test.csv" | while IFS=, read -r path en _rest; do
    name=$(printf '%s' "$en" | tr -c 'A-Za-z0-9 _-' '_' | tr ' ' '_')
    cp "$path" "$gallery.tmp/$name.png"
  done
  mv "$gallery.tmp" "$gallery"
fi

db=$data/demo.db
export GOCLIP_MODEL=   # the built-in model
bin/goclip index --db "$db" --quiet "$gallery"
if [ "${1:-}" = --check ]; then
  bin/goclip search --db "$db" --top 5 "red heart"
  exec bin/goclip search --db "$db" --top 5 "猫"
fi
echo "demo: open http://127.0.0.1:8080 and search the emoji gallery (Ctrl-C stops)" >&2
exec bin/goclip serve --db "$db" --addr "${GOCLIP_ADDR:-127.0.0.1:8080}"
