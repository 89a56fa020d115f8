"""libdat's APGD-CE (dat-eval --attacks apgd-ce) against the PyTorch APGD-CE of
apgd_torch.py on identical weights: on 1 000 Fashion-MNIST test images of an adversarially
trained cnn_small, the robust accuracies agree within 1 percentage point, and APGD-CE is
at least as strong as PGD-20.

The model: LIBDAT_AA_CHECKPOINT if set (e.g. scripts/train's), else a short PGD-3 run of
dat-train on 10 000 training images made here. scripts/test runs it on the first 250 test
images (the 1 000 take about 15 minutes on 2 cores); LIBDAT_AA_IMAGES=1000 runs the
issue's check, whose figures are in docs/results.md."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import fmnist
import safetensors_np
from apgd_torch import apgd_ce
from models import CNNSmall

BUILD = Path(os.environ["LIBDAT_BUILD"])
TRAIN = BUILD / "examples" / "dat-train" / "dat-train"
EVAL = BUILD / "examples" / "dat-eval" / "dat-eval"
IMAGES = int(os.environ.get("LIBDAT_AA_IMAGES", "250"))
EPS = 0.1

pytestmark = pytest.mark.skipif(not fmnist.available(), reason="dataset-fashion-mnist missing")
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    given = os.environ.get("LIBDAT_AA_CHECKPOINT")
    if given:
        return Path(given)
    d = tmp_path_factory.mktemp("aa")
    subprocess.run([str(TRAIN), "--model", "cnn_small", "--attack", "pgd", "--eps", str(EPS),
                    "--steps", "3", "--train-subset", "10000", "--epochs", "1", "--schedule",
                    "onecycle", "--lr", "0.1", "--eval-count", "100", "--eval-steps", "2",
                    "--threads", "2", "--progress", "none", "--checkpoint-dir", str(d)],
                   check=True, capture_output=True, timeout=1800)
    return d / "last.safetensors"


def torch_model(path):
    tensors, _ = safetensors_np.load(path)
    m = CNNSmall().eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()
             if k in m.state_dict()}
    m.load_state_dict(state)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def test_apgd_ce_agrees_with_pytorch(checkpoint, tmp_path):
    out = tmp_path / "r.json"
    subprocess.run([str(EVAL), "--checkpoint", str(checkpoint), "--count", str(IMAGES),
                    "--eval", "ta,pgd,aa", "--attacks", "apgd-ce", "--eps", str(EPS),
                    "--threads", "2", "--progress", "none", "--per-sample", "on",
                    "--json", str(out)], check=True, capture_output=True, timeout=3600)
    ours = json.loads(out.read_text())
    x, y = fmnist.load("test")
    x, y = torch.from_numpy(x[:IMAGES]), torch.from_numpy(y[:IMAGES]).long()
    model = torch_model(checkpoint)
    gen = torch.Generator().manual_seed(0)
    robust = []
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    for s in range(0, IMAGES, 250):
        xs, ys = x[s:s + 250], y[s:s + 250]
        r, xa = apgd_ce(model, xs, ys, EPS, "linf", 100, generator=gen)
        assert (xa - xs).abs().max() <= EPS + 1e-6 and xa.min() >= 0 and xa.max() <= 1
        robust.append(r)
    theirs = (torch.cat(robust) & clean).float().mean().item()
    print(f"APGD-CE robust accuracy: libdat {ours['autoattack']['ra']:.4f}, "
          f"PyTorch {theirs:.4f}; PGD-20 {ours['pgd']['ra']:.4f}; TA {ours['ta']:.4f} "
          f"(torch TA {clean.float().mean().item():.4f})")
    assert abs(ours["ta"] - clean.float().mean().item()) < 1e-3
    assert abs(ours["autoattack"]["ra"] - theirs) <= 0.01
    assert ours["autoattack"]["ra"] <= ours["pgd"]["ra"]
