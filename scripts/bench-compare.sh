#!/usr/bin/env bash
# Runs goclip and the baselines of ../shared/bench (PyTorch, ONNX Runtime) on
# the same machine in one run and prints items/s and goclip's ratio to each.
#
#   scripts/bench-compare.sh [ARCH] [THREADS]      (default ViT-B-32, 2)
#   TORCH_BATCHES=1 scripts/bench-compare.sh       (PyTorch only at batch 1:
#                                                   where its BLAS is slow, batch 32 takes many minutes)
#   GOCLIP_BIN=/tmp/goclip-old scripts/bench-compare.sh RN50
#                                                  (time that goclip binary instead of building one)
#   ROUNDS=3 scripts/bench-compare.sh              (goclip and ONNX Runtime alternated 3 times
#                                                   per row; the row shows the medians and the
#                                                   median of the per-round ratios)
#   PRECISION=int8 scripts/bench-compare.sh        (goclip with --precision int8 or bf16; ONNX
#                                                   Runtime stays fp32; with bf16 the PyTorch
#                                                   column is PyTorch's bf16 autocast)
#
# RN50 and RN101 measure the image tower only (PyTorch and the ONNX export
# from scripts/bench/torch_rn50_bench.py, our own ModifiedResNet): their
# text tower is the ViT-B-32 text transformer, measured with ViT-B-32.
#
# Needs Debian's python3-torch with OpenBLAS (installed here if missing) and npm (for
# onnxruntime-node, installed into a scratch folder). Timings on a shared
# machine are noisy: compare ratios from the same run only.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-ViT-B-32}
threads=${2:-2}
bench=${GOCLIP_BENCH_DIR:-../shared/bench}
work=${GOCLIP_BENCH_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/goclip/bench}
mkdir -p "$work"

# python3-torch alone pulls in the reference BLAS (libblas3), ~35x slower
# than OpenBLAS for PyTorch's float32 products: install OpenBLAS beside it
# so that the baseline is PyTorch at its best.
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null || ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null
fi
if [ ! -d "$work/node_modules/onnxruntime-node" ]; then
  (cd "$work" && npm install --silent --ignore-scripts onnxruntime-node@1.30.0 >/dev/null)
fi
goclip=${GOCLIP_BIN:-bin/goclip}
[ -n "${GOCLIP_BIN:-}" ] || CGO_ENABLED=0 go build -o bin/goclip ./cmd/goclip
whats="image text"
torchscript=$bench/torch_clip_bench.py
case $arch in RN*)
  whats=image
  torchscript=scripts/bench/torch_rn50_bench.py ;;
esac

# Debian's OpenBLAS picks a slow generic kernel unless told the core type:
# SkylakeX where the CPU has AVX-512 (the shared baselines' setting), else
# Haswell (AVX2+FMA; forcing SkylakeX on an AVX2-only CPU is ~100x slower).
coretype=Haswell
grep -qw avx512f /proc/cpuinfo && coretype=SkylakeX
torch() { OPENBLAS_CORETYPE=$coretype OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$torchscript" "$@"; }
# With PRECISION=bf16 the PyTorch column is PyTorch's bf16 autocast
# (scripts/bench/torch_bf16_bench.py, the same towers).
torchtime() {
  if [ "${PRECISION:-fp32}" = bf16 ]; then
    GOCLIP_BENCH_DIR=$bench OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench/torch_bf16_bench.py "$@"
  else
    torch "$@"
  fi
}
for what in $whats; do
  [ -f "$work/$arch-$what.onnx" ] || torch --arch "$arch" --what "$what" --export-onnx "$work/$arch-$what.onnx" 2>/dev/null
done

ips() { sed -n 's/.*"items_per_s": *\([0-9.e+-]*\).*/\1/p' | head -1; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
rounds=${ROUNDS:-1}
printf '%-6s %5s %10s %10s %10s %8s %8s\n' what batch goclip pytorch onnxrt vs-torch vs-ort
for what in $whats; do
  for batch in 1 32; do
    p=nan
    case " ${TORCH_BATCHES:-1 32} " in *" $batch "*)
      p=$(torchtime --arch "$arch" --what "$what" --batch "$batch" --threads "$threads" | ips) ;;
    esac
    gs= os= rs=
    for r in $(seq "$rounds"); do
      g=$("$goclip" bench --arch "$arch" --what "$what" --batch "$batch" --threads "$threads" --precision "${PRECISION:-fp32}" --time 10s --json | ips)
      o=$(NODE_PATH="$work/node_modules" node "$bench/ort_clip_bench.js" "$work/$arch-$what.onnx" "$what" "$batch" "$threads" | ips)
      [ "$rounds" -gt 1 ] && printf '  round %d: goclip %.2f onnxrt %.2f (%.2fx)\n' "$r" "$g" "$o" "$(echo "$g / $o" | bc -l)"
      gs="$gs $g" os="$os $o" rs="$rs $(echo "$g / $o" | bc -l)"
    done
    g=$(echo "$gs" | median) o=$(echo "$os" | median) ro=$(echo "$rs" | median)
    vt=nan
    [ "$p" = nan ] || vt=$(echo "$g / $p" | bc -l)
    printf '%-6s %5d %10.2f %10.2f %10.2f %7.2fx %7.2fx\n' "$what" "$batch" "$g" "$p" "$o" "$vt" "$ro"
  done
done
echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads, goclip ${PRECISION:-fp32}, $rounds round(s), OPENBLAS_CORETYPE=$coretype, $(date -u +%Y-%m-%d))"
