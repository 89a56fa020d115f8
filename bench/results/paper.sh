#!/usr/bin/env bash
# The paper-shape experiments of docs/results.md on Fashion-MNIST (cnn_small, eps 0.1),
# scaled down to what 2 shared CPU cores do in about an hour: a 4 000-image training
# subset, 2 epochs, PGD-3 training attack (step 2.5 eps / 3), one thread per rank, TA and
# RA (PGD-20) on the first 500 test images.
# Every configuration runs for seeds 1, 2, 3 (seed 1 of everything first, so a partial
# run already covers every row); finished runs are skipped. Then:
#   /usr/bin/python3 bench/results/summarize.py build/results
#
#   bash bench/results/paper.sh [SEEDS]      (default "1 2 3")
#
# SUBSET (training images, default 4000) and EPOCHS (default 2) make longer runs, past
# the plateau at the start of training: docs/results.md's long runs are
#   SUBSET=12000 EPOCHS=5 RESULTS=bench/results/runs-long bash bench/results/paper.sh
set -euo pipefail
source "$(dirname "$0")/run.sh"

subset=${SUBSET:-4000}
half=$((subset / 2))
base=(--train-subset "$subset" --epochs "${EPOCHS:-2}" --steps 3 --batch 64 --eval-count 500
      --eval-steps 20)
lalr=(--lalr on --lr 0.02)        # LARS: momentum SGD with the layer-wise rate (eq. 3)
ckpt="$RESULTS/ckpt"

for seed in ${1:-1 2 3}; do
    # (a) AT on one rank vs DAT on 4 ranks (4x the global batch, 1/4 of the steps)
    result at-1rank 1 "$seed" -- "${base[@]}"
    result dat-4rank-nolalr 4 "$seed" -- "${base[@]}"
    result dat-4rank-lalr 4 "$seed" -- "${base[@]}" "${lalr[@]}"
    # DAT-LSGD (Goyal et al.): linear scaling of lr 0.05 from batch 64 to 256, warm-up
    result dat-4rank-lsgd 4 "$seed" -- "${base[@]}" --baseline lsgd --ref-batch 64
    # (b) quantized gradients (32-bit is dat-4rank-lalr)
    result dat-4rank-lalr-q16 4 "$seed" -- "${base[@]}" "${lalr[@]}" --bits 16
    result dat-4rank-lalr-q8 4 "$seed" -- "${base[@]}" "${lalr[@]}" --bits 8
    result dat-4rank-lalr-q8-two 4 "$seed" -- "${base[@]}" "${lalr[@]}" --bits 8 \
        --quant-mode two-sided
    # (c) DAT-FGSM (DAT-PGD is dat-4rank-lalr)
    result dat-4rank-lalr-fgsm 4 "$seed" -- "${base[@]}" "${lalr[@]}" --attack fgsm
    # (d) TRADES on the first half of the subset labeled, alone or with the other half
    #     used unlabeled, pseudo-labeled by a teacher trained (standard) on the labeled half
    result teacher 1 "$seed" -- "${base[@]}" --train-subset "$half" --attack none \
        --checkpoint-dir "$ckpt/teacher-{seed}"
    result trades-labeled 4 "$seed" -- "${base[@]}" "${lalr[@]}" --attack trades \
        --train-subset "$half"
    result trades-pseudo 4 "$seed" -- "${base[@]}" "${lalr[@]}" --attack trades \
        --unlabeled "$half" --teacher "$ckpt/teacher-{seed}/last.safetensors"
done
