# scripts/bench train-step: one whole PGD-10 adversarial training step (attack +
# update) of cnn_small, batch 128, 2 threads, libdat against PyTorch CPU in the
# same run (alternating, best of ROUNDS). Last line: train-step ratio=R ...
set -euo pipefail
threads=${THREADS:-2} iters=${ITERS:-5}
best() { sed -n "s/.*step_img_s=\([0-9.]*\).*/\1/p" | sort -g | tail -1; }
ours="" theirs=""
for _ in $(seq "${ROUNDS:-3}"); do
    ours+="$("$LIBDAT_BUILD/bench/bench_train_step" cnn_small 128 "$iters" "$threads")"$'\n'
    theirs+="$(/usr/bin/python3 bench/train_step_torch.py cnn_small 128 "$iters" "$threads")"$'\n'
done
echo "$ours" | sed '/^$/d; s/^/libdat  /'
echo "$theirs" | sed '/^$/d; s/^/pytorch /'
a=$(echo "$ours" | best) b=$(echo "$theirs" | best)
echo "train-step ratio=$(/usr/bin/python3 -c "print(f'{$a / $b:.2f}')") libdat=$a img/s" \
     "pytorch=$b img/s (cnn_small, batch 128, PGD-10 eps 0.1, threads=$threads)"
