#!/usr/bin/env bash
# dat-train --step-graph on gives the checkpoint of --step-graph off, byte for
# byte, on a CUDA device (or the gpu_emulation build):
#   step_graph_same.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST or a CUDA device.
set -uo pipefail
. "$(dirname "$0")/dat_train_run.sh"
train=$1
dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$dir/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $dir: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sg in off on; do
    dat_train_run "--step-graph $sg" "$tmp/$sg.json" \
        "$train" --device cuda --data "$dir" --train-subset 256 --batch 64 --epochs 2 \
        --steps 2 --eval-count 64 --eval-steps 2 --progress none --step-graph "$sg" \
        --checkpoint-dir "$tmp/$sg"
done
cmp "$tmp/off/last.safetensors" "$tmp/on/last.safetensors" ||
    { echo "the step graph's checkpoint differs"; exit 1; }
cmp "$tmp/off.json" "$tmp/on.json" || { echo "the step graph's TA / RA differ"; exit 1; }
echo "step graph: same checkpoint, $(cat "$tmp/on.json")"
