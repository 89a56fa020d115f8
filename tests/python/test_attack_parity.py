"""libdat's attacks against PyTorch references on identical weights.

- PGD l-inf / l2 without random start: every iterate, step by step, for cnn_small and
  preact_resnet18. l-inf steps take sign(gradient), which flips where a gradient
  component is ~0 and float32 and float64 disagree on its sign; the tolerance is
  therefore: at most 0.1 % of the coordinates differ by more than 1e-5. l2 steps are
  continuous: norm-wise relative error <= 1e-4.
- SmoothAdv (l2 PGD on the soft smoothed classifier): against Salman et al.'s
  multi-noise attack, one noise draw per call attacked at every step (the noise from
  libdat's own Gaussian copies at the attack's step, which must be that noise);
  norm-wise relative error of each step <= 2e-4.
- TRADES-KL: libdat's input gradient against central finite differences of the
  float64 reference (directional derivatives along random directions, rel. 1e-4).
- PGD-20 robust accuracy of a PyTorch-trained cnn_small on 1 000 Fashion-MNIST test
  images at eps = 0.1: within 1 percentage point of PyTorch's on the same weights.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fmnist
from libdat import Attack, AttackKind, Context, Mode, Model, Norm, Objective, Tensor
from models import PRESETS, load_flat

torch.set_num_threads(2)


def pair(ctx, preset, seed=4):
    m = Model(ctx, preset, init_seed=seed)
    t = PRESETS[preset]().double().eval()
    load_flat(t, m.segments(), m.params.numpy())
    return m, t


def torch_pgd(t, x, y, eps, alpha, steps, norm):
    x0 = torch.from_numpy(x).double()
    yt = torch.from_numpy(y).long()
    xa = x0.clone()
    iterates = []
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(t(xa), yt, reduction="sum")
        g, = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            if norm == Norm.LINF:
                xa = xa + alpha * g.sign()
                xa = torch.min(torch.max(xa, x0 - eps), x0 + eps).clamp(0, 1)
            else:
                gn = g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                xa = xa + alpha * g / torch.where(gn > 0, gn, torch.ones_like(gn))
                d = xa - x0
                dn = d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                xa = (x0 + d * torch.clamp(eps / torch.where(dn > 0, dn, torch.ones_like(dn)),
                                           max=1.0)).clamp(0, 1)
        iterates.append(xa.detach().numpy().copy())
    return iterates


@pytest.mark.parametrize("preset,n", [("cnn_small", 8), ("preact_resnet18", 2)])
@pytest.mark.parametrize("norm,eps,alpha", [(Norm.LINF, 0.1, 0.02), (Norm.L2, 1.0, 0.25)])
def test_pgd_iterates_match_pytorch(preset, n, norm, eps, alpha):
    steps = 5
    with Context(num_threads=2) as ctx:
        m, t = pair(ctx, preset)
        c, h, w, classes = m.shape
        rng = np.random.default_rng(2)
        x = rng.random((n, c, h, w), dtype=np.float32)
        y = rng.integers(0, classes, n).astype(np.int32)
        ref = torch_pgd(t, x, y, eps, alpha, steps, norm)
        xd, yd, xa = Tensor.from_numpy(ctx, x), Tensor.from_numpy(ctx, y), Tensor(ctx, x.shape)
        for k in range(1, steps + 1):
            a = Attack(ctx, kind=AttackKind.PGD, norm=norm, eps=eps, alpha=alpha, steps=k,
                       random_start=False)
            a.perturb(m, xd, yd, xa)
            got, want = xa.numpy().astype(np.float64), ref[k - 1]
            if norm == Norm.LINF:
                frac = np.mean(np.abs(got - want) > 1e-5)
                assert frac <= 1e-3, f"step {k}: {frac:.2%} of the coordinates differ"
            else:
                e = np.linalg.norm(got - want) / np.linalg.norm(want)
                assert e <= 1e-4, f"step {k}: relative error {e:.3g}"


def smoothadv_step(t, x, xa, y, noise, eps, alpha):
    """One step of Salman et al.'s _attack_mutlinoise (smoothing-adversarial,
    code/attacks.py) from xa, in float64: along the normalized gradient of
    -log mean_j softmax(f(xa + eta_j))_y, the image clamped to [0, 1], the perturbation
    renormed to the eps-ball; eta (rows j * N + i) is the same at every step."""
    x0, xa = torch.from_numpy(x).double(), torch.from_numpy(xa).double()
    n, m = x0.shape[0], noise.shape[0] // x0.shape[0]
    eta = torch.from_numpy(noise).double().reshape(m, *x0.shape)
    delta = (xa - x0).requires_grad_(True)
    logits = t((x0 + delta).unsqueeze(0).add(eta).reshape(m * n, *x0.shape[1:]))
    avg = F.softmax(logits, 1).reshape(m, n, -1).mean(0)
    loss = F.nll_loss(torch.log(avg.clamp(min=1e-20)), torch.from_numpy(y).long())
    g, = torch.autograd.grad(loss, delta)
    with torch.no_grad():
        delta = delta + alpha * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = (x0 + delta).clamp(0, 1) - x0
        delta = delta.renorm(p=2, dim=0, maxnorm=eps)
    return (x0 + delta).numpy()


def test_smoothadv_matches_salman_et_al():
    """Iterate by iterate (a step from libdat's previous iterate, as a trajectory can
    cross a ReLU's kink in float32 and not in float64); every call at attack step 0
    draws the same noise, which the Gaussian copies at that step must return."""
    n, m, steps, eps = 6, 4, 5, 0.5
    with Context(num_threads=2) as ctx:
        model, t = pair(ctx, "cnn_small", seed=8)
        rng = np.random.default_rng(5)
        # inside (0, 1) by more than eps: the box never binds, so projecting onto the ball
        # first (libdat) or clamping first (SmoothAdv) gives the same point
        x = (0.3 + 0.4 * rng.random((n, 1, 28, 28))).astype(np.float32)
        y = rng.integers(0, 10, n).astype(np.int32)
        xd, yd, xa = Tensor.from_numpy(ctx, x), Tensor.from_numpy(ctx, y), Tensor(ctx, x.shape)
        copies = Tensor(ctx, (m * n, 1, 28, 28))
        prev, noise = x, None
        for k in range(1, steps + 1):
            # SmoothAdv's step is 2 eps / steps, libdat's default for SMOOTH_PGD
            a = Attack(ctx, kind=AttackKind.SMOOTH_PGD, eps=eps, steps=k, random_start=False,
                       alpha=0.0 if k == steps else 2 * eps / steps, sigma=0.25,
                       noise_samples=m, seed=3)
            if noise is None:
                a.gaussian_copies(Tensor.from_numpy(ctx, np.zeros_like(x)), None, copies)
                noise = copies.numpy()
                a.step = 0
            a.perturb(model, xd, yd, xa)
            got = xa.numpy()
            want = smoothadv_step(t, x, prev, y, noise, eps, 2 * eps / steps)
            e = np.linalg.norm(got - want) / np.linalg.norm(want - prev)
            assert e <= 2e-4, f"step {k}: relative error of the step {e:.3g}"
            prev = got
        a.step = 0
        a.gaussian_copies(xa, None, copies)  # what SmoothAdv trains on: x_adv + that noise
        assert a.step == 1
        assert copies.numpy().tobytes() == (np.tile(got, (m, 1, 1, 1)) + noise).tobytes()


def test_trades_kl_input_gradient_matches_finite_differences():
    with Context(num_threads=2) as ctx:
        m, t = pair(ctx, "cnn_small", seed=6)
        m.mode = Mode.EVAL
        rng = np.random.default_rng(3)
        n = 4
        x = rng.random((n, 1, 28, 28), dtype=np.float32)
        xa = np.clip(x + rng.uniform(-0.05, 0.05, x.shape), 0, 1).astype(np.float32)
        with torch.no_grad():
            target = t(torch.from_numpy(x).double()).float().numpy()
        dx = Tensor(ctx, x.shape)
        m.input_grad(Tensor.from_numpy(ctx, xa), None, dx, objective=Objective.KL,
                     target_logits=Tensor.from_numpy(ctx, target))
        g = dx.numpy().astype(np.float64)
        p = F.softmax(torch.from_numpy(target).double(), 1)

        def kl(xx):
            with torch.no_grad():
                lq = F.log_softmax(t(torch.from_numpy(xx)), 1)
                return float((p * (torch.log(p) - lq)).sum())

        base = xa.astype(np.float64)
        h = 1e-4
        for trial in range(4):
            v = rng.standard_normal(x.shape)
            fd = (kl(base + h * v) - kl(base - h * v)) / (2 * h)
            an = float((g * v).sum())
            assert abs(an - fd) <= 1e-4 * max(abs(fd), 1e-3), \
                f"direction {trial}: analytic {an:.8g}, finite difference {fd:.8g}"


def train_torch_cnn(x, y, epochs=1, eps=0.1, seed=0):
    """A quickly trained robust-ish cnn_small: FGSM with random start (Wong et al.)."""
    torch.manual_seed(seed)
    t = PRESETS["cnn_small"]()
    opt = torch.optim.SGD(t.parameters(), lr=0.05, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            xb, yb = xt[perm[i:i + 128]], yt[perm[i:i + 128]]
            delta = (torch.rand_like(xb) * 2 - 1) * eps
            delta.requires_grad_(True)
            loss = F.cross_entropy(t((xb + delta).clamp(0, 1)), yb)
            g, = torch.autograd.grad(loss, delta)
            xa = (xb + (delta + 1.25 * eps * g.sign()).clamp(-eps, eps)).clamp(0, 1).detach()
            opt.zero_grad()
            F.cross_entropy(t(xa), yb).backward()
            opt.step()
    return t.eval()


@pytest.mark.skipif(not fmnist.available(), reason="dataset-fashion-mnist is not installed")
def test_pgd20_robust_accuracy_matches_pytorch():
    x_train, y_train = fmnist.load("train")
    x_test, y_test = fmnist.load("test")
    t = train_torch_cnn(x_train[:20000], y_train[:20000])
    x, y = x_test[:1000], y_test[:1000]
    eps, steps = 0.1, 20
    alpha = 2.5 * eps / steps
    # PyTorch: PGD-20 with a uniform random start.
    torch.manual_seed(1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    xa = (xt + (torch.rand_like(xt) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(t(xa), yt, reduction="sum"), xa)
        xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), xt - eps), xt + eps).clamp(0, 1)
    with torch.no_grad():
        ra_torch = (t(xa).argmax(1) == yt).float().mean().item()
        ta_torch = (t(xt).argmax(1) == yt).float().mean().item()
    with Context(num_threads=2) as ctx:
        m = Model(ctx, "cnn_small")
        flat = m.params.view()
        for name, off, n, _ in m.segments():
            flat[off:off + n] = t.state_dict()[name].detach().numpy().ravel()
        a = Attack(ctx, eps=eps, steps=steps, seed=5)
        clean = robust = 0
        for i in range(0, 1000, 250):
            c, r = a.robust_accuracy(m, Tensor.from_numpy(ctx, x[i:i + 250]),
                                     Tensor.from_numpy(ctx, y[i:i + 250]))
            clean, robust = clean + c, robust + r
    ta, ra = clean / 1000, robust / 1000
    print(f"TA libdat {ta:.3f} torch {ta_torch:.3f}; PGD-20 RA libdat {ra:.3f} torch {ra_torch:.3f}")
    assert abs(ta - ta_torch) <= 0.002, f"TA libdat {ta:.3f} vs PyTorch {ta_torch:.3f}"
    assert 0.05 < ra_torch < ta_torch, "the trained model should be partly robust"
    assert abs(ra - ra_torch) <= 0.01, f"RA libdat {ra:.3f} vs PyTorch {ra_torch:.3f}"
