#!/usr/bin/env bash
# dat-train --progress lines: every line on stderr that is not a JSON record is
# a progress line of an epoch ("epoch N d/T ... img/s ... ETA") or of the
# evaluation, for each epoch run:
#   dat_train_progress.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST.
set -uo pipefail
train=$1
. "$(dirname "$0")/fashion_mnist.sh"
"$train" --data "$dir" --train-subset 512 --batch 64 --epochs 2 --steps 1 --eval-count 64 \
    --eval-steps 1 --progress lines --checkpoint-dir "$tmp/ck" > "$tmp/out" 2> "$tmp/err" ||
    { cat "$tmp/err"; echo "dat-train failed"; exit 1; }
bad=$(grep -v '^{' "$tmp/err" | grep -Ev '^(epoch [12]|eval) [0-9]+/[0-9]+  [0-9.]+ img/s  .*ETA')
[ -z "$bad" ] || { cat "$tmp/err"; echo "not progress lines: $bad"; exit 1; }
for e in 1 2; do
    grep -q "^epoch $e [0-9]*/8 " "$tmp/err" || { cat "$tmp/err"; echo "no line of epoch $e"; exit 1; }
done
echo "progress lines: $(grep -c '^epoch' "$tmp/err") of the epochs, $(grep -c '^eval' "$tmp/err") of evaluations"
