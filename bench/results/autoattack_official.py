"""The official AutoAttack (fra31/auto-attack, version='standard', l-inf) on a libdat
cnn_small checkpoint, loaded into tests/python/models.py's PyTorch twin: the robust
points after each attack of the sequence, to set beside dat-eval's --per-sample output
on the same images. Not a test: the official package is not on PyPI (check it out and
pass its folder as AUTOATTACK_DIR); docs/results.md has the figures.

    AUTOATTACK_DIR=auto-attack /usr/bin/python3 bench/results/autoattack_official.py \
        CHECKPOINT N OUT.json [EPS]
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.environ.get("AUTOATTACK_DIR", "auto-attack"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
import fmnist  # noqa: E402
import safetensors_np  # noqa: E402
from autoattack import AutoAttack  # noqa: E402
from autoattack.state import EvaluationState  # noqa: E402
from models import CNNSmall  # noqa: E402

ATTACKS = ["apgd-ce", "apgd-t", "fab-t", "square"]


def main(checkpoint, n, out, eps=0.1):
    torch.set_num_threads(2)
    tensors, _ = safetensors_np.load(checkpoint)
    model = CNNSmall().eval()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()
                           if k in model.state_dict()})
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = fmnist.load("test")
    x, y = torch.from_numpy(x[:n]), torch.from_numpy(y[:n]).long()

    robust_after = {}  # the robust flags once each attack has run
    run_attack = EvaluationState.add_run_attack

    def record(state, attack):
        robust_after[attack] = state.robust_flags.clone()
        return run_attack(state, attack)
    EvaluationState.add_run_attack = record

    with torch.no_grad():
        clean = model(x).argmax(1) == y
    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0,
                           device="cpu")
    start = time.time()
    adversary.run_standard_evaluation(x, y, bs=250)
    seconds = time.time() - start
    # per image: -2 misclassified, -1 robust, else the index of the attack that broke it
    outcome = np.where(clean.numpy(), -1, -2)
    robust = clean.clone()
    for k, attack in enumerate(ATTACKS):
        if attack in robust_after:
            outcome[(robust & ~robust_after[attack]).numpy()] = k
            robust = robust_after[attack]
    result = {"images": n, "ta": clean.float().mean().item(),
              "broken_by": {a: int((outcome == k).sum()) for k, a in enumerate(ATTACKS)},
              "robust": int((outcome == -1).sum()), "seconds": seconds,
              "outcome": outcome.tolist()}
    Path(out).write_text(json.dumps(result))
    print(json.dumps({k: v for k, v in result.items() if k != "outcome"}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(float, sys.argv[4:5]))
