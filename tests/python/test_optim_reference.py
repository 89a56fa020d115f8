"""Every optimizer variant against a plain numpy reference written here (float64), for
20 steps on random parameters with several segments of every kind: norm-wise relative
error of the parameters <= 1e-6 after every step. The reference follows the formulas
of include/libdat/dat_optim.h, written independently of the C code."""
import numpy as np
import pytest

from libdat import Context, OptimKind, Optimizer, Schedule, Tensor

WEIGHT, BIAS, BN_W, BN_B = 0, 1, 2, 3
SEGMENTS = [(0, 300, WEIGHT), (300, 20, BIAS), (320, 16, BN_W), (336, 16, BN_B),
            (352, 500, WEIGHT), (852, 10, BIAS)]
TOTAL = 862


def reference(p, grads, kind, lr, mom=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False,
              bias_correction=True, lalr=False, c_l=0.0, c_u=10.0, excl_decay=False,
              excl_lalr=False):
    p = p.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    out = []
    decoupled = decoupled or kind == OptimKind.ADAMW
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        new = p.copy()
        for off, n, k in SEGMENTS:
            s = slice(off, off + n)
            w = 0.0 if (excl_decay and k != WEIGHT) else wd
            gi = g[s] + (0.0 if decoupled else w * p[s])
            if kind == OptimKind.SGD:
                u = gi
            elif kind in (OptimKind.MOMENTUM, OptimKind.NESTEROV):
                m[s] = gi if t == 1 else mom * m[s] + gi
                u = gi + mom * m[s] if kind == OptimKind.NESTEROV else m[s]
            else:
                m[s] = mom * m[s] + (1 - mom) * gi
                v[s] = b2 * v[s] + (1 - b2) * gi * gi
                mh = m[s] / (1 - mom ** t) if bias_correction else m[s]
                vh = v[s] / (1 - b2 ** t) if bias_correction else v[s]
                u = mh / (np.sqrt(vh) + eps)
            if decoupled:
                u = u + w * p[s]
            trust = 1.0
            r, un = np.linalg.norm(p[s]), np.linalg.norm(u)
            if lalr and not (excl_lalr and k != WEIGHT) and r > 0 and un > 0:
                trust = min(max(r, c_l), c_u) / un
            new[s] = p[s] - lr * trust * u
        p = new
        out.append(p.copy())
    return out


VARIANTS = {
    "sgd": dict(kind=OptimKind.SGD, lr=0.05, wd=1e-3),
    "momentum": dict(kind=OptimKind.MOMENTUM, lr=0.05, wd=5e-4),
    "nesterov": dict(kind=OptimKind.NESTEROV, lr=0.05, wd=5e-4, excl_decay=True),
    "adam": dict(kind=OptimKind.ADAM, lr=1e-3, wd=1e-4),
    "adamw": dict(kind=OptimKind.ADAMW, lr=1e-3, wd=1e-2),
    "lars": dict(kind=OptimKind.MOMENTUM, lr=0.02, wd=5e-4, lalr=True, excl_lalr=True),
    "lamb": dict(kind=OptimKind.ADAMW, lr=0.01, wd=1e-2, lalr=True),
    "lamb_no_bias_correction": dict(kind=OptimKind.ADAMW, lr=0.01, wd=1e-2, lalr=True,
                                    bias_correction=False),
    "lamb_paper_reference": dict(kind=OptimKind.ADAMW, lr=0.01, wd=1e-4, lalr=True,
                                 bias_correction=False, eps=1e-6),
    "lamb_clipped": dict(kind=OptimKind.ADAM, lr=0.01, lalr=True, c_l=2.0, c_u=3.0,
                         decoupled=True, wd=1e-3),
}

FIELD = {"kind": "kind", "lr": "lr", "mom": "momentum", "b2": "beta2", "eps": "eps",
         "wd": "weight_decay", "decoupled": "decoupled_decay",
         "bias_correction": "bias_correction", "lalr": "lalr", "c_l": "c_l", "c_u": "c_u",
         "excl_decay": "exclude_bias_bn_decay", "excl_lalr": "exclude_bias_bn_lalr"}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_matches_reference(name):
    cfg = VARIANTS[name]
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(TOTAL).astype(np.float32)
    p0[320:336] = 1.0 + 0.1 * p0[320:336]  # BN scales near 1
    grads = [(0.1 * rng.standard_normal(TOTAL)).astype(np.float32) for _ in range(20)]
    ref = reference(p0, grads, **cfg)
    with Context(num_threads=2) as ctx:
        opt = Optimizer(ctx, segments=SEGMENTS, **{FIELD[k]: v for k, v in cfg.items()})
        params = Tensor.from_numpy(ctx, p0.copy())
        for t, g in enumerate(grads):
            opt.step(params, Tensor.from_numpy(ctx, g))
            got = params.numpy().astype(np.float64)
            e = np.linalg.norm(got - ref[t]) / np.linalg.norm(ref[t])
            assert e <= 1e-6, f"{name}, step {t + 1}: relative error {e:.3g}"


