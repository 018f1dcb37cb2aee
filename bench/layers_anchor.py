#!/usr/bin/env python3
"""PyTorch's time for each convolution layer that `tools/bench layers`
times: convolution (no bias), batch norm in eval mode, then the residual
and ReLU where the layer has them, the stem with its 3x3 stride-2 max
pooling; each layer alone, in every variant PyTorch offers on a CPU
(eager, channels_last, optimize: torch.jit.trace + optimize_for_inference,
which folds the batch norm into the convolution), so that our ratio is
taken against PyTorch's best for that layer.

    python3 bench/layers_anchor.py --threads 2 --batch 1 \
        --layers TAG:C:K:R:STRIDE:PAD:H:DIL:GROUPS:RES:RELU:POOL,...

(RES, RELU and POOL are true or false; H is the input's height and
width.) Prints `name value unit` lines:
    torch_<variant>_<TAG> value ms
the best time of one call over about --seconds of calls, as tools/bench
times its own. A variant that fails prints nothing.
"""
import argparse, sys, time

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--layers", required=True)
p.add_argument("--seconds", type=float, default=0.3)
a = p.parse_args()

import torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(a.threads)
torch.manual_seed(0)


def out(name, v, unit):
    print(f"{name} {v:.4g} {unit}", flush=True)


def best_ms(f, seconds):
    for _ in range(3):
        f()
    best, start = float("inf"), time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
        n += 1
    return best * 1e3


class Layer(nn.Module):
    def __init__(self, c, k, r, stride, pad, dil, groups, res, relu, pool):
        super().__init__()
        self.conv = nn.Conv2d(c, k, r, stride, pad, dilation=dil, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(k)
        with torch.no_grad():
            self.bn.weight.normal_(1, 0.1)
            self.bn.bias.normal_(0, 0.1)
            self.bn.running_mean.normal_(0, 0.1)
            self.bn.running_var.uniform_(0.9, 1.1)
        self.res, self.relu, self.pool = res, relu, pool

    def forward(self, x, r):
        y = self.bn(self.conv(x))
        if self.res:
            y = y + r
        if self.relu:
            y = F.relu(y)
        if self.pool:
            y = F.max_pool2d(y, 3, 2, 1)
        return y


def flag(s):
    if s not in ("true", "false"):
        sys.exit(f"layers_anchor.py: {s!r} is not true or false")
    return s == "true"


for spec in a.layers.split(","):
    f = spec.split(":")
    if len(f) != 12:
        sys.exit(f"layers_anchor.py: --layers: {spec!r} has {len(f)} fields, want 12")
    tag = f[0]
    c, k, r, stride, pad, h, dil, groups = (int(v) for v in f[1:9])
    res, relu, pool = (flag(v) for v in f[9:12])
    x = F.relu(torch.randn(a.batch, c, h, h)) if c > 3 else torch.randn(a.batch, c, h, h)
    ho = (h + 2 * pad - dil * (r - 1) - 1) // stride + 1
    rt = torch.randn(a.batch, k, ho, ho)
    m = Layer(c, k, r, stride, pad, dil, groups, res, relu, pool).eval()
    variants = {"eager": (m, x, rt)}
    cl = torch.channels_last
    variants["channels_last"] = (Layer(c, k, r, stride, pad, dil, groups, res, relu, pool).eval().to(memory_format=cl),
                                 x.to(memory_format=cl), rt.to(memory_format=cl))
    try:
        with torch.no_grad():
            variants["optimize"] = (torch.jit.optimize_for_inference(torch.jit.trace(m, (x, rt))), x, rt)
    except Exception as e:  # noqa: BLE001
        print(f"# optimize_for_inference {tag}: {e}", file=sys.stderr)
    for name, (mod, xi, ri) in variants.items():
        with torch.no_grad():
            out(f"torch_{name}_{tag}", best_ms(lambda: mod(xi, ri), a.seconds), "ms")
