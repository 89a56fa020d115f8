"""PyTorch CPU peer of bench_attack.c: PGD-10 (eps 8/255, step 2.5 eps / 10, random
start) in eval mode. usage: attack_torch.py PRESET BATCH ITERS THREADS"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from models import PRESETS  # noqa: E402
from pgd_torch import pgd_linf  # noqa: E402

preset, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = PRESETS[preset]().eval()
for p in model.parameters():
    p.requires_grad_(False)
shape = {"mlp": (1, 28, 28), "cnn_small": (1, 28, 28), "preact_resnet18": (3, 32, 32)}[preset]
x = torch.rand(batch, *shape)
y = torch.full((batch,), 3, dtype=torch.long)
eps, steps = 8 / 255, 10


def pgd():
    return pgd_linf(model, x, y, eps, steps)

pgd()
t0 = time.perf_counter()
for _ in range(iters):
    pgd()
print(f"{preset} batch={batch} attack_img_s={batch * iters / (time.perf_counter() - t0):.1f}")
