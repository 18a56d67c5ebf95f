#!/bin/sh
# Makes the README's CLIP-guided editing strips: a hand-drawn sun (drawn by
# main.go, so nothing here comes from elsewhere) edited toward three other
# emoji names with the built-in model, against every other emoji name as
# negatives (the names come from scripts/emoji's names.csv).
set -eu
cd "$(dirname "$0")/../.."
data=${GOCLIP_DATA:-$HOME/.cache/goclip/emoji}
go build -o bin/goclip ./cmd/goclip
go run ./scripts/editdemo /tmp/goclip-sun.png
for tgt in "snowflake" "red heart" "four leaf clover"; do
	f=$(echo "$tgt" | tr ' ' '_')
	awk -F, 'NR>1{print $2}' "$data/names.csv" | grep -vx "$tgt" > "/tmp/goclip-negs-$f.txt"
	GOCLIP_MODEL= bin/goclip edit --image /tmp/goclip-sun.png --prompt "$tgt" --negatives "/tmp/goclip-negs-$f.txt" \
		--strength 0.25 --steps 60 --quiet --out "/tmp/goclip-edit-$f.png" --frames "docs/img/edit-sun-to-$f.png"
done
