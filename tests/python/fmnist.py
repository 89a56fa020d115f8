"""Debian's Fashion-MNIST (package dataset-fashion-mnist) as numpy arrays."""
import gzip
import os
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def _idx(path, magic, header):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = int.from_bytes(data[:4], "big")
    assert got == magic, f"{path}: magic {got:#x}, expected {magic:#x}"
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(header)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * header).reshape(dims)


def load(split="train"):
    """(images float32 [N, 1, 28, 28] in [0, 1], labels int32 [N])."""
    prefix = "train" if split == "train" else "t10k"
    x = _idx(ROOT / f"{prefix}-images-idx3-ubyte.gz", 0x803, 3)
    y = _idx(ROOT / f"{prefix}-labels-idx1-ubyte.gz", 0x801, 1)
    return (x.astype(np.float32) / 255.0)[:, None], y.astype(np.int32)


def available():
    return (ROOT / "t10k-images-idx3-ubyte.gz").exists()
