"""Weights move both ways between PyTorch and libdat through safetensors files with
PyTorch's state_dict names: the same model then gives the same logits."""
import numpy as np
import torch

import safetensors_np
from libdat import Context, Model, Tensor
from models import PRESETS

torch.set_num_threads(2)


def logits(m, x):
    z = Tensor(m._ctx, (x.shape[0], m.shape[3]))
    m.forward(Tensor.from_numpy(m._ctx, x), z)
    return z.numpy()


def test_pytorch_to_libdat_and_back(tmp_path):
    torch.manual_seed(0)
    t = PRESETS["preact_resnet18"]()
    t.train()
    with torch.no_grad():  # non-trivial BN statistics
        t(torch.rand(8, 3, 32, 32))
    t.eval()
    state = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    src = tmp_path / "torch.safetensors"
    safetensors_np.save(src, state)
    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        ref = t(torch.from_numpy(x)).numpy()
    with Context(num_threads=2) as ctx:
        m = Model(ctx, "preact_resnet18", init_seed=9)
        m.load(str(src))
        m.mode = 1  # eval
        np.testing.assert_allclose(logits(m, x), ref, rtol=1e-4, atol=1e-5)
        back = tmp_path / "libdat.safetensors"
        m.save(str(back))
    tensors, meta = safetensors_np.load(back)
    assert meta["format"] == "pt"
    t2 = PRESETS["preact_resnet18"]()
    t2.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    for k, v in t.state_dict().items():
        assert torch.equal(t2.state_dict()[k], v), f"{k} changed on the way back"
