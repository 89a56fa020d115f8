# scripts/bench model: forward + backward and input-gradient-only backward of
# cnn_small (batch 128) and preact_resnet18 (batch 64) on 2 threads, libdat
# against PyTorch CPU in the same run. Last line: model ratio=R (libdat over
# PyTorch, cnn_small forward + backward) and the absolute figures.
set -euo pipefail
threads=${THREADS:-2}
# The machine is shared: the two sides alternate, ROUNDS times each, and the best
# round of each side counts (the one least disturbed by other jobs).
best() { # field, lines...
    local f=$1; shift
    printf '%s\n' "$@" | sed -n "s/.*$f=\([0-9.]*\).*/\1/p" | sort -g | tail -1
}
run() { # preset batch iters
    local ours=() theirs=()
    for _ in $(seq "${ROUNDS:-3}"); do
        ours+=("$("$LIBDAT_BUILD/bench/bench_model" "$1" "$2" "$3" "$threads")")
        theirs+=("$(/usr/bin/python3 bench/model_torch.py "$1" "$2" "$3" "$threads")")
    done
    printf 'libdat  %s\n' "${ours[@]}"
    printf 'pytorch %s\n' "${theirs[@]}"
    field() { best "$1" "${@:2}"; }
    eval "${4}_fb=$(field fwd_bwd_img_s "${ours[@]}") ${4}_fb_t=$(field fwd_bwd_img_s "${theirs[@]}")"
    eval "${4}_ig=$(field input_grad_img_s "${ours[@]}") ${4}_ig_t=$(field input_grad_img_s "${theirs[@]}")"
    eval "${4}_mem=$(field peak_rss_mib "${ours[@]}") ${4}_mem_t=$(field peak_rss_mib "${theirs[@]}")"
}
run cnn_small 128 ${ITERS:-20} cnn
run preact_resnet18 64 ${ITERS_RESNET:-3} res
ratio() { /usr/bin/python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "model ratio=$(ratio "$cnn_fb" "$cnn_fb_t")" \
     "cnn_small_fwd_bwd=$cnn_fb/$cnn_fb_t img/s" \
     "cnn_small_input_grad=$cnn_ig/$cnn_ig_t img/s ($(ratio "$cnn_ig" "$cnn_ig_t")x)" \
     "preact_resnet18_fwd_bwd=$res_fb/$res_fb_t img/s ($(ratio "$res_fb" "$res_fb_t")x)" \
     "preact_resnet18_input_grad=$res_ig/$res_ig_t img/s ($(ratio "$res_ig" "$res_ig_t")x)" \
     "preact_resnet18_peak_rss=$res_mem/$res_mem_t MiB" \
     "threads=$threads (libdat/pytorch)"
