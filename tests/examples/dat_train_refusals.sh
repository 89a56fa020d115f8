#!/usr/bin/env bash
# dat-train refuses, before any training and with a message naming the cause,
# what would otherwise train something else than asked: milestones that are
# not finite epochs, a float option that rounds to 0, a label outside the data
# set's classes, one class, --head-lr without --lr, a --resume with other
# options or past --epochs, a --checkpoint-dir that cannot take checkpoints,
# unlabeled images of another shape, a folder name too long for the file names
# built from it. Checkpoints get the umask's mode:
#   dat_train_refusals.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST.
set -uo pipefail
train=$1
. "$(dirname "$0")/fashion_mnist.sh"
small=(--data "$dir" --train-subset 256 --batch 64 --epochs 1 --steps 1 --eval-count 64
       --eval-steps 1 --progress none)

# refused NEEDLE OPTIONS...: dat-train fails, names NEEDLE, and trained nothing
refused() {
    local needle=$1 out
    shift
    out=$("$train" "$@" 2>&1) && { echo "accepted: $*"; exit 1; }
    printf '%s\n' "$out" | grep -qF -- "$needle" ||
        { printf '%s\n' "$out" | tail -n 5; echo "no \"$needle\" in the refusal of: $*"; exit 1; }
    printf '%s\n' "$out" | grep -q '"epoch"' && { echo "trained before refusing: $*"; exit 1; }
    echo "refused: ${*: -2} -> $(printf '%s\n' "$out" | grep -F -- "$needle" | head -n 1)"
}

refused "--milestones inf" "${small[@]}" --schedule piecewise --milestones inf
refused "--milestones 1e-50" "${small[@]}" --schedule piecewise --milestones 1e-50
refused "--adam-eps 1e-50" "${small[@]}" --optimizer adam --adam-eps 1e-50
refused "needs at least 2 classes" "${small[@]}" --classes 9
refused "needs --lr > 0" "${small[@]}" --lr 0 --head-lr 0.5
refused "needs --device cuda" "${small[@]}" --precision tf32
refused "a name of 4100 characters" "${small[@]}" --data "$(printf 'a%.0s' $(seq 4100))"

# One label of 200 in a copy of the training labels (the images are links).
mkdir "$tmp/bad"
for f in train-images-idx3-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    ln -s "$dir/$f" "$tmp/bad/$f"
done
zcat "$dir/train-labels-idx1-ubyte.gz" > "$tmp/labels"
printf '\310' | dd of="$tmp/labels" bs=1 seek=13 conv=notrunc status=none # sample 5
gzip -c "$tmp/labels" > "$tmp/bad/train-labels-idx1-ubyte.gz"
refused "num_classes = 10" "${small[@]}" --data "$tmp/bad"

# --resume: another batch size, or a checkpoint past --epochs. The final line says how many
# test images were evaluated (--eval-count beyond the test set's 10 000).
"$train" "${small[@]}" --epochs 2 --checkpoint-dir "$tmp/ck" --eval-count 20000 \
    > "$tmp/out" 2>&1 || { echo "the run to resume failed"; exit 1; }
grep -q '"eval_images":10000,' "$tmp/out" || { cat "$tmp/out"; echo "no eval_images"; exit 1; }
# What a run killed while saving leaves is removed by the next run there.
touch "$tmp/ck/last.safetensors.tmp.123.0"
mode=$(stat -c %a "$tmp/ck/last.safetensors")
[ "$mode" = "$(printf '%o' $((0666 & ~$(umask))))" ] ||
    { echo "last.safetensors has mode $mode with umask $(umask)"; exit 1; }
refused '"batch":64, this run has 32' "${small[@]}" --epochs 3 --checkpoint-dir "$tmp/ck" \
    --resume --batch 32 --eval-count 20000
refused '"eval_count":20000, this run has' "${small[@]}" --epochs 3 --checkpoint-dir "$tmp/ck" \
    --resume
refused "past --epochs 1" "${small[@]}" --epochs 1 --checkpoint-dir "$tmp/ck" --resume \
    --eval-count 20000
[ ! -e "$tmp/ck/last.safetensors.tmp.123.0" ] || { echo "a stale temporary file stayed"; exit 1; }

# A --checkpoint-dir that is a file, or whose last.safetensors is a folder.
touch "$tmp/file"
refused "--checkpoint-dir $tmp/file: not a folder" "${small[@]}" --checkpoint-dir "$tmp/file"
mkdir -p "$tmp/ck2/last.safetensors"
refused "last.safetensors is not a file" "${small[@]}" --checkpoint-dir "$tmp/ck2"

# Unlabeled images of 64 x 49 x 16 have 28 x 28 pixels each, but not Fashion-MNIST's shape.
/usr/bin/python3 -c "import numpy, sys; numpy.save(sys.argv[1], numpy.zeros((64, 49, 16), \
numpy.uint8))" "$tmp/u.npy" || { echo "numpy failed"; exit 1; }
refused "do not match the training images" "${small[@]}" --unlabeled-data "$tmp/u.npy" \
    --teacher "$tmp/ck/last.safetensors"
ls "${TMPDIR:-/tmp}"/dat-train-*.npy 2>/dev/null | grep -q . &&
    { echo "pseudo-label files left in ${TMPDIR:-/tmp}"; exit 1; }
echo "all refused"
