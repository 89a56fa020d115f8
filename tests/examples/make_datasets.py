"""Writes tiny CIFAR-10, CIFAR-100 and .npy datasets (random images, labels
cycling over the classes) in the file names dat-train and dat-eval read:
    make_datasets.py DIR
DIR/cifar10: data_batch_1.bin .. data_batch_5.bin, test_batch.bin
DIR/cifar100: train.bin, test.bin
DIR/npy: {train,test}_{images,labels}.npy (uint8 N x 32 x 32 x 3, int64 labels)
Standard library only."""
import os
import random
import struct
import sys


def records(n, classes, label_bytes, rng, start=0):
    out = bytearray()
    for i in range(n):
        label = (start + i) % classes
        out += bytes([label // 5] if label_bytes == 2 else []) + bytes([label])
        out += bytes(rng.getrandbits(8) for _ in range(3072))
    return bytes(out)


def npy(path, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % s for s in shape))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(data)


def main(root):
    rng = random.Random(7)
    for name in ("cifar10", "cifar100", "npy"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    for k in range(5):
        with open(os.path.join(root, "cifar10", "data_batch_%d.bin" % (k + 1)), "wb") as f:
            f.write(records(40, 10, 1, rng, 40 * k))
    with open(os.path.join(root, "cifar10", "test_batch.bin"), "wb") as f:
        f.write(records(40, 10, 1, rng))
    # CIFAR-100's records: the coarse label byte, then the fine one (label // 5 stands in).
    with open(os.path.join(root, "cifar100", "train.bin"), "wb") as f:
        f.write(records(200, 100, 2, rng))
    with open(os.path.join(root, "cifar100", "test.bin"), "wb") as f:
        f.write(records(100, 100, 2, rng))
    for part, n in (("train", 200), ("test", 40)):
        pixels = bytes(rng.getrandbits(8) for _ in range(n * 3072))
        npy(os.path.join(root, "npy", part + "_images.npy"), "|u1", (n, 32, 32, 3), pixels)
        labels = b"".join(struct.pack("<q", i % 10) for i in range(n))
        npy(os.path.join(root, "npy", part + "_labels.npy"), "<i8", (n,), labels)


if __name__ == "__main__":
    main(sys.argv[1])
