"""dat-train end to end, on small slices of Fashion-MNIST: resume is bit-exact, a killed
checkpoint write leaves a loadable checkpoint, bad data and a foreign checkpoint give
clear errors, and two MPI ranks train together."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import fmnist
import safetensors_np
from libdat import Context, Model

BUILD = Path(os.environ["LIBDAT_BUILD"])
TRAIN = BUILD / "examples" / "dat-train" / "dat-train"
TINY = ["--train-subset", "512", "--batch", "64", "--eval-count", "100", "--steps", "2",
        "--eval-steps", "2", "--threads", "1", "--progress", "none", "--lr", "0.05"]

pytestmark = pytest.mark.skipif(not fmnist.available(), reason="dataset-fashion-mnist missing")


def run(*args, check=True, env=None):
    p = subprocess.run([str(TRAIN), *TINY, *args], capture_output=True, text=True, timeout=600,
                       env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_final_line_is_json(tmp_path):
    p = run("--epochs", "1", "--metrics", str(tmp_path / "m.jsonl"))
    last = json.loads(p.stdout.strip().splitlines()[-1])
    for key in ("ta", "ra", "images_per_s", "epochs", "ranks"):
        assert key in last
    assert 0 <= last["ra"] <= last["ta"] <= 1 and last["ranks"] == 1
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epoch"] == 1


def epoch_metrics(p):
    """The epochs' (ta, ra) from a run's JSON lines."""
    lines = [json.loads(x) for x in p.stderr.splitlines() if x.startswith("{\"epoch\"")]
    return [(m["epoch"], m["ta"], m["ra"]) for m in lines]


def test_resume_is_bit_exact(tmp_path):
    """Weights, and the evaluations after the resume (their random starts are keyed by
    the test batch, not by how many batches were evaluated before)."""
    a, b = tmp_path / "a", tmp_path / "b"
    # a model past chance, where the random starts change robust points
    every = ("--eval-every", "1", "--eval-count", "500", "--eval-steps", "1",
             "--train-subset", "2048", "--lr", "0.1", "--steps", "1", "--epochs", "3")
    full = run("--checkpoint-dir", str(a), *every)
    run("--checkpoint-dir", str(b), "--stop-after", "1", *every)
    resumed = run("--checkpoint-dir", str(b), "--resume", *every)
    ta, _ = safetensors_np.load(a / "last.safetensors")
    tb, _ = safetensors_np.load(b / "last.safetensors")
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].tobytes() == tb[k].tobytes(), f"{k} differs after resume"
    assert epoch_metrics(full)[-1] == epoch_metrics(resumed)[-1]


def test_resume_with_another_model_is_refused(tmp_path):
    run("--epochs", "1", "--checkpoint-dir", str(tmp_path))
    p = run("--epochs", "2", "--checkpoint-dir", str(tmp_path), "--resume", "--model", "mlp",
            check=False)
    assert p.returncode != 0
    assert "fc1.weight" in p.stderr or "another model" in p.stderr, p.stderr


@pytest.mark.parametrize("option,first,second", [("--milestones", "0.5", "0.25"),
                                                  ("--threads", "1", "2"),
                                                  ("--eval-steps", "2", "3")])
def test_resume_with_other_bits_deciding_options_is_refused(tmp_path, option, first, second):
    """Options that change the continuation's bits (or its metrics) were not recorded."""
    run("--epochs", "1", "--checkpoint-dir", str(tmp_path), option, first)
    p = run("--epochs", "2", "--checkpoint-dir", str(tmp_path), "--resume", option, second,
            check=False)
    assert p.returncode != 0 and option.lstrip("-").replace("-", "_") in p.stderr, p.stderr


def test_lsgd_reaches_its_peak_rate_before_the_decay():
    """--baseline lsgd on a short run: the default milestones follow the warm-up (at the
    run's 50 % and 75 % they fell inside it, and the peak 0.05 x 64 / 128 was never
    used)."""
    p = run("--model", "mlp", "--attack", "none", "--train-subset", "256", "--eval-every", "0",
            "--baseline", "lsgd", "--epochs", "4")
    lrs = [json.loads(x)["lr"] for x in p.stderr.splitlines() if x.startswith("{\"epoch\"")]
    assert max(lrs) == pytest.approx(0.025) and lrs[-1] < 0.025, lrs


def test_missing_data_names_the_package(tmp_path):
    p = run("--epochs", "1", "--data", str(tmp_path / "nowhere" / "fashion-mnist"), check=False)
    assert p.returncode != 0
    assert "dataset-fashion-mnist" in p.stderr and "train-images" in p.stderr, p.stderr


