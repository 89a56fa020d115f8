#!/usr/bin/env python3
"""One epoch of distributed adversarial training on one worker: the loop of
examples/c/dat_epoch.c in Python, with the same settings, so both end with
bit-identical weights (tests/examples/test_three_languages.sh).

    python3 examples/python/dat_epoch.py [fashion-mnist folder] [weights.bin]
"""
from __future__ import annotations

import sys

import libdat
from libdat import (Attack, Comm, Context, Dataset, Model, Optimizer, OptimKind, QuantMode,
                    Quantizer)


def main(folder: str, out: str | None) -> None:
    with Context(seed=2022, num_threads=2) as ctx:
        data = Dataset(ctx, f"{folder}/train-images-idx3-ubyte.gz",
                       f"{folder}/train-labels-idx1-ubyte.gz",
                       limit=2000, batch_size=100, seed=7, drop_last=True)
        model = Model(ctx, "mlp", init_seed=1)
        attack = Attack(ctx, eps=0.1, steps=3, seed=11)
        quant = Quantizer(ctx, bits=8, seed=5)
        comm = Comm.self(ctx)
        optim = Optimizer(ctx, model=model, kind=OptimKind.ADAMW, lr=0.01, eps=1e-6,
                          weight_decay=1e-4, bias_correction=0, lalr=1)  # the paper's LAMB
        x, y = data.batch_tensors()
        x_adv = libdat.Tensor(ctx, x.shape)
        loss = 0.0
        for _ in data.epoch(0, x, y):
            step = optim.steps
            attack.perturb(model, x, y, x_adv)                               # A1
            loss = model.loss_backward(x_adv, y, clean_weight=1.0, x_clean=x)  # A2
            comm.allreduce_grads(model, quant, QuantMode.ONE_SIDED, step)    # 3-4
            optim.step_model(model)                                          # A4
        print(f"dat_epoch: {optim.steps} steps, last loss {loss:.6f}")
        if out:
            model.params.view().tofile(out)  # the model's memory, no copy


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist",
         sys.argv[2] if len(sys.argv) > 2 else None)
