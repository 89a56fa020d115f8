#!/usr/bin/env bash
# What dat-eval writes, and what it reads from long option values:
#  - --json naming the --checkpoint is refused, and the checkpoint is left as it was;
#  - a --json that cannot be written (a folder, a missing folder, a read-only folder) is
#    refused before any image is evaluated, with a "dat-eval:" line naming the path;
#  - a run that fails while writing the result leaves an earlier result whole;
#  - long --eval and --radii lists are read to their end, never cut silently:
#   dat_eval_outputs.sh DAT_TRAIN DAT_EVAL
# Skips (77) without Fashion-MNIST.
set -uo pipefail
train=$1 eval=$2
. "$(dirname "$0")/fashion_mnist.sh"

"$train" --data "$dir" --train-subset 256 --batch 64 --epochs 1 --steps 1 --eval-count 64 \
    --eval-steps 1 --progress none --checkpoint-dir "$tmp/ck" > "$tmp/train.log" 2>&1 ||
    { cat "$tmp/train.log"; echo "dat-train failed"; exit 1; }
ck=$tmp/ck/last.safetensors
cp "$ck" "$tmp/ck.copy"
failed=0

# run NAME OPTIONS...: dat-eval on the checkpoint, progress as lines ("eval N/M ..." once
# images are evaluated); output in $tmp/NAME.log, status in $rc
run() {
    local name=$1
    shift
    "$eval" --data "$dir" --checkpoint "$ck" --count 64 --eval ta --progress lines "$@" \
        > "$tmp/$name.log" 2>&1
    rc=$?
    [ $rc -lt 128 ] || { cat "$tmp/$name.log"; echo "$name: killed by a signal"; exit 1; }
}

# refused NAME WHAT PATTERN: the run failed before its first image, with a "dat-eval:" line
# matching PATTERN
refused() {
    local name=$1 what=$2 pattern=$3
    if [ $rc -eq 0 ] || grep -q '^eval [0-9]' "$tmp/$name.log" ||
        ! grep -q "^dat-eval: .*$pattern" "$tmp/$name.log"; then
        cat "$tmp/$name.log"
        echo "FAIL: $what: exit status $rc; not refused before evaluating with a clear message"
        failed=1
    fi
}

run same --json "$ck"
refused same "--json = --checkpoint" "--json"
if ! cmp -s "$ck" "$tmp/ck.copy"; then
    echo "FAIL: --json = --checkpoint changed the checkpoint"
    failed=1
    cp "$tmp/ck.copy" "$ck"
fi

run folder --json "$tmp"
refused folder "--json FOLDER" "$tmp"

run missing --json "$tmp/none/result.json"
refused missing "--json in a missing folder" "$tmp/none/result.json.*No such file"

mkdir "$tmp/ro"
chmod 555 "$tmp/ro"
if ! touch "$tmp/ro/probe" 2> /dev/null; then # root writes anywhere: nothing to test then
    run readonly --json "$tmp/ro/result.json"
    refused readonly "--json in a read-only folder" "$tmp/ro/result.json.*Permission denied"
fi

# An earlier result survives a run that cannot write the new one (files limited to 0
# bytes, writes fail with EFBIG; the log goes through a pipe, which the limit spares).
run first --json "$tmp/result.json"
[ $rc -eq 0 ] && [ -s "$tmp/result.json" ] ||
    { cat "$tmp/first.log"; echo "--json result.json: exit status $rc"; exit 1; }
cp "$tmp/result.json" "$tmp/result.copy"
(trap '' XFSZ; ulimit -f 0; exec "$eval" --data "$dir" --checkpoint "$ck" --count 64 \
    --eval ta --progress none --json "$tmp/result.json" 2>&1) | cat > "$tmp/efbig.log"
rc=${PIPESTATUS[0]}
if [ $rc -eq 0 ] || ! grep -q "^dat-eval: .*$tmp/result.json" "$tmp/efbig.log"; then
    cat "$tmp/efbig.log"
    echo "FAIL: a result that cannot be written: exit status $rc, no clear message"
    failed=1
fi
cmp -s "$tmp/result.json" "$tmp/result.copy" ||
    { echo "FAIL: a failed write destroyed the earlier result"; failed=1; }
leftover=$(find "$tmp" -maxdepth 1 -name '*result.json?*')
[ -z "$leftover" ] || { echo "FAIL: temporary files left: $leftover"; failed=1; }

# whole NAME PATTERN OPTIONS...: a run with a long list uses all of it (its last
# line has PATTERN)
whole() {
    local name=$1 pattern=$2
    shift 2
    run "$name" "$@"
    [ $rc -eq 0 ] && tail -n 1 "$tmp/$name.log" | grep -q "$pattern" ||
        { tail -n 3 "$tmp/$name.log"; echo "FAIL: $name lost the end of its list"; failed=1; }
}
# 100 x "ta," (300 characters) then certify, with a tiny certification.
whole longeval '"certify":{' --eval "$(printf 'ta,%.0s' $(seq 100))certify" --count 4 \
    --n0 5 --n 10 --cert-batch 10 --radii 0,1
# Radii 0 (written with 1100 zeros) and 1: 1,100+ characters.
whole longradii '"radii":\[0,1\]' --eval certify --count 4 --n0 5 --n 10 --cert-batch 10 \
    --radii "0.$(printf '0%.0s' $(seq 1100)),1"

# --npy-images without --data-format npy would be ignored: refused.
"$eval" --checkpoint "$ck" --npy-images "$tmp/x.npy" > "$tmp/npy.log" 2>&1
[ $? -eq 2 ] && grep -q -- '--npy-images: needs --data-format npy' "$tmp/npy.log" ||
    { cat "$tmp/npy.log"; echo "FAIL: --npy-images without --data-format npy"; failed=1; }

[ $failed -eq 0 ] || exit 1
echo "dat-eval --json: refused early when unusable, written whole or not at all;" \
    "long --eval and --radii read to their end"
