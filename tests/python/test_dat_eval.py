"""dat-eval end to end: a PyTorch state_dict (safetensors) of cnn_small gives the same
clean accuracy as PyTorch on the same weights, certification and AutoAttack write their
JSON, and bad arguments or a checkpoint of another model give clear errors."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import fmnist
import safetensors_np
from models import MLP, CNNSmall

BUILD = Path(os.environ["LIBDAT_BUILD"])
EVAL = BUILD / "examples" / "dat-eval" / "dat-eval"

pytestmark = pytest.mark.skipif(not fmnist.available(), reason="dataset-fashion-mnist missing")


def save(model, path):
    safetensors_np.save(path, {k: v.detach().numpy() for k, v in model.state_dict().items()})
    return path


def run(*args, check=True):
    p = subprocess.run([str(EVAL), "--threads", "2", "--progress", "none", *args],
                       capture_output=True, text=True, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_pytorch_weights_give_pytorch_accuracy(tmp_path):
    torch.manual_seed(3)
    m = CNNSmall().eval()
    ckpt = save(m, tmp_path / "torch.safetensors")
    p = run("--checkpoint", str(ckpt), "--eval", "ta", "--count", "300", "--batch", "128")
    ours = json.loads(p.stdout.strip().splitlines()[-1])
    x, y = fmnist.load("test")
    with torch.no_grad():
        pred = m(torch.from_numpy(x[:300])).argmax(1).numpy()
    assert ours["images"] == 300
    assert abs(ours["ta"] - (pred == y[:300]).mean()) < 1e-9


def test_certify_and_autoattack_write_json(tmp_path):
    torch.manual_seed(4)
    ckpt = save(CNNSmall().eval(), tmp_path / "m.safetensors")
    out = tmp_path / "r.json"
    run("--checkpoint", str(ckpt), "--eval", "ta,pgd,aa,certify", "--count", "6", "--batch",
        "4", "--apgd-steps", "5", "--fab-steps", "5", "--square-queries", "20", "--targets", "2",
        "--n0", "10", "--n", "50", "--radii", "0,0.1", "--per-sample", "on", "--json", str(out))
    r = json.loads(out.read_text())
    assert r["images"] == 6 and len(r["per_sample"]["aa_outcome"]) == 6
    assert r["autoattack"]["ra"] <= r["ta"] and r["pgd"]["ra"] <= r["ta"]
    acc = r["certify"]["certified_accuracy"]
    assert len(acc) == 2 and acc[1] <= acc[0] <= 1
    assert all(v >= 0 for v in r["per_sample"]["cert_radius"])


@pytest.mark.parametrize("args,needle", [
    (["--eval", "certify", "--n0", "200", "--n", "100"], "--n0"),
    (["--alpha", "1.5"], "--alpha"),
    (["--alpha", "0"], "--alpha"),
    (["--sigma", "0"], "--sigma"),
    (["--sigma", "-0.5"], "--sigma"),
    (["--attacks", "apgd-ce,pgd"], "--attacks"),
])
def test_bad_arguments(tmp_path, args, needle):
    p = run("--checkpoint", "x.safetensors", *args, check=False)
    assert p.returncode == 2 and needle in p.stderr, p.stderr


def test_checkpoint_of_another_model(tmp_path):
    ckpt = save(MLP(), tmp_path / "mlp.safetensors")
    p = run("--checkpoint", str(ckpt), "--model", "cnn_small", "--count", "10", check=False)
    assert p.returncode == 1 and "DAT_ERR_FORMAT" in p.stderr and "conv1" in p.stderr, p.stderr
