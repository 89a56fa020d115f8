#!/usr/bin/env bash
# dat-train against bench/train_torch.py at an equal number of training images (the
# issue's "no worse than PyTorch"): the main job's recipe (PGD-10 AT of cnn_small, eps
# 0.1, momentum SGD, one-cycle lr peaking at 0.1, batch 128, one rank, one thread) on the
# first SUBSET training images (default 6 000; 60 000 = the whole epoch of
# `scripts/train`) for 1 epoch, TA and PGD-20 RA on the first 1 000 test images, seeds
# 1, 2, 3 on each side. Then bench/results/summarize.py shows both.
#
#   [SUBSET=N] bash bench/results/vs_torch.sh [SEEDS]   (default "1 2 3")
set -euo pipefail
source "$(dirname "$0")/run.sh"

subset=${SUBSET:-6000}
# The 6 000-image runs keep their first names; others carry their size.
tag=main-recipe
[ "$subset" = 6000 ] || tag=main-recipe-$subset
for seed in ${1:-1 2 3}; do
    result "$tag-libdat" 1 "$seed" -- --epochs 1 --schedule onecycle --lr 0.1 \
        --train-subset "$subset" --eval-count 1000
    out="$RESULTS/$tag-pytorch.s$seed.json"
    if [ ! -s "$out" ]; then
        echo "$(date +%H:%M:%S) $tag-pytorch seed $seed"
        /usr/bin/python3 "$root/bench/train_torch.py" 1 1 "$subset" "$seed" 1000 >"$out.tmp"
        tail -n 1 "$out.tmp" >"$out" && rm -f "$out.tmp"
    fi
done
