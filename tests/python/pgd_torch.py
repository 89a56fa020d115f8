"""The l-inf PGD that libdat's PyTorch peers use (benchmarks, training comparisons):
uniform random start in the eps-ball, `steps` signed-gradient steps of the summed
cross-entropy with step 2.5 eps / steps, projection onto the ball and [0, 1]; and
one PGD adversarial training step built on it."""
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


def pgd_at_step(model, params, opt, x, y, eps, steps):
    """One PGD-k adversarial training step as libdat's benchmarks take it: the
    attack in eval mode with frozen weights (libdat's default), then the
    cross-entropy of the adversarial batch in train mode and one optimizer step."""
    model.eval()
    for p in params:
        p.requires_grad_(False)
    xa = pgd_linf(model, x, y, eps, steps)
    for p in params:
        p.requires_grad_(True)
    model.train()
    opt.zero_grad(set_to_none=False)
    F.cross_entropy(model(xa), y).backward()
    opt.step()
