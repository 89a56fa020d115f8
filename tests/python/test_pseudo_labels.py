"""dat-train with unlabeled data: a teacher checkpoint pseudo-labels part of the training
set or a .npy file of extra images, and the training runs on both; the misuses are refused."""
import numpy as np
import pytest

import fmnist
from test_dat_train import run

pytestmark = pytest.mark.skipif(not fmnist.available(), reason="dataset-fashion-mnist missing")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    run("--epochs", "1", "--attack", "none", "--train-subset", "256", "--checkpoint-dir", str(d))
    return d / "last.safetensors"


def test_part_of_the_training_set_unlabeled(teacher):
    p = run("--epochs", "1", "--attack", "trades", "--unlabeled", "256", "--teacher",
            str(teacher))
    assert "256 labeled + 256 pseudo-labeled training images" in p.stderr, p.stderr


def test_extra_unlabeled_images(tmp_path, teacher):
    extra = tmp_path / "extra.npy"
    np.save(extra, np.random.default_rng(0).integers(0, 256, (64, 1, 28, 28), dtype=np.uint8))
    p = run("--epochs", "1", "--unlabeled-data", str(extra), "--teacher", str(teacher))
    assert "512 labeled + 64 pseudo-labeled training images" in p.stderr, p.stderr


def test_misuse_is_refused(tmp_path, teacher):
    p = run("--epochs", "1", "--unlabeled", "100", check=False)
    assert p.returncode != 0 and "--teacher" in p.stderr, p.stderr
    p = run("--epochs", "1", "--model", "mlp", "--unlabeled", "100", "--teacher", str(teacher),
            check=False)
    assert p.returncode != 0 and "tensor '" in p.stderr, p.stderr
    p = run("--epochs", "1", "--unlabeled", "512", "--teacher", str(teacher), check=False)
    assert p.returncode != 0 and "no labeled training image" in p.stderr, p.stderr
