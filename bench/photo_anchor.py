#!/usr/bin/env python3
"""PyTorch's figures for the real-photo path that `tools/bench photo` times:
torchvision's ResNet-50 / ResNet-18 on 3x224x224 inputs with a 128-wide
embedding fc, embedding at batch 1 and 32 and training at batch 32 (a
CosFace head over 1000 classes, SGD momentum 0.9), every variant PyTorch
offers on a CPU, so that the ratio is taken against PyTorch's best; and
the photo pipeline (PIL decode, EXIF transpose, crop, resize, normalise).

    python3 bench/photo_anchor.py --arch resnet50 --threads 2 [--steps 5]
    python3 bench/photo_anchor.py --pipeline photo.jpg --threads 1

Prints `name value unit` lines:
    torch_<variant>_<arch>_<embed|train>_b<batch> value img/s
with variant one of eager, channels_last, jit (trace + freeze),
optimize (torch.jit.optimize_for_inference), bf16 (autocast), and
    pil_pipeline_224 value img/s
A variant that fails (an old PyTorch, no BF16 support) prints nothing.
Run it both with glibc's allocator and with a tuned one
(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736):
PyTorch's batch-32 figures depend on it.
"""
import argparse, sys, time

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet50")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--batches", default="1,32", help="embedding batch sizes, comma-separated (empty: none)")
p.add_argument("--train", type=int, default=1, help="also time training at batch 32")
p.add_argument("--pipeline", help="a JPEG to time the PIL + torchvision transform pipeline on")
a = p.parse_args()

import torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(a.threads)


def out(name, v, unit):
    print(f"{name} {v:.4g} {unit}", flush=True)


def timed(f, steps, warm=2):
    for _ in range(warm):
        f()
    t = time.perf_counter()
    for _ in range(steps):
        f()
    return (time.perf_counter() - t) / steps


if a.pipeline:
    from PIL import Image, ImageOps
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def once():
        with Image.open(a.pipeline) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            tf(im)
    dt = timed(once, max(20, a.steps * 10))
    out("pil_pipeline_224", 1 / dt, "img/s")
    sys.exit(0)

import torchvision
torch.manual_seed(0)


def make():
    m = getattr(torchvision.models, a.arch)()
    m.fc = nn.Linear(m.fc.in_features, 128)
    return m


for batch in [int(b) for b in a.batches.split(",") if b]:
    x = torch.randn(batch, 3, 224, 224)
    tag = f"{a.arch}_embed_b{batch}"
    base = make().eval()
    variants = {}
    variants["eager"] = (base, x)
    variants["channels_last"] = (make().eval().to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last))
    try:
        with torch.no_grad():
            variants["jit"] = (torch.jit.freeze(torch.jit.trace(make().eval(), x)), x)
    except Exception as e:  # noqa: BLE001
        print(f"# jit: {e}", file=sys.stderr)
    try:
        with torch.no_grad():
            variants["optimize"] = (torch.jit.optimize_for_inference(torch.jit.trace(make().eval(), x)), x)
    except Exception as e:  # noqa: BLE001
        print(f"# optimize_for_inference: {e}", file=sys.stderr)
    # One image takes tens of ms: eight times the steps (as tools/bench).
    steps = a.steps * 8 if batch == 1 else a.steps
    for name, (m, inp) in variants.items():
        with torch.no_grad():
            dt = timed(lambda: m(inp), steps)
        out(f"torch_{name}_{tag}", batch / dt, "img/s")
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            dt = timed(lambda: base(x), steps)
        out(f"torch_bf16_{tag}", batch / dt, "img/s")
    except Exception as e:  # noqa: BLE001
        print(f"# bf16: {e}", file=sys.stderr)

if a.train:
    batch = 32
    x = torch.randn(batch, 3, 224, 224)
    labels = torch.randint(0, 1000, (batch,))
    for name, fmt in (("eager", torch.contiguous_format), ("channels_last", torch.channels_last)):
        m = make().train().to(memory_format=fmt)
        w = nn.Parameter(torch.randn(1000, 128) * 0.01)
        opt = torch.optim.SGD(list(m.parameters()) + [w], lr=0.01, momentum=0.9)
        inp = x.to(memory_format=fmt)

        def step():
            opt.zero_grad(set_to_none=True)
            cos = F.linear(F.normalize(m(inp)), F.normalize(w))
            onehot = F.one_hot(labels, 1000).float()
            loss = F.cross_entropy(30 * (cos - 0.35 * onehot), labels)
            loss.backward()
            opt.step()
        dt = timed(step, max(2, a.steps // 2), warm=1)
        out(f"torch_{name}_{a.arch}_train_b{batch}", batch / dt, "img/s")
