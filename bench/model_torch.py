"""PyTorch CPU peer of bench_model.c: the same measurements on the same models.
usage: model_torch.py PRESET BATCH ITERS THREADS"""
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from models import PRESETS  # noqa: E402

preset, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = PRESETS[preset]()
shape = {"mlp": (1, 28, 28), "cnn_small": (1, 28, 28), "preact_resnet18": (3, 32, 32)}[preset]
x = torch.rand(batch, *shape)
y = torch.ones(batch, dtype=torch.long)


def fwd_bwd():
    model.zero_grad(set_to_none=False)
    F.cross_entropy(model(x), y).backward()


def input_grad():
    xa = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
    return g


model.train()
fwd_bwd()
t0 = time.perf_counter()
for _ in range(iters):
    fwd_bwd()
t1 = time.perf_counter()
model.eval()
for p in model.parameters():
    p.requires_grad_(False)  # an attack needs no parameter gradients
input_grad()
t2 = time.perf_counter()
for _ in range(iters):
    input_grad()
t3 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{preset} batch={batch} fwd_bwd_img_s={batch * iters / (t1 - t0):.1f} "
      f"input_grad_img_s={batch * iters / (t3 - t2):.1f} peak_rss_mib={rss:.1f}")