def test_schedule_boundaries():
    with Context() as ctx:
        def lrs(steps, **kw):
            o = Optimizer(ctx, segments=[(0, 4, WEIGHT)], **kw)
            p, g = Tensor.from_numpy(ctx, np.ones(4, np.float32)), Tensor(ctx, (4,))
            out = []
            for _ in range(steps):
                out.append(o.lr)
                o.step(p, g)
            return out
        pw = lrs(12, lr=1.0, schedule=Schedule.PIECEWISE, warmup_steps=4, milestones=[6, 9],
                 gamma=0.1)
        assert pw[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
        assert pw[4:6] == pytest.approx([1.0, 1.0])
        assert pw[6:9] == pytest.approx([0.1] * 3) and pw[9:] == pytest.approx([0.01] * 3)
        cos = lrs(11, lr=2.0, schedule=Schedule.COSINE, warmup_steps=2, total_steps=10)
        assert cos[:2] == pytest.approx([1.0, 2.0])
        assert cos[2] == pytest.approx(2.0) and cos[6] == pytest.approx(1.0)
        assert cos[10] == 0.0
        oc = lrs(11, lr=1.0, schedule=Schedule.ONECYCLE, total_steps=10)
        assert oc[0] == 0.0 and oc[4] == pytest.approx(1.0) and oc[7] == pytest.approx(0.5)
        assert oc[10] == 0.0
        assert lrs(1, lr=0.1, scaling=1, global_batch=512, ref_batch=128) == pytest.approx([0.4])
        assert lrs(1, lr=0.1, scaling=2, global_batch=512, ref_batch=128) == pytest.approx([0.2])


def test_save_load_continue_is_bit_exact():
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(TOTAL).astype(np.float32)
    grads = [(0.1 * rng.standard_normal(TOTAL)).astype(np.float32) for _ in range(10)]
    cfg = dict(kind=OptimKind.ADAMW, lr=0.01, weight_decay=1e-2, lalr=True,
               schedule=Schedule.COSINE, total_steps=10, warmup_steps=2)
    with Context(num_threads=2) as ctx:
        a = Optimizer(ctx, segments=SEGMENTS, **cfg)
        pa = Tensor.from_numpy(ctx, p0.copy())
        for g in grads:
            a.step(pa, Tensor.from_numpy(ctx, g))
        b = Optimizer(ctx, segments=SEGMENTS, **cfg)
        pb = Tensor.from_numpy(ctx, p0.copy())
        for g in grads[:4]:
            b.step(pb, Tensor.from_numpy(ctx, g))
        state, mid = b.state(), pb.numpy()
        c = Optimizer(ctx, segments=SEGMENTS, **cfg)
        c.load_state(state)
        assert c.steps == 4
        pc = Tensor.from_numpy(ctx, mid)
        for g in grads[4:]:
            c.step(pc, Tensor.from_numpy(ctx, g))
        assert pc.numpy().tobytes() == pa.numpy().tobytes()


@pytest.mark.parametrize("kind", [OptimKind.ADAM, OptimKind.ADAMW])
def test_unfrozen_segment_matches_torch(kind):
    """A segment frozen for 10 steps (dat_optim_set_lr_scale 0), then unfrozen,
    moves as the same parameter does under torch.optim.Adam(W) when its gradient
    is None for those steps: PyTorch counts each parameter's own steps for the
    bias correction, and so does libdat."""
    torch = pytest.importorskip("torch")
    frozen, after, n = 10, 5, 40
    rng = np.random.default_rng(11)
    # small parameters: their float32 rounding stays far below the moves compared
    p0 = (0.01 * rng.standard_normal(2 * n)).astype(np.float32)
    grads = [(0.1 * rng.standard_normal(2 * n)).astype(np.float32)
             for _ in range(frozen + after)]
    body = torch.nn.Parameter(torch.from_numpy(p0[:n].copy()))
    head = torch.nn.Parameter(torch.from_numpy(p0[n:].copy()))
    cls = torch.optim.Adam if kind == OptimKind.ADAM else torch.optim.AdamW
    ref = cls([body, head], lr=1e-3, weight_decay=1e-2, eps=1e-8)
    with Context(num_threads=2) as ctx:
        opt = Optimizer(ctx, segments=[(0, n, WEIGHT), (n, n, WEIGHT)], kind=kind, lr=1e-3,
                        weight_decay=1e-2, eps=1e-8)
        opt.set_lr_scale(1, 1, 0.0)
        params = Tensor.from_numpy(ctx, p0.copy())
        for t, g in enumerate(grads):
            if t == frozen:
                opt.set_lr_scale(1, 1, 1.0)
            opt.step(params, Tensor.from_numpy(ctx, g))
            body.grad = torch.from_numpy(g[:n].copy())
            head.grad = torch.from_numpy(g[n:].copy()) if t >= frozen else None
            ref.step()
            want = torch.cat([body, head]).detach().numpy().astype(np.float64) - p0
            got = params.numpy().astype(np.float64) - p0
            e = np.linalg.norm(got - want) / np.linalg.norm(want)
            assert e <= 1e-5, f"step {t + 1}: relative error of the moves {e:.3g}"
