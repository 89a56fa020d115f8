# scripts/bench gpu-at (GPU machine only): images/s of a whole PGD-k adversarial
# training step on synthetic data, libdat against PyTorch in one run: libdat fp32
# (cuDNN's heuristic algorithms), fp32 with timed algorithms and TF32 with timed
# algorithms (dat_ctx_options precision, tune_convolutions), the last two also
# with the attack's steps replayed from a CUDA graph (cuda_graphs), TF32 with
# channels-last activations and bf16 (channels last, its default on CUDA), tuned,
# with graphs (precision, channels_last), and bf16 with the whole step replayed
# from a step graph (DAT_BENCH_STEP_GRAPH, dat_capture.h); PyTorch eager fp32,
# eager TF32, eager bf16 autocast + channels_last and torch.compile of the last
# (cudnn.benchmark on). Models: preact_resnet18 3x32x32 batch 512 PGD-10, then
# resnet50 3x224x224 batch 128 PGD-4 (the paper's ImageNet setting). MFU counts
# 2 k + 3 forwards of conv + linear FLOPs per image (bench/gpu_at_torch.py) over
# the precision's dense peak (fp32 67, TF32 494, bf16 989 TFLOP/s). Last lines,
# per model: `gpu-at ratio=R tf32=T bf16=H vs-best=B`: libdat's best fp32 over
# PyTorch eager fp32, libdat's best TF32 over PyTorch eager TF32, libdat bf16
# over PyTorch eager bf16 autocast + channels_last, libdat's best over
# PyTorch's best.
# ITERS (default 5) timed steps after 2 warm-up ones; CASES overrides the models
# ("preact_resnet18:512:10 resnet50:128:4"), VARIANTS the PyTorch variants;
# DAT_BENCH_DEVICE=cpu TORCH_DEVICE=cpu makes a dry run of the script on a CPU.
set -uo pipefail
iters=${ITERS:-5}
variants=${VARIANTS:-eager-fp32 eager-tf32 eager-bf16-cl compile-bf16-cl}
img_s() { sed -n "s/.*step_img_s=\([0-9.]*\).*/\1/p" | tail -1; }
ours() { # NAME PRECISION TUNE GRAPHS [CHANNELS_LAST [STEP_GRAPH]]: one libdat variant
    local line
    line=$(env DAT_BENCH_DEVICE="${DAT_BENCH_DEVICE:-cuda}" DAT_BENCH_PRECISION="$2" DAT_BENCH_TUNE="$3" \
           DAT_BENCH_GRAPHS="$4" ${5:+DAT_BENCH_CL="$5"} ${6:+DAT_BENCH_STEP_GRAPH="$6"} \
           "$LIBDAT_BUILD/bench/bench_train_step" "$preset" "$batch" "$iters" 1 "$steps" 2>&1)
    echo "libdat $1 $line" >&2
    echo "$line" | img_s
}
summary=()
for case in ${CASES:-preact_resnet18:512:10 resnet50:128:4}; do
    IFS=: read -r preset batch steps <<<"$case"
    declare -A r=()
    r[libdat-fp32]=$(ours fp32 fp32 0 0)
    r[libdat-fp32-tuned]=$(ours fp32-tuned fp32 1 0)
    r[libdat-tf32-tuned]=$(ours tf32-tuned tf32 1 0)
    r[libdat-fp32-tuned-graphs]=$(ours fp32-tuned-graphs fp32 1 1)
    r[libdat-tf32-tuned-graphs]=$(ours tf32-tuned-graphs tf32 1 1)
    r[libdat-tf32-cl-tuned-graphs]=$(ours tf32-cl-tuned-graphs tf32 1 1 1)
    r[libdat-bf16-tuned-graphs]=$(ours bf16-tuned-graphs bf16 1 1)
    r[libdat-bf16-tuned-stepgraph]=$(ours bf16-tuned-stepgraph bf16 1 1 "" 1)
    gflop=""
    for v in $variants; do
        line=$(timeout "${TORCH_TIMEOUT:-300}" python3 bench/gpu_at_torch.py "$preset" "$batch" \
               "$steps" "$iters" "$v" --device "${TORCH_DEVICE:-cuda}" 2>/tmp/gpu_at_torch.err)
        echo "$line"
        g=$(sed -n 's/.*AT step \([0-9.]*\) GFLOP.*/\1/p' /tmp/gpu_at_torch.err | tail -1)
        [ -n "$g" ] && gflop=$g
        r[torch-$v]=$(echo "$line" | img_s)
        [ -z "${r[torch-$v]}" ] && tail -3 /tmp/gpu_at_torch.err
    done
    args=""
    for k in "${!r[@]}"; do args+="'$k': float('${r[$k]:-0}' or 0), "; done
    summary+=("$(python3 - <<PY
r = {$args}
g = float('${gflop:-0}' or 0)
lib = {k: v for k, v in r.items() if k.startswith('libdat') and v > 0}
tor = {k: v for k, v in r.items() if k.startswith('torch') and v > 0}
fp32 = max([v for k, v in lib.items() if 'fp32' in k] or [0])
tf32 = max([v for k, v in lib.items() if 'tf32' in k] or [0])
bf16 = max([v for k, v in lib.items() if 'bf16' in k] or [0])
ratio = lambda a, b: f'{a / b:.2f}' if a and b else 'n/a'
bl, bt = max(lib, key=lib.get, default=None), max(tor, key=tor.get, default=None)
mfu = lambda v, peak: f'{v * g * 1e9 / peak:.1%}' if g else 'n/a'
print(f"gpu-at ratio={ratio(fp32, r.get('torch-eager-fp32', 0))} "
      f"tf32={ratio(tf32, r.get('torch-eager-tf32', 0))} "
      f"bf16={ratio(bf16, r.get('torch-eager-bf16-cl', 0))} "
      f"vs-best={ratio(lib.get(bl, 0), tor.get(bt, 0))} ($preset batch $batch PGD-$steps; "
      + ", ".join(f'{k} {v:.1f}' for k, v in sorted(r.items()))
      + f" img/s; MFU libdat fp32 {mfu(fp32, 67e12)}, "
      f"tf32 {mfu(tf32, 494e12)}, bf16 {mfu(bf16, 989e12)}; best {bl} / {bt})")
PY
)")
    unset r
done
printf '%s\n' "${summary[@]}"
