# scripts/bench ops: the memory-bound layer ops (ReLU forward / backward, add,
# batch norm train forward / backward with the fused ReLU) in GB/s against the
# backend's copy of a buffer, in float32 NCHW / NHWC and bfloat16 NHWC; the
# ratio is the slowest op's. Meant for the GPU (DAT_BENCH_DEVICE=cuda; goal
# there: each op near the copy's speed); on the CPU it measures the reference.
# Arguments: [n c hw] [reps] (defaults 512 64 1024: preact_resnet18's first
# stage at batch 512; 20).
set -euo pipefail
exec "$LIBDAT_BUILD/bench/bench_ops" "$@"
