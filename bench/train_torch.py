"""The PyTorch counterpart of `scripts/train` (dat-train's defaults): PGD-10 adversarial
training of cnn_small on Fashion-MNIST, eps 0.1, step 2.5 eps / 10 with a random start,
attack in eval mode, momentum SGD (0.9, weight decay 5e-4), one-cycle learning rate
peaking at 0.1 at 40 % of the run, batch 128 (last partial batch dropped); then TA and
PGD-20 RA on the 10 000 test images. Prints one JSON line like dat-train's last.
usage: train_torch.py [EPOCHS] [THREADS] [TRAIN_SUBSET] [SEED] [EVAL_COUNT]
(TRAIN_SUBSET and EVAL_COUNT 0 = all; the seed drives initialization, order and attacks)"""
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
import fmnist  # noqa: E402
from models import PRESETS  # noqa: E402
from pgd_torch import pgd_linf  # noqa: E402

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
subset = int(sys.argv[3]) if len(sys.argv) > 3 else 0
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
eval_count = int(sys.argv[5]) if len(sys.argv) > 5 else 0
torch.set_num_threads(threads)
torch.manual_seed(seed)
x_train, y_train = fmnist.load("train")
x_test, y_test = fmnist.load("test")
if subset:
    x_train, y_train = x_train[:subset], y_train[:subset]
if eval_count:
    x_test, y_test = x_test[:eval_count], y_test[:eval_count]
xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
model = PRESETS["cnn_small"]()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
eps, batch = 0.1, 128
steps_per_epoch = len(xt) // batch
total = epochs * steps_per_epoch


def lr_at(t):
    peak = 0.4 * total
    return 0.1 * (t / peak if t <= peak else (total - t) / (total - peak))


def pgd(x, y, steps):
    return pgd_linf(model, x, y, eps, steps)


t, seconds = 0, 0.0
for epoch in range(epochs):
    perm = torch.randperm(len(xt))
    t0 = time.perf_counter()
    for b in range(steps_per_epoch):
        idx = perm[b * batch:(b + 1) * batch]
        x, y = xt[idx], yt[idx]
        model.eval()
        xa = pgd(x, y, 10)
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(t)
        opt.zero_grad()
        F.cross_entropy(model(xa), y).backward()
        opt.step()
        t += 1
    seconds += time.perf_counter() - t0
model.eval()
clean = robust = 0
for i in range(0, len(x_test), 500):
    x, y = torch.from_numpy(x_test[i:i + 500]), torch.from_numpy(y_test[i:i + 500]).long()
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    clean += int(ok.sum())
    xa = pgd(x, y, 20)
    with torch.no_grad():
        robust += int((ok & (model(xa).argmax(1) == y)).sum())
n = len(x_test)
print(json.dumps({"ta": clean / n, "ra": robust / n,
                  "images_per_s": round(total * batch / seconds, 1), "epochs": epochs,
                  "ranks": 1, "framework": "pytorch " + torch.__version__}))
