#!/usr/bin/env python3
"""Distributed adversarial training from Python: one process per worker,
started by mpirun (Debian's python3-mpi4py moves nothing itself here: libdat's
MPI communicator is made over mpi4py's COMM_WORLD).

    mpirun -np 4 python3 examples/python/train_dat.py --epochs 2 --bits 8

Each epoch, every rank takes its shard of the data, and for each batch:
  A1  PGD examples (attack.perturb)
  A2  loss lambda*CE(x) + CE(x_adv) and its gradient (model.loss_backward)
  3-4 b-bit quantized all-reduce of the gradient (comm.allreduce_grads)
  A4  LAMB / LARS step (optim.step_model)
then rank 0 reports clean and robust accuracy on test images. With the default
settings (mlp, 1 epoch) the weights equal those of examples/c/dat_mpi.c bit for bit.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time

from mpi4py import MPI

from libdat import (Attack, Comm, Context, Dataset, Model, Optimizer, OptimKind, QuantMode,
                    Quantizer, Tensor)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--limit", type=int, default=2000, help="training images used (0 = all)")
    p.add_argument("--test-limit", type=int, default=500, help="test images for the accuracy")
    p.add_argument("--model", default="mlp", help="preset: mlp or cnn_small for 28x28 images")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=50, help="per-worker batch")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=3, help="PGD steps in training")
    p.add_argument("--lam", type=float, default=1.0, help="weight of the clean loss")
    p.add_argument("--bits", type=int, default=8, help="gradient bits (32: no quantization)")
    p.add_argument("--mode", choices=["one-sided", "two-sided"], default="one-sided")
    p.add_argument("--optimizer", choices=["lamb", "lars"], default="lamb")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1, help="threads per rank")
    p.add_argument("--out", help="rank 0 writes the final weights here (raw float32)")
    return p.parse_args(argv)


def optimizer(ctx: Context, model: Model, a: argparse.Namespace) -> Optimizer:
    if a.optimizer == "lamb":  # the paper's reference LAMB
        return Optimizer(ctx, model=model, kind=OptimKind.ADAMW, lr=a.lr, eps=1e-6,
                         weight_decay=1e-4, bias_correction=0, lalr=1)
    return Optimizer(ctx, model=model, kind=OptimKind.MOMENTUM, lr=a.lr, momentum=0.9,
                     weight_decay=5e-4, lalr=1)


def train(ctx: Context, world: MPI.Comm, a: argparse.Namespace) -> int:
    rank, ranks = world.Get_rank(), world.Get_size()
    images, labels = (f"{a.data}/train-images-idx3-ubyte.gz",
                      f"{a.data}/train-labels-idx1-ubyte.gz")
    data = Dataset(ctx, images, labels, limit=a.limit, batch_size=a.batch, drop_last=True,
                   seed=1, rank=rank, world_size=ranks)  # one permutation, one shard per rank
    comm = Comm.mpi(ctx, world)
    model = Model(ctx, a.model)
    comm.broadcast_model(model, 0)  # every worker starts from rank 0's weights
    attack = Attack(ctx, eps=a.eps, steps=a.steps, rank=rank)
    quant = Quantizer(ctx, bits=a.bits) if a.bits < 32 else None
    mode = QuantMode.TWO_SIDED if a.mode == "two-sided" else QuantMode.ONE_SIDED
    optim = optimizer(ctx, model, a)
    x, y = data.batch_tensors()
    x_adv = Tensor(ctx, x.shape)
    loss = 0.0
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        for _ in data.epoch(epoch, x, y):
            step = optim.steps
            attack.perturb(model, x, y, x_adv)                                 # A1
            loss = model.loss_backward(x_adv, y, clean_weight=a.lam, x_clean=x)  # A2
            comm.allreduce_grads(model, quant, mode, step)                     # 3-4
            optim.step_model(model)                                            # A4
        seconds = time.perf_counter() - t0
        if rank == 0:
            images_done = data.batches_per_epoch * a.batch * ranks
            print(f"epoch {epoch + 1}: loss {loss:.4f}, {images_done / seconds:.0f} images/s "
                  f"on {ranks} ranks", flush=True)

    weights = model.params.view()  # zero-copy numpy view of the flat parameters
    digests = world.allgather(hashlib.sha256(weights.tobytes()).hexdigest())
    stats = comm.stats()
    if rank == 0:
        clean, robust = evaluate(ctx, model, a)
        print(f"train_dat: {ranks} ranks, {optim.steps} steps, {a.bits}-bit {a.mode}, "
              f"{stats.bytes_sent} bytes sent by rank 0, clean {clean:.3f}, robust {robust:.3f}, "
              f"weights {'identical' if len(set(digests)) == 1 else 'DIFFERENT'} on every rank",
              flush=True)
        if a.out:
            weights.tofile(a.out)
    comm.close()  # before MPI is finalized
    return 0 if len(set(digests)) == 1 else 1


def evaluate(ctx: Context, model: Model, a: argparse.Namespace) -> tuple[float, float]:
    """Clean and PGD-10 robust accuracy on the first test images."""
    test = Dataset(ctx, f"{a.data}/t10k-images-idx3-ubyte.gz",
                   f"{a.data}/t10k-labels-idx1-ubyte.gz", limit=a.test_limit, shuffle=False,
                   batch_size=100, drop_last=True)
    pgd = Attack(ctx, eps=a.eps, steps=10, alpha=a.eps / 4, seed=1)
    x, y = test.batch_tensors()
    clean = robust = seen = 0
    for n in test.epoch(0, x, y):
        c, r = pgd.robust_accuracy(model, x, y)
        clean, robust, seen = clean + c, robust + r, seen + n
    return clean / max(seen, 1), robust / max(seen, 1)


def main() -> int:
    a = parse(sys.argv[1:])
    world = MPI.COMM_WORLD
    with Context(num_threads=a.threads) as ctx:  # closes every handle before MPI ends
        rc = train(ctx, world, a)
    return world.allreduce(rc, op=MPI.MAX)


if __name__ == "__main__":
    sys.exit(main())
