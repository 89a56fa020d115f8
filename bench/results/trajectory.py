"""libdat against PyTorch step by step from the same start: cnn_small with PyTorch's
initial weights (or, with LIBDAT_INIT=1, libdat's of the seed) on both sides, the same
batches of the first 6 000 Fashion-MNIST training images, momentum SGD with the one-cycle
rate of the main recipe (46 steps of 128); with "pgd", each side's own PGD-10 (eps 0.1)
inside. Prints both training losses every 5 steps. A diagnostic of docs/results.md.

    /usr/bin/python3 bench/results/trajectory.py [none|pgd] [SEED]
"""
import sys, numpy as np, torch, torch.nn.functional as F
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python")); sys.path.insert(0, str(ROOT / "bindings" / "python"))
import os; os.environ.setdefault("LIBDAT_LIBRARY", str(ROOT / "build" / "libdat.so"))
import fmnist, safetensors_np
from models import CNNSmall
from pgd_torch import pgd_linf
from libdat import Context, Model, Tensor
from libdat.optim import Optimizer, OptimKind, Schedule
from libdat.attack import Attack
ATTACK = len(sys.argv) > 1 and sys.argv[1] == 'pgd'
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.manual_seed(SEED); torch.set_num_threads(1)
INIT = f"/tmp/trajectory-init-{os.getpid()}.safetensors"
x, y = fmnist.load("train"); x, y = x[:6000], y[:6000]
tm = CNNSmall()
safetensors_np.save(INIT, {k: v.detach().numpy() for k, v in tm.state_dict().items()})
lr_peak, total, B = 0.1, 46, 128
def lr_at(t):
    peak = 0.4 * total
    return lr_peak * (t / peak if t <= peak else (total - t) / (total - peak))
opt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
with Context(seed=1, num_threads=1) as ctx:
    if os.environ.get("LIBDAT_INIT"):  # libdat's own initialization, copied into torch
        m = Model(ctx, "cnn_small", init_seed=SEED)
        sd = m.state_dict()
        tsd = tm.state_dict()
        tm.load_state_dict({k: torch.from_numpy(np.array(v)).reshape(tsd[k].shape) for k, v in sd.items()})
        opt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    else:
        m = Model(ctx, "cnn_small"); m.load(INIT)
    o = Optimizer(ctx, m, kind=OptimKind.MOMENTUM, lr=0.1, momentum=0.9, weight_decay=5e-4,
                  schedule=Schedule.ONECYCLE, total_steps=total)
    xt = Tensor(ctx, [B, 1, 28, 28]); yt = Tensor(ctx, [B], dtype=2)
    perm = np.random.default_rng(SEED).permutation(6000)
    atk = Attack(ctx, eps=0.1, steps=10, seed=SEED); xa = Tensor(ctx, [B, 1, 28, 28])
    for t in range(total):
        idx = perm[t * B:(t + 1) * B]
        xb, yb = x[idx], y[idx].astype(np.int32)
        for g in opt.param_groups: g["lr"] = lr_at(t)
        xtb, ytb = torch.from_numpy(xb), torch.from_numpy(yb).long()
        if ATTACK:
            xtb = pgd_linf(tm, xtb, ytb, 0.1, 10)
        opt.zero_grad(); lt = F.cross_entropy(tm(xtb), ytb); lt.backward(); opt.step()
        xt.write(xb); yt.write(yb)
        if ATTACK:
            atk.perturb(m, xt, yt, xa)
        ll = m.loss_backward(xa if ATTACK else xt, yt); o.step_model(m)
        if t % 5 == 0 or t == total - 1:
            print(f"step {t:2d} lr {lr_at(t):.4f} torch loss {lt.item():.4f} libdat loss {ll:.4f}")
os.remove(INIT)
