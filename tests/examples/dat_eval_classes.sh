#!/usr/bin/env bash
# dat-eval evaluates what dat-train --classes writes: the checkpoint of a 5-class
# subset loads with the same --classes, and its TA is dat-train's on the same test
# images; without --classes it is refused with a message that names the option, and
# with another list of as many classes by the list the checkpoint records; a bad
# list stops before any work; --device cuda runs on a GPU, and elsewhere fails
# with the library's reason (no CUDA in this build, no device), never a crash:
#   dat_eval_classes.sh DAT_TRAIN DAT_EVAL
# Skips (77) without Fashion-MNIST.
set -uo pipefail
train=$1 eval=$2
. "$(dirname "$0")/fashion_mnist.sh"

"$train" --data "$dir" --classes 0-4 --train-subset 2000 --batch 64 --epochs 1 --attack none \
    --schedule const --eval-count 300 --eval-steps 1 --progress none \
    --checkpoint-dir "$tmp/ck" > "$tmp/train.log" 2>&1 ||
    { cat "$tmp/train.log"; echo "dat-train failed"; exit 1; }
train_ta=$(tail -n 1 "$tmp/train.log" | grep -o '"ta":[0-9.]*' | cut -d: -f2)

# run NAME OPTIONS...: dat-eval on the checkpoint; output in $tmp/NAME.log, status in $rc
run() {
    local name=$1
    shift
    "$eval" --data "$dir" --checkpoint "$tmp/ck/last.safetensors" --count 300 --eval ta \
        --progress none "$@" > "$tmp/$name.log" 2>&1
    rc=$?
    [ $rc -lt 128 ] || { cat "$tmp/$name.log"; echo "$name: killed by a signal"; exit 1; }
}

# ta NAME: the TA of a run's JSON line, to dat-train's 4 decimals
ta() {
    tail -n 1 "$tmp/$1.log" | grep -o '"ta":[0-9.]*' | cut -d: -f2 | xargs printf '%.4f'
}

run subset --classes 0-4
[ $rc -eq 0 ] || { cat "$tmp/subset.log"; echo "--classes 0-4: exit status $rc"; exit 1; }
grep -q '"classes":\[0,1,2,3,4\]' "$tmp/subset.log" ||
    { cat "$tmp/subset.log"; echo "the JSON does not name the subset"; exit 1; }
[ "$(ta subset)" = "$train_ta" ] ||
    { echo "dat-eval's TA $(ta subset) is not dat-train's $train_ta"; exit 1; }

run all
[ $rc -eq 1 ] && grep -q 'only the classifier does not fit.*--classes' "$tmp/all.log" ||
    { cat "$tmp/all.log"; echo "without --classes: exit status $rc, no clear message"; exit 1; }

run other --classes 5-9
want='trained with --classes 0,1,2,3,4; this evaluation has --classes 5,6,7,8,9'
[ $rc -eq 1 ] && grep -q "$want" "$tmp/other.log" ||
    { cat "$tmp/other.log"; echo "--classes 5-9 on a 0-4 model: exit status $rc"; exit 1; }

run bad --classes 4-0
[ $rc -eq 2 ] && grep -q -- '--classes 4-0' "$tmp/bad.log" ||
    { cat "$tmp/bad.log"; echo "--classes 4-0: exit status $rc, no clear message"; exit 1; }

run cuda --classes 0-4 --device cuda
if [ $rc -eq 0 ]; then # a GPU: the same images, the same predictions but for rare ties
    awk -v a="$(ta cuda)" -v b="$train_ta" 'BEGIN { exit !(a - b < 0.01 && b - a < 0.01) }' ||
        { echo "--device cuda: TA $(ta cuda), the CPU's $train_ta"; exit 1; }
else
    grep -q 'context: DAT_ERR_\(UNSUPPORTED\|NO_DEVICE\)' "$tmp/cuda.log" ||
        { cat "$tmp/cuda.log"; echo "--device cuda: exit status $rc, no clear message"; exit 1; }
fi
echo "dat-eval --classes: TA $(ta subset) = dat-train's"
echo "--device cuda: $(tail -n 1 "$tmp/cuda.log")"
