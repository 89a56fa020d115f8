#!/usr/bin/env bash
# dat-train on 2 ranks over NCCL gives the checkpoint of the same run over MPI,
# byte for byte, and so does --step-graph on (the all-reduce recorded in the
# step) with NCCL, with --overlap on and off; quantized (--bits 8, one- and
# two-sided, overlapped on NCCL's stream, op by op and recorded) too, all with
# --deterministic on. Exact where NCCL adds in rank order as MPI
# does: the gpu_emulation build, whose ranks are processes on the CPU
# (kernels/emu/rendezvous.h).
#   nccl_same.sh DAT_TRAIN MPIRUN [MPIRUN ARGS...]
# Skips (77) without Fashion-MNIST or a CUDA device.
set -uo pipefail
. "$(dirname "$0")/dat_train_run.sh"
train=$1
shift
. "$(dirname "$0")/fashion_mnist.sh"
# comm, step graph, overlap, bits, quantization mode; each is compared with
# MPI's run of its bits and mode
runs=("mpi off on 32 one-sided" "nccl off on 32 one-sided" "nccl on on 32 one-sided"
      "nccl on off 32 one-sided" "mpi off on 8 one-sided" "nccl off on 8 one-sided"
      "nccl on on 8 one-sided" "mpi off on 8 two-sided" "nccl off on 8 two-sided"
      "nccl on on 8 two-sided" "nccl on off 8 two-sided")
for cfg in "${runs[@]}"; do
    read -r comm sg overlap bits mode <<<"$cfg"
    name=$comm-graph_$sg-overlap_$overlap-bits_$bits-$mode
    dat_train_run "$name" "$tmp/$name.json" \
        "$@" -np 2 "$train" --device cuda --data "$dir" --train-subset 256 --batch 32 \
        --epochs 2 --steps 2 --eval-count 64 --eval-steps 2 --progress none --comm "$comm" \
        --step-graph "$sg" --overlap "$overlap" --bits "$bits" --quant-mode "$mode" \
        --deterministic on --checkpoint-dir "$tmp/$name"
    case $last in
        *"\"comm\":\"$comm\""*) ;;
        *) echo "$name: the run did not use $comm"; exit 1;;
    esac
done
for cfg in "${runs[@]}"; do
    read -r comm sg overlap bits mode <<<"$cfg"
    name=$comm-graph_$sg-overlap_$overlap-bits_$bits-$mode
    ref=mpi-graph_off-overlap_on-bits_$bits-$mode
    [ "$name" = "$ref" ] && continue
    cmp "$tmp/$ref/last.safetensors" "$tmp/$name/last.safetensors" ||
        { echo "$name: the checkpoint differs from MPI's"; exit 1; }
    cmp "$tmp/$ref.json" "$tmp/$name.json" ||
        { echo "$name: TA / RA / bytes differ from MPI's"; exit 1; }
done
echo "NCCL on 2 ranks (op by op and recorded, 32 and 8 bits, one- and two-sided): MPI's checkpoints"
