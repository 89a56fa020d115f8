"""examples/python/train_dat.py under `mpirun -np 2` (Debian's python3-mpi4py):
the ranks end with identical weights, and these equal, bit for bit, those of the
same loop in C (examples/c/dat_mpi.c) under mpirun."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fmnist

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ["LIBDAT_BUILD"])
MPIRUN = shutil.which("mpirun")

pytestmark = [
    pytest.mark.skipif(not fmnist.available(), reason="needs dataset-fashion-mnist"),
    pytest.mark.skipif(MPIRUN is None, reason="needs mpirun (openmpi-bin)"),
    pytest.mark.skipif(not (BUILD / "examples" / "dat_mpi").exists(),
                       reason="libdat built without MPI"),
]


def mpirun(*cmd, env=None):
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1", **(env or {})}
    args = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", "2"]
    for k in ("LIBDAT_LIBRARY", "PYTHONPATH"):
        args += ["-x", k]
    out = subprocess.run(args + [str(c) for c in cmd], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("mode", ["one-sided", "two-sided"])
def test_python_loop_under_mpirun_equals_c(tmp_path, mode):
    pytest.importorskip("mpi4py")
    c_out = mpirun(BUILD / "examples" / "dat_mpi", fmnist.ROOT, 1000, 8, mode, tmp_path / "c.bin")
    assert "weights identical on every rank" in c_out
    py_out = mpirun(sys.executable, ROOT / "examples" / "python" / "train_dat.py",
                    "--data", fmnist.ROOT, "--limit", 1000, "--bits", 8, "--mode", mode,
                    "--out", tmp_path / "py.bin",
                    env={"PYTHONPATH": str(ROOT / "bindings" / "python")})
    last = py_out.strip().splitlines()[-1]
    assert last.startswith("train_dat: 2 ranks, 10 steps, 8-bit " + mode), py_out
    assert "weights identical on every rank" in last
    c, py = (tmp_path / "c.bin").read_bytes(), (tmp_path / "py.bin").read_bytes()
    assert len(c) > 0 and c == py
