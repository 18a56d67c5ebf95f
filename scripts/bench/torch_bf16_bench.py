#!/usr/bin/python3
"""PyTorch bf16-autocast baseline for goclip's `--precision bf16`.

Runs the towers of ../shared/bench/torch_clip_bench.py (or, for RN50 and
RN101, of torch_rn50_bench.py beside this file) under
torch.autocast("cpu", dtype=torch.bfloat16): the matrix products and
convolutions in bfloat16 through oneDNN (AVX512_BF16 or AMX where the CPU
has them), what a PyTorch user would pick for speed on such a CPU. Same
command line and JSON line as those scripts, with "precision": "bf16":

  python3 torch_bf16_bench.py --arch ViT-B-32 --what image --batch 32 --threads 2

The tower definitions are imported from those scripts, not copied
(GOCLIP_BENCH_DIR names the shared folder; default ../shared/bench from
the repository root).
"""
import argparse, importlib.util, json, os, sys, time

import torch

here = os.path.dirname(os.path.abspath(__file__))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--what", default="image", choices=["image", "text"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if args.arch.startswith("RN"):
        rn = load(os.path.join(here, "torch_rn50_bench.py"), "torch_rn50_bench")
        depths, width, res, heads, embed = rn.ARCHS[args.arch]
        model = rn.ResNetImage(depths, width, res, heads, embed).eval()
        x = torch.randn(args.batch, 3, res, res)
    else:
        shared = os.environ.get("GOCLIP_BENCH_DIR", os.path.join(here, "..", "..", "..", "shared", "bench"))
        tc = load(os.path.join(shared, "torch_clip_bench.py"), "torch_clip_bench")
        res, patch, vw, vl, tw, tl, emb = tc.ARCHS[args.arch]
        if args.what == "image":
            model = tc.Vision(res, patch, vw, vl, emb).eval()
            x = torch.randn(args.batch, 3, res, res)
        else:
            model = tc.Text(tw, tl, emb).eval()
            x = torch.randint(1, 49405, (args.batch, 77))
            x[:, 20] = 49407
    runs = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)  # warm-up
        model(x)
        start = time.perf_counter()
        while len(runs) < 3 or (time.perf_counter() - start < args.seconds and len(runs) < 50):
            t0 = time.perf_counter()
            model(x)
            runs.append(time.perf_counter() - t0)
    runs.sort()
    med = runs[len(runs) // 2]
    print(json.dumps({"arch": args.arch, "what": args.what, "batch": args.batch, "threads": args.threads,
                      "precision": "bf16", "items_per_s": args.batch / med, "ms_per_item": 1000 * med / args.batch,
                      "runs": len(runs), "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
