"""PyTorch CPU peer of bench_autoattack.c: the APGD-CE of tests/python/apgd_torch.py
(l-inf, eps 0.1) on cnn_small, uniform-noise inputs labelled with the model's own
predictions. usage: autoattack_torch.py BATCH STEPS THREADS [CHECKPOINT]"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
import safetensors_np  # noqa: E402
from apgd_torch import apgd_ce  # noqa: E402
from models import CNNSmall  # noqa: E402

batch, steps, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = CNNSmall().eval()
if len(sys.argv) > 4:
    tensors, _ = safetensors_np.load(sys.argv[4])
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()
                           if k in model.state_dict()})
for p in model.parameters():
    p.requires_grad_(False)
x = torch.rand(batch, 1, 28, 28)
with torch.no_grad():
    y = model(x).argmax(1)
t0 = time.perf_counter()
apgd_ce(model, x, y, 0.1, "linf", steps)
s = time.perf_counter() - t0
print(f"cnn_small batch={batch} steps={steps} apgd_ce_s_per_1000={s * 1000 / batch:.2f}")
