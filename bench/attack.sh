# scripts/bench attack: PGD-10 perturbation throughput (images/s) of libdat against
# PyTorch on the same model, batch and threads: cnn_small batch 128 and
# preact_resnet18 batch 64. Last line: attack ratio=R (cnn_small) and the figures.
set -euo pipefail
threads=${THREADS:-2}
best() { sed -n "s/.*attack_img_s=\([0-9.]*\).*/\1/p" | sort -g | tail -1; }
measure() { # preset batch iters
    local ours="" theirs=""
    for _ in $(seq "${ROUNDS:-3}"); do
        ours+="$("$LIBDAT_BUILD/bench/bench_attack" "$1" "$2" "$3" "$threads")"$'\n'
        theirs+="$(/usr/bin/python3 bench/attack_torch.py "$1" "$2" "$3" "$threads")"$'\n'
    done
    echo "$ours" | sed '/^$/d; s/^/libdat  /' >&2
    echo "$theirs" | sed '/^$/d; s/^/pytorch /' >&2
    echo "$(echo "$ours" | best) $(echo "$theirs" | best)"
}
read -r c1 c2 <<< "$(measure cnn_small 128 ${ITERS:-5})"
read -r r1 r2 <<< "$(measure preact_resnet18 64 ${ITERS_RESNET:-1})"
ratio() { /usr/bin/python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "attack ratio=$(ratio "$c1" "$c2") cnn_small=$c1/$c2 img/s" \
     "preact_resnet18=$r1/$r2 img/s ($(ratio "$r1" "$r2")x) PGD-10 threads=$threads (libdat/pytorch)"
