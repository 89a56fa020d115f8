# scripts/bench autoattack: seconds per 1 000 images of APGD-CE (100 iterations, l-inf,
# eps 0.1) on cnn_small, libdat against the PyTorch APGD-CE of tests/python/apgd_torch.py
# on the same batch, iterations and threads; plus libdat's whole standard AutoAttack
# on the same points. CHECKPOINT=FILE uses trained weights (default: random ones).
# Last line: autoattack ratio=R (PyTorch's seconds over libdat's) and the figures.
set -euo pipefail
threads=${THREADS:-2}
batch=${BATCH:-250}
steps=${STEPS:-100}
ckpt=${CHECKPOINT:-}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | sort -g | head -1; }
ours="" theirs=""
for _ in $(seq "${ROUNDS:-2}"); do
    ours+="$("$LIBDAT_BUILD/bench/bench_autoattack" "$batch" "$steps" "$threads" $ckpt)"$'\n'
    theirs+="$(/usr/bin/python3 bench/autoattack_torch.py "$batch" "$steps" "$threads" $ckpt)"$'\n'
done
echo "$ours" | sed '/^$/d; s/^/libdat  /' >&2
echo "$theirs" | sed '/^$/d; s/^/pytorch /' >&2
a=$(echo "$ours" | field apgd_ce_s_per_1000)
aa=$(echo "$ours" | field aa_s_per_1000)
t=$(echo "$theirs" | field apgd_ce_s_per_1000)
ratio=$(/usr/bin/python3 -c "print(f'{$t / $a:.2f}')")
echo "autoattack ratio=$ratio apgd_ce=$a/$t s per 1000 images (libdat/pytorch)" \
     "libdat_autoattack=$aa s per 1000 images, batch=$batch steps=$steps threads=$threads" \
     "weights=${ckpt:-random}"
