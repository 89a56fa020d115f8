"""A LAMB step in PyTorch (the paper's reference form: AdamW direction, layer-wise trust
ratio), over the same segment sizes as bench_optim.c, with torch's foreach kernels.
usage: optim_torch.py N ITERS THREADS; prints "lamb n=<N> step_ms=<..>"."""
import sys
import time

import torch

n, iters, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
sizes, off, k = [], 0, 0
while off < n and k < 256:
    ln = 589824 if k % 3 == 0 else 512
    if off + ln > n or k == 255:
        ln = n - off
    sizes.append(ln)
    off += ln
    k += 1
params = [torch.randn(s) for s in sizes]
grads = [torch.randn(s) for s in sizes]
m = [torch.zeros(s) for s in sizes]
v = [torch.zeros(s) for s in sizes]
lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 1e-4


@torch.no_grad()
def step(t):
    torch._foreach_mul_(m, b1)
    torch._foreach_add_(m, grads, alpha=1 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
    mh = torch._foreach_div(m, 1 - b1 ** t)
    vh = torch._foreach_sqrt(torch._foreach_div(v, 1 - b2 ** t))
    torch._foreach_add_(vh, eps)
    u = torch._foreach_div(mh, vh)
    torch._foreach_add_(u, params, alpha=wd)
    pn = torch._foreach_norm(params)
    un = torch._foreach_norm(u)
    for p, d, a, b in zip(params, u, pn, un):
        trust = (a.clamp(0, 10) / b) if (a > 0 and b > 0) else 1.0
        p.add_(d, alpha=-lr * float(trust))


step(1)
t0 = time.perf_counter()
for i in range(iters):
    step(i + 2)
print(f"lamb n={n} step_ms={1e3 * (time.perf_counter() - t0) / iters:.2f}")
