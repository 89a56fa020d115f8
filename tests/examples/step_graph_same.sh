#!/usr/bin/env bash
# dat-train --step-graph on gives the checkpoint of --step-graph off, byte for
# byte, on a CUDA device (or the gpu_emulation build):
#   step_graph_same.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST or a CUDA device.
set -uo pipefail
train=$1
dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$dir/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $dir: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sg in off on; do
    out=$("$train" --device cuda --data "$dir" --train-subset 256 --batch 64 --epochs 2 \
          --steps 2 --eval-count 64 --eval-steps 2 --progress none --step-graph "$sg" \
          --checkpoint-dir "$tmp/$sg" 2>&1)
    rc=$?
    printf '%s\n' "$out" | tail -n 3
    if [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | grep -q 'DAT_ERR_NO_DEVICE\|DAT_ERR_UNSUPPORTED' &&
            { echo "no CUDA device: skipped"; exit 77; }
        echo "--step-graph $sg: exit status $rc"; exit 1
    fi
    printf '%s\n' "$out" | tail -n 1 | sed 's/"images_per_s":[0-9.]*,//; s/"seconds":[0-9.]*,//' \
        > "$tmp/$sg.json"
done
cmp "$tmp/off/last.safetensors" "$tmp/on/last.safetensors" ||
    { echo "the step graph's checkpoint differs"; exit 1; }
cmp "$tmp/off.json" "$tmp/on.json" || { echo "the step graph's TA / RA differ"; exit 1; }
echo "step graph: same checkpoint, $(cat "$tmp/on.json")"
