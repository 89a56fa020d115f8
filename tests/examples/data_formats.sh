#!/usr/bin/env bash
# dat-train and dat-eval read every --data-format from its usual file names
# (make_datasets.py writes tiny random ones): CIFAR-10's five training record
# files (10 steps of 20 from 5 x 40 images), CIFAR-100's train.bin / test.bin
# and the .npy arrays; dat-eval scores each checkpoint on its test set:
#   data_formats.sh DAT_TRAIN DAT_EVAL MAKE_DATASETS_PY
set -uo pipefail
train=$1 eval=$2 make=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 "$make" "$tmp" || { echo "make_datasets.py failed"; exit 1; }
for fmt in cifar10 cifar100 npy; do
    "$train" --data-format "$fmt" --data "$tmp/$fmt" --batch 20 --epochs 1 --attack none \
        --eval-count 20 --eval-steps 1 --progress lines --checkpoint-dir "$tmp/ck-$fmt" \
        > "$tmp/$fmt.log" 2>&1 || { cat "$tmp/$fmt.log"; echo "dat-train $fmt failed"; exit 1; }
    steps=$(grep -c '^epoch 1 [0-9]*/10 ' "$tmp/$fmt.log")
    [ "$steps" -eq 10 ] || { cat "$tmp/$fmt.log"; echo "$fmt: $steps steps, not 10"; exit 1; }
    if [ "$fmt" = npy ]; then
        data=(--npy-images "$tmp/npy/test_images.npy" --npy-labels "$tmp/npy/test_labels.npy")
    else
        data=(--data "$tmp/$fmt")
    fi
    out=$("$eval" --data-format "$fmt" "${data[@]}" --checkpoint "$tmp/ck-$fmt/last.safetensors" \
        --eval ta --progress none 2>&1) || { echo "$out"; echo "dat-eval $fmt failed"; exit 1; }
    want=40
    [ "$fmt" = cifar100 ] && want=100
    printf '%s\n' "$out" | tail -n 1 | grep -q "\"images\":$want," ||
        { echo "$out"; echo "dat-eval $fmt: not the $want test images"; exit 1; }
    echo "$fmt: $(printf '%s\n' "$out" | tail -n 1)"
done
