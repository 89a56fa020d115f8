"""APGD-CE (Croce & Hein 2020) in PyTorch, the reference of libdat's lib/eval/apgd.c:
written from the paper and the published AutoAttack code (autoattack/autopgd_base.py,
attack_single_run), l-inf and l2, one restart, batched.

- start: x + eps * t / ||t||_inf (t uniform in [-1, 1]) for l-inf, x + eps * t / ||t||_2
  (t Gaussian) for l2, clipped to [0, 1];
- step size 2 eps per sample; momentum 0.75 from the second step on;
- checkpoints after 22 % of the iterations, then windows shrinking by 3 % down to 6 %:
  the step halves (and the iterate restarts from the best point) where the loss rose in
  at most 75 % of the window's steps, or where the previous checkpoint did not halve and
  the best loss has not improved since;
- a point counts as broken as soon as any iterate is misclassified.
"""
import torch
import torch.nn.functional as F


def _lp(v, norm):
    flat = v.flatten(1)
    return flat.abs().max(1)[0] if norm == "linf" else flat.norm(dim=1)


def _expand(v, like):
    return v.view(-1, *([1] * (like.dim() - 1)))


def _l2_project(x, v, eps):
    d = v - x
    n = _expand(_lp(d, "l2"), d)
    return (x + d / (n + 1e-12) * torch.clamp(n, max=eps)).clamp(0.0, 1.0)


def apgd_ce(model, x, y, eps, norm="linf", n_iter=100, rho=0.75, generator=None):
    """Returns (robust, x_best_adv): robust[i] is False where an adversarial example was found."""
    n = x.shape[0]
    k = max(int(0.22 * n_iter), 1)
    k_min, k_decr = max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1
        x_adv = x + eps * t / _expand(_lp(t, "linf"), t)
    else:
        t = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x_adv = x + eps * t / _expand(_lp(t, "l2") + 1e-12, t)
    x_adv = x_adv.clamp(0.0, 1.0)

    def loss_grad(xa):
        xa = xa.clone().requires_grad_(True)
        logits = model(xa)
        loss = F.cross_entropy(logits, y, reduction="none")
        g, = torch.autograd.grad(loss.sum(), xa)
        return loss.detach(), g.detach(), logits.detach()

    loss, grad, logits = loss_grad(x_adv)
    robust = logits.argmax(1) == y
    x_best_adv, x_best, grad_best = x_adv.clone(), x_adv.clone(), grad.clone()
    loss_best, loss_best_last = loss.clone(), loss.clone()
    reduced_last = torch.ones(n, dtype=torch.bool)
    loss_steps = torch.zeros(n_iter, n, dtype=x.dtype)
    step = torch.full((n,), 2.0 * eps, dtype=x.dtype)
    x_old = x_adv.clone()
    since = 0
    for i in range(n_iter):
        with torch.no_grad():
            move = x_adv - x_old
            x_old = x_adv.clone()
            a = 0.75 if i > 0 else 1.0
            s = _expand(step, x)
            if norm == "linf":
                x1 = torch.min(torch.max(x_adv + s * grad.sign(), x - eps), x + eps).clamp(0, 1)
                x1 = torch.min(torch.max(x_adv + (x1 - x_adv) * a + move * (1 - a), x - eps),
                               x + eps).clamp(0, 1)
            else:
                g = grad / (_expand(_lp(grad, "l2"), grad) + 1e-12)
                x1 = _l2_project(x, x_adv + s * g, eps)
                x1 = _l2_project(x, x_adv + (x1 - x_adv) * a + move * (1 - a), eps)
            x_adv = x1
        loss, grad, logits = loss_grad(x_adv)
        with torch.no_grad():
            wrong = logits.argmax(1) != y
            x_best_adv[wrong] = x_adv[wrong]
            robust &= ~wrong
            loss_steps[i] = loss
            better = loss > loss_best
            x_best[better], grad_best[better] = x_adv[better], grad[better]
            loss_best[better] = loss[better]
            since += 1
            if since == k:
                rises = torch.zeros(n)
                for c in range(k):  # row -1 wraps to the last one, as in the reference
                    rises += (loss_steps[i - c] > loss_steps[i - c - 1]).float()
                halve = (rises <= k * rho) | (~reduced_last & (loss_best_last >= loss_best))
                reduced_last = halve.clone()
                loss_best_last = loss_best.clone()
                step[halve] /= 2.0
                x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
                k = max(k - k_decr, k_min)
                since = 0
    return robust, x_best_adv
