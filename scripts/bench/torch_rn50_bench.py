#!/usr/bin/python3
"""PyTorch CPU baseline for goclip's RN50 image tower.

Builds OpenAI CLIP's ModifiedResNet image tower (RN50: stages of 3, 4, 6, 3
Bottlenecks, width 64, 224 px, a stem of three 3x3 convolutions and an
average pool, anti-aliased strided blocks that average-pool instead of
striding, and a 32-head attention pool to a 1024-d embedding) with random
weights and times it in eval mode. Weights do not change the speed. Same
command line and JSON line as ../shared/bench/torch_clip_bench.py, so
bench-compare.sh and ort_clip_bench.js can use it unchanged:

  python3 torch_rn50_bench.py --what image --batch 32 --threads 2
  python3 torch_rn50_bench.py --what image --export-onnx rn50-image.onnx

Only the image tower is built: RN50's text tower is a ViT-B-32-shaped text
transformer (width 512, 12 layers), measured by torch_clip_bench.py.
Needs Debian's python3-torch.
"""
import argparse, json, time
import torch
from torch import nn
import torch.nn.functional as F

ARCHS = {
    # name: (stage depths, width, image_res, heads, embed)
    "RN50": ((3, 4, 6, 3), 64, 224, 32, 1024),
    "RN101": ((3, 4, 23, 3), 64, 224, 32, 512),
}


def conv_bn(cin, cout, k, pad=0, stride=1):
    """A bias-free convolution and its BatchNorm (eval: running statistics)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False),
                         nn.BatchNorm2d(cout))


class Block(nn.Module):
    """Bottleneck of expansion 4; a stride > 1 average-pools after the 3x3
    convolution, and the shortcut average-pools before its 1x1 convolution."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.branch1 = conv_bn(cin, planes, 1)
        self.branch2 = conv_bn(planes, planes, 3, pad=1)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.branch3 = conv_bn(planes, 4 * planes, 1)
        self.short = None
        if stride > 1 or cin != 4 * planes:
            self.short = nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                                       conv_bn(cin, 4 * planes, 1))

    def forward(self, x):
        y = F.relu(self.branch1(x))
        y = F.relu(self.branch2(y))
        y = self.branch3(self.pool(y))
        s = x if self.short is None else self.short(x)
        return F.relu(y + s)


class AttnPool(nn.Module):
    """The mean token plus positional embeddings attends over the grid."""

    def __init__(self, grid, dim, heads, out):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(grid * grid + 1, dim) / dim ** 0.5)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.c = nn.Linear(dim, out)
        self.heads = heads

    def forward(self, x):
        n, d = x.shape[0], x.shape[1]
        t = x.flatten(2).permute(0, 2, 1)  # [n, hw, d]
        t = torch.cat([t.mean(dim=1, keepdim=True), t], dim=1) + self.pos  # [n, hw+1, d]
        hd = d // self.heads
        q = self.q(t[:, :1]).reshape(n, 1, self.heads, hd).transpose(1, 2)
        k = self.k(t).reshape(n, -1, self.heads, hd).transpose(1, 2)
        v = self.v(t).reshape(n, -1, self.heads, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, dim=-1)
        ctx = (a @ v).transpose(1, 2).reshape(n, d)
        return self.c(ctx)


class ResNetImage(nn.Module):
    def __init__(self, depths, width, res, heads, embed):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(3, width // 2, 3, pad=1, stride=2), nn.ReLU(),
            conv_bn(width // 2, width // 2, 3, pad=1), nn.ReLU(),
            conv_bn(width // 2, width, 3, pad=1), nn.ReLU(),
            nn.AvgPool2d(2))
        blocks, cin = [], width
        for i, n in enumerate(depths):
            planes = width << i
            for j in range(n):
                blocks.append(Block(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = 4 * planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = AttnPool(res // 32, width * 32, heads, embed)
        # Non-trivial BatchNorm statistics, so nothing is an identity.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.1)

    def forward(self, x):
        return self.pool(self.blocks(self.stem(x)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="RN50", choices=sorted(ARCHS))
    ap.add_argument("--what", default="image", choices=["image"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0, help="time budget for timed runs")
    ap.add_argument("--export-onnx", metavar="FILE", help="write the tower as ONNX (dynamic batch) and exit")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    depths, width, res, heads, embed = ARCHS[args.arch]
    model = ResNetImage(depths, width, res, heads, embed).eval()
    x = torch.randn(args.batch, 3, res, res)
    if args.export_onnx:
        with torch.no_grad():
            torch.onnx.export(model, x, args.export_onnx, opset_version=14, input_names=["image"],
                              output_names=["emb"], dynamic_axes={"image": {0: "b"}, "emb": {0: "b"}})
        return
    runs = []
    with torch.inference_mode():
        model(x)  # warm-up
        start = time.perf_counter()
        while len(runs) < 3 or (time.perf_counter() - start < args.seconds and len(runs) < 50):
            t0 = time.perf_counter()
            model(x)
            runs.append(time.perf_counter() - t0)
    runs.sort()
    med = runs[len(runs) // 2]
    print(json.dumps({"arch": args.arch, "what": args.what, "batch": args.batch,
                      "threads": args.threads, "items_per_s": args.batch / med,
                      "ms_per_item": 1000 * med / args.batch, "runs": len(runs),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
