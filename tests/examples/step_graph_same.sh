#!/usr/bin/env bash
# dat-train --step-graph on gives the checkpoint of --step-graph off, byte for
# byte (with --deterministic on), exact and with --bits 8 (quantized on one
# process too), on a CUDA device (or the gpu_emulation build):
#   step_graph_same.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST or a CUDA device.
set -uo pipefail
. "$(dirname "$0")/dat_train_run.sh"
train=$1
. "$(dirname "$0")/fashion_mnist.sh"
for bits in 32 8; do # 8: the quantized all-reduce of one process, recorded over NCCL
    for sg in off on; do
        dat_train_run "--step-graph $sg --bits $bits" "$tmp/$sg-$bits.json" \
            "$train" --device cuda --data "$dir" --train-subset 256 --batch 64 --epochs 2 \
            --steps 2 --eval-count 64 --eval-steps 2 --progress none --step-graph "$sg" \
            --bits "$bits" --deterministic on --checkpoint-dir "$tmp/$sg-$bits"
    done
    cmp "$tmp/off-$bits/last.safetensors" "$tmp/on-$bits/last.safetensors" ||
        { echo "the step graph's checkpoint differs (--bits $bits)"; exit 1; }
    cmp "$tmp/off-$bits.json" "$tmp/on-$bits.json" ||
        { echo "the step graph's TA / RA differ (--bits $bits)"; exit 1; }
done
cmp -s "$tmp/on-32/last.safetensors" "$tmp/on-8/last.safetensors" &&
    { echo "--bits 8 trained the model of --bits 32: nothing was quantized"; exit 1; }
echo "step graph: same checkpoints, $(cat "$tmp/on-32.json") $(cat "$tmp/on-8.json")"
