#!/bin/sh
# Reproduces goclip's built-in emoji model and its figures in docs/training.md:
# fetches the emoji packages from npm (nothing of them is committed), builds
# the dataset and the derived vocabulary, trains, and evaluates on the
# held-out concepts in the held-out (twitter) style.
#
#   scripts/emoji/run.sh            # data in ${GOCLIP_DATA:-~/.cache/goclip/emoji}, run in $DATA/run
#   INSTALL=1 scripts/emoji/run.sh  # also copy the model into internal/builtin/model
#
# Needs Go, npm and the CLIP BPE file (bpe_simple_vocab_16e6.txt.gz) in
# $GOCLIP_TOKENIZER or as $BPE.
set -eu
cd "$(dirname "$0")/../.."
DATA=${GOCLIP_DATA:-$HOME/.cache/goclip/emoji}
BPE=${BPE:-${GOCLIP_TOKENIZER:-}}
STEPS=${STEPS:-500}
mkdir -p "$DATA"

# 1. Fetch (MIT-licensed npm packages) and unpack.
for pkg in emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 emojibase-data@17.0.0; do
	name=${pkg%@*}; ver=${pkg#*@}
	if [ ! -d "$DATA/$name-$ver/package" ]; then
		(cd "$DATA" && npm pack --silent "$pkg" >/dev/null)
		mkdir -p "$DATA/$name-$ver" && tar -xzf "$DATA/$name-$ver.tgz" -C "$DATA/$name-$ver"
	fi
done

# 2. Dataset CSVs and the vocabulary derived from the training captions.
go run ./scripts/emoji/prepare -src "$DATA" -out "$DATA" ${BPE:+-bpe "$BPE"}

# 3. Train from scratch (open_clip recipe; see docs/training.md).
go build -o "$DATA/goclip" ./cmd/goclip
rm -rf "$DATA/run"
"$DATA/goclip" train --train-data "$DATA/train.csv" --model-config scripts/emoji/model_config.json \
	--tokenizer "$DATA/vocab.json" --out "$DATA/run" --batch-size 128 --steps "$STEPS" --warmup 25 --aug \
	--lr 1e-3 --save-every 50 --replicas 2 --seed 1 --export "$DATA/run/export" --export-f16

# 4. Evaluate (held-out concepts, twitter style; English and Chinese).
go run ./scripts/emoji/evaluate -data "$DATA" -model "$DATA/run/export/open_clip_model.safetensors"

if [ "${INSTALL:-0}" = 1 ]; then
	cp "$DATA/run/export/open_clip_model.safetensors" "$DATA/run/export/open_clip_config.json" \
		"$DATA/run/export/vocab.json" "$DATA/run/export/merges.txt" internal/builtin/model/
fi
