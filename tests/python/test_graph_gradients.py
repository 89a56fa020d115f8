"""Gradients through hand-built graphs of linear, batch-norm, ReLU and add layers against
PyTorch (float64, the same weights, libdat's ReLU branch): the loss's parameter gradient
and the input gradient, in train mode and in eval mode.

What this holds: the backward pass's routing of gradients through adds and nodes with
several consumers, in particular the sharing of gradient buffers between an add and its
inputs (lib/model/grad_share.c), whose rule is easy to get wrong in ways residual networks
do not show: an input with another consumer that runs between the add's other readers, an
add of a node with itself, chains of adds, branches that do not lead to the output, an
output with layers after it. Random graphs cover what the cases do not name, and the
fusions the plan makes where batch norms, adds and ReLUs meet (a layer computing the ReLU
after it, an add computing the batch norm before it, in eval mode a batch norm computing
the add before it: lib/model/graph.c's dat_graph_plan), which change where each pass
writes its output."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from libdat import Context, LayerKind, Mode, ModelBuilder, Reduction, Tensor
from libdat.errors import InvalidArgumentError

D, CLASSES, N = 6, 4, 16
EPS = 1e-5  # the builder's batch-norm default, PyTorch's


def rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


class Graph:
    """A layer list [(kind, inputs, name)] built with ModelBuilder and replayed in torch."""

    def __init__(self):
        self.layers = [("input", (), None, D)]

    def add(self, kind, *inputs, out=D):
        prefix = {LayerKind.LINEAR: "fc", LayerKind.BATCHNORM: "bn"}.get(kind)
        name = f"{prefix}{len(self.layers)}" if prefix else None
        self.layers.append((kind, inputs, name, out))
        return len(self.layers) - 1

    def build(self, ctx, output):
        b = ModelBuilder(ctx, D, 1, 1)
        for kind, inputs, name, out in self.layers[1:]:
            extra = {"out_features": out} if kind == LayerKind.LINEAR else {}
            b.add(kind, inputs[0], inputs[1] if len(inputs) > 1 else -1, name=name, **extra)
        return b.finish(output, init_seed=5)

    def torch_loss(self, m, x, y, output, mode):
        """Mean cross-entropy of node `output`, with libdat's weights and ReLU masks; batch
        norms with the batch's statistics in train mode, libdat's running ones in eval
        mode."""
        p = torch.from_numpy(m.params.numpy().astype(np.float64))
        stats = m.buffers.numpy().astype(np.float64) if m.buffers is not None else None
        bn_index = 0
        seg = {name: (off, ln) for name, off, ln, _ in m.segments()}
        vals = [x.reshape(N, -1)]
        for i, (kind, inputs, name, out) in enumerate(self.layers[1:], start=1):
            a = vals[inputs[0]]
            if kind == LayerKind.LINEAR:
                (wo, wl), (bo, bl) = seg[name + ".weight"], seg[name + ".bias"]
                w = p[wo:wo + wl].view(out, -1).clone().requires_grad_(True)
                bias = p[bo:bo + bl].clone().requires_grad_(True)
                self.params[name] = (w, bias)
                vals.append(a @ w.T + bias)
            elif kind == LayerKind.BATCHNORM:
                (wo, wl), (bo, bl) = seg[name + ".weight"], seg[name + ".bias"]
                w = p[wo:wo + wl].clone().requires_grad_(True)
                bias = p[bo:bo + bl].clone().requires_grad_(True)
                self.params[name] = (w, bias)
                if mode == Mode.TRAIN:
                    mean, var = a.mean(0), a.var(0, unbiased=False)
                else:  # per batch norm, in node order: D running means, D variances
                    k = 2 * D * bn_index
                    mean, var = (torch.from_numpy(stats[k:k + D]),
                                 torch.from_numpy(stats[k + D:k + 2 * D]))
                bn_index += 1
                vals.append((a - mean) / torch.sqrt(var + EPS) * w + bias)
            elif kind == LayerKind.RELU:
                mask = m.activation(i, N).reshape(N, -1) > 0
                vals.append(a * torch.from_numpy(mask.astype(np.float64)))
            else:
                vals.append(a + vals[inputs[1]])
        return F.cross_entropy(vals[output], torch.from_numpy(y).long())


def check(g, output, mode=Mode.TRAIN):
    rng = np.random.default_rng(len(g.layers) * 7919 + output)
    x = rng.uniform(-1, 1, (N, D, 1, 1)).astype(np.float32)
    y = rng.integers(0, CLASSES, N).astype(np.int32)
    with Context(num_threads=1) as ctx:
        m = g.build(ctx, output)
        m.mode = mode
        # Batch norms far from the identity: scales, shifts and running statistics drawn
        # (otherwise a fused batch norm that forgot to normalize would pass in eval mode).
        p = m.params.numpy()
        for name, off, ln, _ in m.segments():
            if name.startswith("bn"):
                lo, hi = (0.5, 1.5) if name.endswith("weight") else (-0.5, 0.5)
                p[off:off + ln] = rng.uniform(lo, hi, ln)
        m.params.write(p)
        if m.buffers is not None:
            blocks = m.buffers.numpy().size // (2 * D)
            m.buffers.write(np.concatenate([np.concatenate(
                [rng.uniform(-0.5, 0.5, D), rng.uniform(0.5, 1.5, D)]) for _ in range(blocks)])
                .astype(np.float32))
        xd, yd = Tensor.from_numpy(ctx, x), Tensor.from_numpy(ctx, y)
        loss = m.loss_backward(xd, yd)
        grads = m.grads.numpy()
        dx = Tensor(ctx, x.shape)
        m.input_grad(xd, yd, dx, reduction=Reduction.MEAN)
        g.params = {}
        xt = torch.from_numpy(x).double().requires_grad_(True)
        ref = g.torch_loss(m, xt, y, output, mode)
        ref.backward()
        assert abs(loss - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))
        ref_grads = np.zeros_like(grads, dtype=np.float64)
        for name, off, ln, _ in m.segments():
            w, b = g.params[name.rsplit(".", 1)[0]]
            t = (w if name.endswith("weight") else b).grad
            if t is not None:  # None: a layer off the output's path
                ref_grads[off:off + ln] = t.numpy().ravel()
        # A batch norm's input gradient sums to 0 over the batch, so the bias gradient of a
        # linear layer before one is 0 but for rounding: each parameter tensor's error is
        # measured against the larger of its own norm and 1 % of the whole gradient's.
        floor = 1e-2 * np.linalg.norm(ref_grads)
        for name, off, ln, _ in m.segments():
            a, t = grads[off:off + ln], ref_grads[off:off + ln]
            err = np.linalg.norm(a - t) / max(np.linalg.norm(t), floor, 1e-30)
            assert err <= 1e-4, f"gradient {name}: {err:.3g}"
        assert rel(dx.numpy(), xt.grad.numpy()) <= 1e-4, "input gradient"


def test_other_consumer_between_the_adds_readers():
    # x feeds y and, last, a; a's other input r must read a's gradient before y's part of
    # x's gradient arrives, so x cannot share a's buffer (the rule refuses it).
    g = Graph()
    x = g.add(LayerKind.LINEAR, 0)
    r = g.add(LayerKind.LINEAR, 0)
    y = g.add(LayerKind.LINEAR, x)
    a = g.add(LayerKind.ADD, r, x)
    s = g.add(LayerKind.ADD, a, y)
    check(g, g.add(LayerKind.LINEAR, s, out=CLASSES))


def test_residual_stream():
    # Blocks x -> relu -> linear -> + x, chained: every add's inputs share one buffer.
    g = Graph()
    x = g.add(LayerKind.LINEAR, 0)
    for _ in range(3):
        h = g.add(LayerKind.LINEAR, g.add(LayerKind.RELU, x))
        x = g.add(LayerKind.ADD, h, x)
    check(g, g.add(LayerKind.LINEAR, x, out=CLASSES))


def test_add_of_a_node_with_itself_and_of_the_input():
    g = Graph()
    x = g.add(LayerKind.LINEAR, 0)
    d = g.add(LayerKind.ADD, x, x)
    e = g.add(LayerKind.ADD, d, 0)
    check(g, g.add(LayerKind.LINEAR, e, out=CLASSES))


def test_dead_branch_and_layers_after_the_output():
    g = Graph()
    x = g.add(LayerKind.LINEAR, 0)
    r = g.add(LayerKind.RELU, x)
    g.add(LayerKind.ADD, r, x)  # leads nowhere
    h = g.add(LayerKind.LINEAR, r)
    s = g.add(LayerKind.ADD, h, x)
    out = g.add(LayerKind.LINEAR, s, out=CLASSES)
    g.add(LayerKind.ADD, s, h)  # after the output
    check(g, out)


def test_an_add_input_is_the_output():
    g = Graph()
    x = g.add(LayerKind.LINEAR, 0, out=CLASSES)
    out = g.add(LayerKind.LINEAR, x, out=CLASSES)
    g.add(LayerKind.ADD, out, x)
    check(g, out)


def test_batch_norms_next_to_adds():
    # An add reading a batch norm that nothing else reads (the add computes it, with the
    # ReLU after the add), a batch norm reading an add (in eval mode it computes the sum),
    # an add right after a batch norm that a later layer reads too (the add does not
    # compute it), and a batch norm with two readers before its ReLU (not fused).
    for mode in (Mode.TRAIN, Mode.EVAL):
        g = Graph()
        x = g.add(LayerKind.LINEAR, 0)
        b = g.add(LayerKind.BATCHNORM, g.add(LayerKind.LINEAR, x))
        s = g.add(LayerKind.RELU, g.add(LayerKind.ADD, b, x))
        t = g.add(LayerKind.ADD, g.add(LayerKind.LINEAR, s), s)
        u = g.add(LayerKind.BATCHNORM, t)
        v = g.add(LayerKind.ADD, u, t)
        w = g.add(LayerKind.ADD, g.add(LayerKind.LINEAR, u), v)
        z = g.add(LayerKind.BATCHNORM, w)
        o = g.add(LayerKind.ADD, z, g.add(LayerKind.RELU, z))
        check(g, g.add(LayerKind.LINEAR, o, out=CLASSES), mode)


@pytest.mark.parametrize("mode", [Mode.TRAIN, Mode.EVAL])
@pytest.mark.parametrize("seed", range(40))
def test_random_graph(seed, mode):
    rng = np.random.default_rng(seed)
    g = Graph()
    nodes = [g.add(LayerKind.LINEAR, 0)]

    def pick():  # mostly recent nodes, so that chains form
        return nodes[max(0, len(nodes) - int(rng.geometric(0.4)))]

    for _ in range(rng.integers(4, 14)):
        kind = rng.choice(["linear", "bn", "relu", "add", "add"])
        if kind == "linear":
            nodes.append(g.add(LayerKind.LINEAR, pick()))
        elif kind == "bn":
            nodes.append(g.add(LayerKind.BATCHNORM, pick()))
        elif kind == "relu":
            nodes.append(g.add(LayerKind.RELU, pick()))
        else:
            nodes.append(g.add(LayerKind.ADD, pick(), pick()))
    check(g, g.add(LayerKind.LINEAR, pick(), out=CLASSES), mode)


def test_average_pool_of_a_kernel_past_46340():
    """The window's size k * k taken in float: in int it overflowed past k = 46340 (a
    flipped sign at 46341, inf at 65536), with DAT_OK."""
    x = np.array([[[[0.75]]], [[[-0.5]]]], np.float32)
    with Context(num_threads=1) as ctx:
        for k in (46341, 65536):
            b = ModelBuilder(ctx, 1, 1, 1)
            p = b.add(LayerKind.AVGPOOL, 0, kernel=k, stride=k, padding=k // 2)
            m = b.finish(b.add(LayerKind.LINEAR, p, name="fc", out_features=2), init_seed=0)
            m.params.write(np.array([1, -1, 0, 0], np.float32))
            z = Tensor(ctx, (2, 2))
            m.forward(Tensor.from_numpy(ctx, x), z)
            want = x.reshape(2) / (float(k) * float(k))  # one value in the window, rest padding
            np.testing.assert_allclose(z.numpy()[:, 0], want, rtol=1e-6)


def test_overwriting_backward_writes_every_parameter_gradient():
    """accumulate = 0 writes the gradient of every parameter: 0 for layers the loss does
    not reach (a dead branch, a layer after the output); they kept stale values."""
    with Context(num_threads=1) as ctx:
        b = ModelBuilder(ctx, 2, 3, 3)
        c1 = b.add(LayerKind.CONV2D, 0, name="conv1", out_features=2, kernel=3, padding=1)
        b.add(LayerKind.CONV2D, 0, name="dead2", out_features=2, kernel=1)
        fc = b.add(LayerKind.LINEAR, c1, name="fc3", out_features=3)
        b.add(LayerKind.LINEAR, fc, name="after4", out_features=3)
        m = b.finish(fc, init_seed=0)
        x = np.random.default_rng(0).random((4, 2, 3, 3), dtype=np.float32)
        y = np.array([0, 1, 2, 0], np.int32)
        m.grads.write(np.full(m.grads.numpy().size, 7.0, np.float32))
        m.loss_backward(Tensor.from_numpy(ctx, x), Tensor.from_numpy(ctx, y))
        g = m.grads.numpy()
        for name, off, n, _ in m.segments():
            reached = name.startswith(("conv1", "fc3"))
            assert reached == bool(np.any(g[off:off + n] != 0)), name
            assert not np.any(g[off:off + n] == 7.0), f"{name} kept its stale gradient"


@pytest.mark.parametrize("mean,std", [(np.inf, 1.0), (0.0, 1e-45), (3e38, 0.01)])
def test_normalization_that_overflows_float_is_refused(mean, std):
    """An infinite mean, or a scale 1 / std or shift mean / std past float, was accepted
    and the forward pass gave NaN with DAT_OK."""
    with Context(num_threads=1) as ctx:
        b = ModelBuilder(ctx, 1, 2, 2)
        with pytest.raises(InvalidArgumentError, match="finite"):
            b.set_normalization([mean], [std])
