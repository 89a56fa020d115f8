#!/usr/bin/env bash
# The transfer and model-selection experiments of docs/results.md (Fashion-MNIST,
# cnn_small, eps 0.1, one rank): (a) pretrain on classes 0-4 (PGD-AT or standard),
# finetune with PGD-AT on classes 5-9 with a new classifier, against training on 5-9
# from scratch, all with the same finetuning epochs (TA / RA on the ~500 images of
# classes 5-9 among the first 1 000 test images); (c) early stopping: validation RA
# every epoch on 500 held-out images, best vs last. ((b), DAT vs DAT-LSGD, is in
# bench/results/paper.sh.) Seeds 1, 2, 3; finished runs are skipped. Then:
#   /usr/bin/python3 bench/results/summarize.py build/results
#
#   bash bench/results/transfer.sh [SEEDS]   (default "1 2 3")
set -euo pipefail
source "$(dirname "$0")/run.sh"

base=(--train-subset 8000 --steps 3 --batch 64 --eval-count 1000 --eval-steps 20)
ckpt="$RESULTS/ckpt"

for seed in ${1:-1 2 3}; do
    result pretrain-robust 1 "$seed" -- "${base[@]}" --epochs 2 --classes 0-4 \
        --checkpoint-dir "$ckpt/pre-robust-{seed}"
    result pretrain-standard 1 "$seed" -- "${base[@]}" --epochs 2 --classes 0-4 \
        --attack none --checkpoint-dir "$ckpt/pre-standard-{seed}"
    for from in robust standard; do
        result "finetune-from-$from" 1 "$seed" -- "${base[@]}" --epochs 1 --classes 5-9 \
            --init-from "$ckpt/pre-$from-{seed}/last.safetensors" --new-head
    done
    result finetune-scratch 1 "$seed" -- "${base[@]}" --epochs 1 --classes 5-9
    # (c) robust overfitting on little data: 3 000 images, 6 epochs at a constant rate
    result early-stopping 1 "$seed" -- "${base[@]}" --train-subset 3500 --val 500 --eval-count 500 \
        --epochs 6 --schedule const --eval-every 1 --keep-best \
        --checkpoint-dir "$ckpt/early-{seed}"
done
