"""The l-inf PGD that libdat's PyTorch peers use (benchmarks, training comparisons):
uniform random start in the eps-ball, `steps` signed-gradient steps of the summed
cross-entropy with step 2.5 eps / steps, projection onto the ball and [0, 1]."""
import torch
import torch.nn.functional as F


def pgd_linf(model, x, y, eps, steps):
    alpha = 2.5 * eps / steps
    xa = (x + (torch.rand_like(x) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
        xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return xa.detach()
