#!/usr/bin/env bash
# dat-train's --optimizer lamb and lars are their spelled-out options, and the
# Adam options reach the optimizer: the trained tensors (the checkpoint without
# its metadata, which holds the command's names) are equal byte for byte, and
# differ from a run with the library's Adam defaults:
#   optimizer_names.sh DAT_TRAIN
# Skips (77) without Fashion-MNIST.
set -uo pipefail
train=$1
. "$(dirname "$0")/fashion_mnist.sh"

# run NAME OPTIONS...: trains a few steps into $tmp/NAME
run() {
    local name=$1
    shift
    "$train" --data "$dir" --train-subset 256 --batch 64 --epochs 1 --steps 1 --eval-count 64 \
        --eval-steps 1 --progress none --lr 0.01 --checkpoint-dir "$tmp/$name" "$@" \
        > "$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; echo "$name: failed"; exit 1; }
}

# tensors NAME: the checkpoint's bytes after its safetensors header
tensors() {
    local f=$tmp/$1/last.safetensors n
    n=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
    tail -c +$((9 + n)) "$f" | md5sum
}

same() { [ "$(tensors "$1")" = "$(tensors "$2")" ] || { echo "$1 and $2 differ"; exit 1; }; }

run lamb --optimizer lamb
run lamb-spelled --optimizer adamw --lalr on --bias-correction off --adam-eps 1e-6
run adamw-lalr --optimizer adamw --lalr on
run lars --optimizer lars
run lars-spelled --optimizer momentum --lalr on
same lamb lamb-spelled
same lars lars-spelled
k=0
for opt in "--bias-correction off" "--adam-eps 1e-6" "--beta2 0.99"; do
    k=$((k + 1))
    run "adam-$k" --optimizer adamw --lalr on $opt
    [ "$(tensors adamw-lalr)" != "$(tensors "adam-$k")" ] ||
        { echo "$opt changed nothing"; exit 1; }
done
# (the config is a JSON string inside the header's JSON: its quotes escaped)
grep -qF '\"optimizer\":\"lamb\",\"lalr\":1' "$tmp/lamb/last.safetensors" ||
    { echo "the checkpoint's config does not record lamb with LALR"; exit 1; }
out=$("$train" --optimizer lamb --lalr off 2>&1) &&
    { echo "--lalr off was accepted with lamb"; exit 1; }
echo "$out" | grep -q "lamb is adamw with LALR" || { echo "unclear error: $out"; exit 1; }
echo "optimizer names: lamb and lars are their spelled-out options; the Adam options apply"
