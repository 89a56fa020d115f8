"""PyTorch twins of libdat's presets, with the same state_dict names, for the
parity tests (and for moving weights between the two)."""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, classes=10, in_features=784):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, classes)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNNSmall(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(3136, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class PreActBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        in_planes = 64
        for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            blocks = []
            for s in (stride, 1):
                blocks.append(PreActBlock(in_planes, planes, s))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, 4)
        return self.linear(torch.flatten(out, 1))


class WideBlock(nn.Module):
    """The TRADES / Madry-lab BasicBlock (no dropout); the shortcut convolution, of
    relu(bn1(x)), registered last: libdat's segment order."""

    def __init__(self, in_planes, out_planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return (self.convShortcut(act) if hasattr(self, "convShortcut") else x) + out


class WideGroup(nn.Module):
    """Holds the blocks under .layer, for TRADES' "block1.layer.0" names."""

    def __init__(self, in_planes, out_planes, blocks, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(in_planes if i == 0 else out_planes, out_planes,
                                               stride if i == 0 else 1) for i in range(blocks)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, classes=10, depth=28, widen=10):
        super().__init__()
        blocks = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.block1 = WideGroup(16, widths[0], blocks, 1)
        self.block2 = WideGroup(widths[0], widths[1], blocks, 2)
        self.block3 = WideGroup(widths[1], widths[2], blocks, 2)
        self.bn1 = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        # A fixed 8 x 8 window as in libdat (and TRADES), not a global pool: it covers the
        # whole map only at 32 x 32 (below, the preset fails to build), hence no smaller
        # input for the parity test.
        out = F.avg_pool2d(F.relu(self.bn1(out)), 8)
        return self.fc(torch.flatten(out, 1))


class Bottleneck(nn.Module):
    """torchvision's, stride on the 3x3 convolution; the ReLUs called in libdat's node
    order, the downsample's BN registered after bn3 (libdat's buffer order)."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        if stride != 1 or in_planes != 4 * planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, 4 * planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if hasattr(self, "downsample") else x
        return F.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        for i, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(in_planes, planes, 2 if b == 0 and i > 0 else 1))
                in_planes = 4 * planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        out = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.fc(torch.flatten(out, 1))


PRESETS = {"mlp": MLP, "cnn_small": CNNSmall, "preact_resnet18": PreActResNet18,
           "wrn_28_10": WideResNet, "resnet50": ResNet50}
# Model options of the parity tests' presets where they differ from the preset's own:
# resnet50 at 64 x 64 with 10 classes (its graph is the same at any size). At 32 x 32, or a
# batch of 4, its gradient at initialization is too ill-conditioned for float32: PyTorch's
# own float32 run is 1.1e-4 to 3.7e-4 off float64 there (libdat's as much), 6.3e-5 here.
PRESET_OPTIONS = {"resnet50": {"num_classes": 10, "input_shape": (3, 64, 64)}}


def load_flat(model, segments, flat):
    """Copies libdat's flat parameters (segments: (name, offset, length, kind)) into a
    torch model; every parameter of the model must be covered."""
    state = model.state_dict()
    seen = set()
    for name, off, n, _ in segments:
        t = state[name]
        assert t.numel() == n, f"{name}: libdat has {n} values, torch {t.numel()}"
        t.copy_(torch.from_numpy(flat[off:off + n].copy()).view_as(t))
        seen.add(name)
    params = {k for k, _ in model.named_parameters()}
    assert params == seen, f"not covered: {sorted(params - seen)}"


def flat_grads(model, segments):
    """torch's parameter gradients laid out as libdat's flat gradient buffer."""
    named = dict(model.named_parameters())
    total = sum(n for _, _, n, _ in segments)
    out = torch.zeros(total, dtype=torch.float64)
    for name, off, n, _ in segments:
        g = named[name].grad
        if g is not None:
            out[off:off + n] = g.detach().double().flatten()
    return out.numpy()


def bn_buffers(model):
    """Running means and variances in libdat's buffer order (per BN layer: mean, var),
    for the BN layers in libdat's node order = module registration order of the
    presets' forward."""
    parts = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            parts += [m.running_mean.detach().double(), m.running_var.detach().double()]
    return torch.cat(parts).numpy() if parts else None


@contextlib.contextmanager
def relu_branch(masks):
    """Makes every F.relu of these models follow the given 0/1 masks, in call order:
    the float64 reference then computes the very branch of the piecewise-linear
    network that a float32 run took. Without it, an activation within rounding of
    0 may take the other side, which changes gradients legitimately and makes a
    tight parity check impossible."""
    queue = list(masks)
    original = F.relu

    def masked(v, inplace=False):
        m = queue.pop(0)
        assert m.size == v.numel(), f"mask {m.shape} for a relu of {tuple(v.shape)}"
        m = m.reshape(tuple(v.shape))
        return v * torch.from_numpy(m.astype(float)).to(v.dtype)

    F.relu = masked
    try:
        yield
    finally:
        F.relu = original
    assert not queue, f"{len(queue)} masks were not used"