def test_corrupt_data_is_a_format_error(tmp_path):
    data = tmp_path / "fashion"
    data.mkdir()
    for f in fmnist.ROOT.glob("*.gz"):
        shutil.copy(f, data / f.name)
    (data / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x08 not really gzip")
    p = run("--epochs", "1", "--data", str(data), check=False)
    assert p.returncode != 0
    assert "train-labels-idx1-ubyte.gz" in p.stderr and "DAT_ERR_FORMAT" in p.stderr, p.stderr


def test_killed_during_checkpoints_leaves_a_loadable_one(tmp_path):
    """SIGKILL at random moments of a run that writes a checkpoint every epoch: the
    checkpoint under the real name is always complete (or absent before the first)."""
    rng = np.random.default_rng(0)
    args = [str(TRAIN), *TINY, "--train-subset", "128", "--eval-every", "0",
            "--epochs", "1000", "--checkpoint-dir", str(tmp_path), "--attack", "none"]
    ckpt = tmp_path / "last.safetensors"
    loaded = 0
    for trial in range(6):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A loaded machine may take long to write the first checkpoint: wait for it,
        # then kill at a random moment of the writes that follow.
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(float(rng.random()))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if ckpt.exists():
            with Context() as ctx:
                Model(ctx, "cnn_small").load(str(ckpt))  # raises on a partial file
            loaded += 1
    assert loaded == 6


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun")
def test_two_mpi_ranks(tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", str(TRAIN),
                        *TINY, "--epochs", "1", "--bits", "8", "--checkpoint-dir",
                        str(tmp_path / "ckpt")], capture_output=True, text=True,
                       timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["ranks"] == 2
    # The ranks split the test batches between them: their total equals one process's.
    ckpt = tmp_path / "ckpt" / "last.safetensors"
    q = subprocess.run([str(BUILD / "examples" / "dat-eval" / "dat-eval"), "--checkpoint",
                        str(ckpt), "--count", "100", "--batch", "100", "--eval", "ta",
                        "--json", str(tmp_path / "eval.json")], capture_output=True, text=True,
                       timeout=600)
    assert q.returncode == 0, q.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["ta"] == pytest.approx(last["ta"])


def test_two_ranks_batch_norm_resume_is_bit_exact(tmp_path):
    """Batch norm on two ranks: each rank's shard moves its running statistics, which the
    training attack (eval mode) reads; the ranks average them after every epoch, so the
    checkpoint holds what every rank holds and a resume continues bit for bit."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    args = ["--model", "preact_resnet18", "--steps", "1", "--train-subset", "32", "--batch",
            "8", "--epochs", "2", "--eval-count", "40", "--eval-steps", "1", "--eval-every",
            "0", "--threads", "1", "--progress", "none", "--seed", "2", "--lr", "0.02"]

    def mpi(*more):
        p = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none",
                            str(TRAIN), *args, *more], capture_output=True, text=True,
                           timeout=600, env=env)
        assert p.returncode == 0, p.stderr

    a, b = tmp_path / "a", tmp_path / "b"
    mpi("--checkpoint-dir", str(a))
    mpi("--checkpoint-dir", str(b), "--stop-after", "1")
    mpi("--checkpoint-dir", str(b), "--resume")
    ta, _ = safetensors_np.load(a / "last.safetensors")
    tb, _ = safetensors_np.load(b / "last.safetensors")
    for k in ta:
        assert ta[k].tobytes() == tb[k].tobytes(), f"{k} differs after resume"


def test_smooth_at_resume_is_bit_exact(tmp_path):
    """Smooth-AT (smoothed l2 PGD, 2 Gaussian copies per image) trains and resumes exactly."""
    smooth = ["--smooth-sigma", "0.25", "--noise-copies", "2", "--eps", "0.5"]
    a, b = tmp_path / "a", tmp_path / "b"
    run("--epochs", "2", "--checkpoint-dir", str(a), *smooth)
    run("--epochs", "2", "--checkpoint-dir", str(b), "--stop-after", "1", *smooth)
    run("--epochs", "2", "--checkpoint-dir", str(b), "--resume", *smooth)
    ta, _ = safetensors_np.load(a / "last.safetensors")
    tb, _ = safetensors_np.load(b / "last.safetensors")
    plain = tmp_path / "plain"
    run("--epochs", "2", "--checkpoint-dir", str(plain), "--eps", "0.5")
    tp, _ = safetensors_np.load(plain / "last.safetensors")
    for k in ta:
        assert ta[k].tobytes() == tb[k].tobytes(), f"{k} differs after resume"
    assert any(ta[k].tobytes() != tp[k].tobytes() for k in ta), "noise copies changed nothing"


def test_smooth_at_with_trades_is_refused():
    p = run("--smooth-sigma", "0.25", "--attack", "trades", check=False)
    assert p.returncode != 0 and "--smooth-sigma" in p.stderr


def test_step_graph_needs_cuda_without_smoothing():
    for extra in ([], ["--device", "cuda", "--bits", "8", "--smooth-sigma", "0.25"]):
        p = run("--step-graph", "on", *extra, check=False)
        assert p.returncode != 0 and "--step-graph" in p.stderr
        assert "needs --device cuda, without --smooth-sigma" in p.stderr
