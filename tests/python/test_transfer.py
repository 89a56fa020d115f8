"""Transfer and model selection in dat-train: finetuning from a checkpoint of another
task (frozen layers bit-identical, a new classifier), the best-RA checkpoint of early
stopping, DAT-LSGD's linear scaling, and the refusals."""
import json

import pytest

import fmnist
import safetensors_np
from test_dat_train import run

pytestmark = pytest.mark.skipif(not fmnist.available(), reason="dataset-fashion-mnist missing")


def model_tensors(path):
    tensors, _ = safetensors_np.load(path)
    return {k: v for k, v in tensors.items() if not k.startswith(("optim.", "train."))}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """cnn_small trained one epoch on classes 0-4."""
    d = tmp_path_factory.mktemp("pre")
    run("--epochs", "1", "--classes", "0-4", "--checkpoint-dir", str(d))
    return d / "last.safetensors"


def test_finetune_on_new_classes_keeps_frozen_layers(tmp_path, pretrained):
    p = run("--epochs", "1", "--classes", "5-9", "--init-from", str(pretrained), "--new-head",
            "--freeze", "2", "--head-lr", "0.1", "--checkpoint-dir", str(tmp_path))
    assert "8 tensors loaded: conv1.weight" in p.stderr, p.stderr
    assert "2 tensors re-initialized: fc2.weight fc2.bias" in p.stderr, p.stderr
    before, after = model_tensors(pretrained), model_tensors(tmp_path / "last.safetensors")
    for name in ("conv1", "conv2", "conv3"):
        for kind in ("weight", "bias"):
            k = f"{name}.{kind}"
            assert before[k].tobytes() == after[k].tobytes(), f"frozen {k} changed"
    for k in ("fc1.weight", "fc2.weight"):
        assert before[k].tobytes() != after[k].tobytes(), f"trainable {k} did not change"


def test_another_head_size_is_reinitialized(tmp_path, pretrained):
    p = run("--epochs", "1", "--classes", "5-7", "--init-from", str(pretrained),
            "--freeze", "1", "--checkpoint-dir", str(tmp_path))
    assert "re-initialized: fc2.weight fc2.bias" in p.stderr, p.stderr
    assert model_tensors(tmp_path / "last.safetensors")["fc2.weight"].shape == (3, 128)


def test_best_checkpoint_is_the_best_validation_epoch(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--epochs", "4", "--val", "128", "--keep-best", "--eval-every", "0",
              "--schedule", "const", "--lr", "0.02"]
    run(*common, "--checkpoint-dir", str(a), "--metrics", str(tmp_path / "m.jsonl"))
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    val = [x["val_ra"] for x in lines]
    best = val.index(max(val)) + 1  # the first epoch reaching the maximum
    run(*common, "--checkpoint-dir", str(b), "--stop-after", str(best))
    kept, replay = model_tensors(a / "best.safetensors"), model_tensors(b / "last.safetensors")
    assert kept.keys() == replay.keys()
    for k in kept:
        assert kept[k].tobytes() == replay[k].tobytes(), f"{k}: best is not epoch {best}"
    tensors, _ = safetensors_np.load(a / "best.safetensors")
    assert int(tensors["train.position"][0]) == best


def test_lsgd_scales_the_rate_with_the_batch(tmp_path):
    m = tmp_path / "m.jsonl"
    run("--epochs", "2", "--baseline", "lsgd", "--schedule", "const", "--attack", "none",
        "--metrics", str(m))
    first = json.loads(m.read_text().splitlines()[0])
    assert first["lr"] == pytest.approx(0.05 * 64 / 128)  # warm-up (1 epoch) is over


def test_init_from_another_architecture_is_refused(pretrained):
    p = run("--epochs", "1", "--model", "mlp", "--init-from", str(pretrained), check=False)
    assert p.returncode != 0
    assert "tensor 'fc1.weight'" in p.stderr, p.stderr


def test_classes_out_of_range_are_refused():
    p = run("--epochs", "1", "--classes", "5-12", check=False)
    assert p.returncode != 0
    assert "out of range" in p.stderr, p.stderr
