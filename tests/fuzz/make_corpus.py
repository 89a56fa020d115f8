#!/usr/bin/python3
"""Writes the seed corpus of the reader fuzzers (tests/fuzz/corpus/KIND/):
small valid files of every accepted kind and a few known-bad ones. The unit
tests (tests/unit/test_data.c) replay every file of the corpus, so inputs that
once crashed a reader belong here too: copy a crash-* file that run.sh found
into the folder of its kind. Run with Debian's python3 (numpy)."""
import gzip
import io
import os
import struct

import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(kind, name, data):
    os.makedirs(os.path.join(root, kind), exist_ok=True)
    with open(os.path.join(root, kind, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


# IDX: images (magic 0x803, N x H x W) and labels (0x801, N).
img = struct.pack(">IIII", 0x803, 3, 4, 4) + bytes(range(48))
lab = struct.pack(">II", 0x801, 3) + bytes([1, 7, 9])
put("idx", "images.idx", img)
put("idx", "images.idx.gz", gz(img))
put("idx", "labels.idx", lab)
put("idx", "labels.idx.gz", gz(lab))
put("idx", "two-members.gz", gz(img[:20]) + gz(img[20:]))
put("idx", "truncated.idx", img[:30])
put("idx", "huge-dims.idx", struct.pack(">IIII", 0x803, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
put("idx", "double.gz", gz(gz(img)))
put("idx", "gzip-cut.gz", gz(img)[:-9])

# CIFAR: 1 + 3072 (CIFAR-10) or 2 + 3072 (CIFAR-100) bytes per record.
pix = bytes((i * 7) & 255 for i in range(3072))
put("cifar", "cifar10-2.bin", bytes([3]) + pix + bytes([9]) + pix)
put("cifar", "cifar100-2.bin", bytes([4, 55]) + pix + bytes([19, 99]) + pix)
put("cifar", "bad-label.bin", bytes([10]) + pix)
put("cifar", "short.bin", bytes([1]) + pix[:100])


def npy(a):
    b = io.BytesIO()
    np.save(b, a, allow_pickle=False)
    return b.getvalue()


rng = np.random.default_rng(0)
put("npy", "u8-nhw.npy", npy(rng.integers(0, 256, (2, 4, 4), dtype=np.uint8)))
put("npy", "f32-nchw.npy", npy(rng.random((2, 3, 4, 4), dtype=np.float32)))
put("npy", "u8-nhwc.npy", npy(rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)))
put("npy", "i32-labels.npy", npy(np.array([0, 3], dtype=np.int32)))
put("npy", "i64-labels.npy", npy(np.array([[1], [2]], dtype=np.int64)))
put("npy", "u8-labels.npy", npy(np.array([5, 6, 7], dtype=np.uint8)))
put("npy", "fortran.npy", npy(np.asfortranarray(np.zeros((2, 3, 4), dtype=np.uint8))))
put("npy", "f8.npy", npy(np.zeros((2, 2, 2), dtype=np.float64)))
bad = npy(np.zeros((2, 2, 2), dtype=np.uint8)).replace(b"'shape':", b"'shape' ")
put("npy", "bad-dict.npy", bad)
