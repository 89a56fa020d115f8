"""PyTorch CPU peer of bench_train_step.c: the same PGD-10 AT step.
usage: train_step_torch.py PRESET BATCH ITERS THREADS"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from models import PRESETS  # noqa: E402
from pgd_torch import pgd_at_step  # noqa: E402

preset, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = PRESETS[preset]()
shape = {"mlp": (1, 28, 28), "cnn_small": (1, 28, 28), "preact_resnet18": (3, 32, 32)}[preset]
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
x = torch.rand(batch, *shape)
y = torch.full((batch,), 3, dtype=torch.long)
eps, steps = 0.1, 10


params = list(model.parameters())


def step():
    pgd_at_step(model, params, opt, x, y, eps, steps)


step()
t0 = time.perf_counter()
for _ in range(iters):
    step()
dt = time.perf_counter() - t0
print(f"{preset} batch={batch} step_img_s={batch * iters / dt:.1f} step_ms={1000 * dt / iters:.1f}")
