# scripts/bench gpu-at (GPU machine only): images/s of a whole PGD-k adversarial
# training step on synthetic data, libdat (fp32) against PyTorch's eager fp32,
# eager TF32, eager bf16 autocast + channels_last and torch.compile of the last,
# all in one run: preact_resnet18 3x32x32 batch 512 PGD-10, then resnet50
# 3x224x224 batch 128 PGD-4 (the paper's ImageNet setting). MFU counts
# 3 (k + 1) forwards of conv + linear FLOPs per image (bench/gpu_at_torch.py)
# over the precision's dense peak. Last lines: `gpu-at ratio=R ...` per model,
# R = libdat fp32 over PyTorch eager fp32, and libdat over PyTorch's best.
# ITERS (default 5) timed steps after 2 warm-up ones; CASES overrides the models
# ("preact_resnet18:512:10 resnet50:128:4"), VARIANTS the PyTorch variants;
# DAT_BENCH_DEVICE=cpu TORCH_DEVICE=cpu makes a dry run of the script on a CPU.
set -uo pipefail
iters=${ITERS:-5}
variants=${VARIANTS:-eager-fp32 eager-tf32 eager-bf16-cl compile-bf16-cl}
img_s() { sed -n "s/.*step_img_s=\([0-9.]*\).*/\1/p" | tail -1; }
summary=()
for case in ${CASES:-preact_resnet18:512:10 resnet50:128:4}; do
    IFS=: read -r preset batch steps <<<"$case"
    ours=$(DAT_BENCH_DEVICE=${DAT_BENCH_DEVICE:-cuda} "$LIBDAT_BUILD/bench/bench_train_step" "$preset" "$batch" \
           "$iters" 1 "$steps" 2>&1)
    echo "libdat fp32 $ours"
    a=$(echo "$ours" | img_s)
    gflop="" best=0 best_v="" fp32=""
    for v in $variants; do
        line=$(timeout "${TORCH_TIMEOUT:-300}" python3 bench/gpu_at_torch.py "$preset" "$batch" \
               "$steps" "$iters" "$v" --device "${TORCH_DEVICE:-cuda}" 2>/tmp/gpu_at_torch.err)
        echo "$line"
        g=$(sed -n 's/.*AT step \([0-9.]*\) GFLOP.*/\1/p' /tmp/gpu_at_torch.err | tail -1)
        [ -n "$g" ] && gflop=$g
        b=$(echo "$line" | img_s)
        [ -z "$b" ] && { tail -3 /tmp/gpu_at_torch.err; continue; }
        [ "$v" = eager-fp32 ] && fp32=$b
        if python3 -c "import sys; sys.exit(0 if $b > $best else 1)"; then best=$b best_v=$v; fi
    done
    if [ -n "$a" ] && [ -n "$fp32" ]; then
        summary+=("$(python3 -c "
a, f, b, g = $a, $fp32, $best, float('${gflop:-0}')
mfu = a * g * 1e9 / 67e12
print(f'gpu-at ratio={a / f:.2f} vs-best={a / b:.2f} ($preset batch $batch PGD-$steps: '
      f'libdat fp32 {a:.1f} img/s, MFU {mfu:.1%} of 67 TFLOP/s; pytorch eager fp32 {f:.1f}, '
      f'best $best_v {b:.1f} img/s)')")")
    else
        summary+=("gpu-at $preset: no ratio (libdat: ${a:-failed}, pytorch eager fp32: ${fp32:-failed})")
    fi
done
printf '%s\n' "${summary[@]}"
