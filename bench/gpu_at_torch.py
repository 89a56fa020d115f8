"""PyTorch GPU peer of `scripts/bench gpu-at`: images/s of a whole PGD-k l-inf
adversarial training step (eps 8/255) on synthetic data, plus model-FLOP utilization.

usage: gpu_at_torch.py PRESET BATCH STEPS ITERS VARIANT [--device cuda|cpu]
                       [--warmup N] [--peak-tflops P]
  PRESET   mlp | cnn_small | preact_resnet18 (3x32x32) | resnet50 (torchvision, 3x224x224)
  STEPS    PGD steps k;  ITERS timed AT steps (after --warmup, default 2, untimed ones)
  VARIANT  eager-fp32 | eager-tf32 | eager-bf16-cl | compile-bf16-cl
           (bf16: autocast for every forward, the attack's included, channels_last model
           and input; compile: torch.compile(model), default mode)
prints:  torch <variant> <preset> batch=B steps=k step_img_s=.. step_ms=.. mfu=.. warmup_s=..

One step: model.eval() + frozen params, PGD-k (tests/python/pgd_torch.py), model.train(),
CE(model(xa), y).backward(), SGD(lr 0.01, momentum 0.9, wd 5e-4).step().

FLOP convention: fwd = 2 x multiply-adds of every conv and linear for one image (counted
by forward hooks: 2*Cout*Cin/groups*kh*kw*Hout*Wout, 2*in*out); norms, activations, pools
and the optimizer are not counted. The k input-gradient backwards of the attack (frozen
weights: data gradients only) count 1 x fwd each, the update's full backward 2 x fwd, so
    flops_per_img = fwd * (k + 1) + fwd * k + 2 * fwd = (2 k + 3) fwd,
and mfu = flops_per_img * img_s / peak (a fraction). Default peaks are the H100/H200 SXM
dense datasheet numbers: 989 TFLOP/s for the bf16 variants, 494 for eager-tf32, 67 for
eager-fp32; --peak-tflops overrides. fwd GFLOP/img and the peak go to stderr."""
import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from models import PRESETS  # noqa: E402
from pgd_torch import pgd_at_step  # noqa: E402

VARIANTS = {"eager-fp32": 67.0, "eager-tf32": 494.0, "eager-bf16-cl": 989.0, "compile-bf16-cl": 989.0}
SHAPES = {"mlp": (1, 28, 28), "cnn_small": (1, 28, 28), "preact_resnet18": (3, 32, 32),
          "resnet50": (3, 224, 224)}

ap = argparse.ArgumentParser(description="PGD-k adversarial training step, PyTorch")
ap.add_argument("preset", choices=sorted(SHAPES))
ap.add_argument("batch", type=int)
ap.add_argument("steps", type=int)
ap.add_argument("iters", type=int)
ap.add_argument("variant", choices=list(VARIANTS))
ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--peak-tflops", type=float, default=None)
a = ap.parse_args()


def make_model(preset):
    if preset == "resnet50":
        import torchvision  # lazily: only this preset needs it
        return torchvision.models.resnet50(num_classes=1000), 1000
    return PRESETS[preset](), 10


def forward_flops(model, shape):
    """2 x multiply-adds of the convs and linears of one image's forward."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total[0] += 2 * m.out_channels * m.in_channels // m.groups * kh * kw * out.shape[2] * out.shape[3]
        else:
            total[0] += 2 * m.in_features * m.out_features
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.rand(1, *shape))
    for h in hs:
        h.remove()
    return total[0]


class Autocast(nn.Module):
    """Runs the wrapped model's forward under bf16 autocast and hands back fp32 logits,
    so that the attack's and the update's backwards run outside the autocast region."""

    def __init__(self, inner, device):
        super().__init__()
        self.inner, self.device = inner, device

    def forward(self, x):
        with torch.autocast(self.device, dtype=torch.bfloat16):
            return self.inner(x).float()


warnings.filterwarnings("ignore", message=".*TF32.*")  # torch >= 2.9 prefers fp32_precision
torch.manual_seed(0)
dev, variant, preset = a.device, a.variant, a.preset
cuda = dev == "cuda"
torch.backends.cudnn.benchmark = True
if variant in ("eager-fp32", "eager-tf32"):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = variant == "eager-tf32"
bf16 = variant.endswith("bf16-cl")
peak = a.peak_tflops if a.peak_tflops is not None else VARIANTS[variant]

net, classes = make_model(preset)
shape = SHAPES[preset]
fwd = forward_flops(net, shape)
flops_img = (2 * a.steps + 3) * fwd
print(f"{preset}: fwd {fwd / 1e9:.4f} GFLOP/img, AT step {flops_img / 1e9:.3f} GFLOP/img, "
      f"peak {peak:g} TFLOP/s", file=sys.stderr)

fmt = torch.channels_last if bf16 else torch.contiguous_format
net = net.to(dev, memory_format=fmt)
params = list(net.parameters())
opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
x = torch.rand(a.batch, *shape, device=dev).contiguous(memory_format=fmt)
y = torch.randint(0, classes, (a.batch,), device=dev)
eps = 8 / 255


def sync():
    if cuda:
        torch.cuda.synchronize()


def run():
    model = net
    if variant.startswith("compile"):
        model = torch.compile(net)
    if bf16:
        model = Autocast(model, dev)

    def step():
        pgd_at_step(model, params, opt, x, y, eps, a.steps)

    sync()
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        step()
    sync()
    t1 = time.perf_counter()
    for _ in range(a.iters):
        step()
    sync()
    return t1 - t0, time.perf_counter() - t1


if variant.startswith("compile"):
    try:
        warm, dt = run()
    except Exception as e:  # noqa: BLE001 - report and let the shell benchmark go on
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        print(f"torch {variant} {preset} failed: {msg}")
        sys.exit(0)
else:
    warm, dt = run()
img_s = a.batch * a.iters / dt
print(f"torch {variant} {preset} batch={a.batch} steps={a.steps} step_img_s={img_s:.1f} "
      f"step_ms={1000 * dt / a.iters:.2f} mfu={flops_img * img_s / (peak * 1e12):.4f} warmup_s={warm:.2f}")
