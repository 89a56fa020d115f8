#!/usr/bin/env bash
# A run whose loss becomes NaN stops with an error that says where: the epoch,
# the batch and the optimizer's step, and a non-zero exit status:
#   dat_train_diverges.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST.
set -uo pipefail
train=$1
. "$(dirname "$0")/fashion_mnist.sh"
out=$("$train" --data "$dir" --train-subset 512 --batch 64 --epochs 2 --steps 1 --eval-count 64 \
    --eval-steps 1 --progress none --optimizer sgd --lr 1e6 --weight-decay 0 \
    --checkpoint-dir "$tmp" 2>&1) && { echo "a diverging run exited 0"; exit 1; }
line=$(printf '%s\n' "$out" | tail -n 1)
echo "$line"
printf '%s\n' "$line" |
    grep -Eq '^dat-train: loss \(epoch 1, batch [0-9]+, step [0-9]+\): DAT_ERR_NUMERIC: .*NaN' ||
    { echo "the error does not say where the loss diverged"; exit 1; }
