"""Gradients through hand-built graphs of linear, ReLU and add layers against PyTorch
(float64, the same weights, libdat's ReLU branch): the loss's parameter gradient and the
input gradient.

What this holds: the backward pass's routing of gradients through adds and nodes with
several consumers, in particular the sharing of gradient buffers between an add and its
inputs (lib/model/grad_share.c), whose rule is easy to get wrong in ways residual networks
do not show: an input with another consumer that runs between the add's other readers, an
add of a node with itself, chains of adds, branches that do not lead to the output, an
output with layers after it. Random graphs cover what the cases do not name."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from libdat import Context, LayerKind, ModelBuilder, Reduction, Tensor

D, CLASSES, N = 6, 4, 5


def rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


class Graph:
    """A layer list [(kind, inputs, name)] built with ModelBuilder and replayed in torch."""

    def __init__(self):
        self.layers = [("input", (), None, D)]

    def add(self, kind, *inputs, out=D):
        name = f"fc{len(self.layers)}" if kind == LayerKind.LINEAR else None
        self.layers.append((kind, inputs, name, out))
        return len(self.layers) - 1

    def build(self, ctx, output):
        b = ModelBuilder(ctx, D, 1, 1)
        for kind, inputs, name, out in self.layers[1:]:
            extra = {"out_features": out} if kind == LayerKind.LINEAR else {}
            b.add(kind, inputs[0], inputs[1] if len(inputs) > 1 else -1, name=name, **extra)
        return b.finish(output, init_seed=5)

    def torch_loss(self, m, x, y, output):
        """Mean cross-entropy of node `output`, with libdat's weights and ReLU masks."""
        p = torch.from_numpy(m.params.numpy().astype(np.float64))
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
            elif kind == LayerKind.RELU:
                mask = m.activation(i, N).reshape(N, -1) > 0
                vals.append(a * torch.from_numpy(mask.astype(np.float64)))
            else:
                vals.append(a + vals[inputs[1]])
        return F.cross_entropy(vals[output], torch.from_numpy(y).long())


def check(g, output):
    rng = np.random.default_rng(len(g.layers) * 7919 + output)
    x = rng.uniform(-1, 1, (N, D, 1, 1)).astype(np.float32)
    y = rng.integers(0, CLASSES, N).astype(np.int32)
    with Context(num_threads=1) as ctx:
        m = g.build(ctx, output)
        xd, yd = Tensor.from_numpy(ctx, x), Tensor.from_numpy(ctx, y)
        loss = m.loss_backward(xd, yd)
        grads = m.grads.numpy()
        dx = Tensor(ctx, x.shape)
        m.input_grad(xd, yd, dx, reduction=Reduction.MEAN)
        g.params = {}
        xt = torch.from_numpy(x).double().requires_grad_(True)
        ref = g.torch_loss(m, xt, y, output)
        ref.backward()
        assert abs(loss - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))
        for name, off, ln, _ in m.segments():
            w, b = g.params[name.rsplit(".", 1)[0]]
            t = (w if name.endswith("weight") else b).grad
            t = np.zeros(ln) if t is None else t.numpy().ravel()  # a layer off the output's path
            assert rel(grads[off:off + ln], t) <= 1e-4, f"gradient {name}"
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


@pytest.mark.parametrize("seed", range(40))
def test_random_graph(seed):
    rng = np.random.default_rng(seed)
    g = Graph()
    nodes = [g.add(LayerKind.LINEAR, 0)]

    def pick():  # mostly recent nodes, so that chains form
        return nodes[max(0, len(nodes) - int(rng.geometric(0.4)))]

    for _ in range(rng.integers(4, 14)):
        kind = rng.choice(["linear", "relu", "add", "add"])
        if kind == "linear":
            nodes.append(g.add(LayerKind.LINEAR, pick()))
        elif kind == "relu":
            nodes.append(g.add(LayerKind.RELU, pick()))
        else:
            nodes.append(g.add(LayerKind.ADD, pick(), pick()))
    check(g, g.add(LayerKind.LINEAR, pick(), out=CLASSES))
