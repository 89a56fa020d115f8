#!/usr/bin/env bash
# The same one-epoch DAT loop written in C (examples/c/dat_epoch.c), Python
# (examples/python/dat_epoch.py) and Rust (bindings/rust/dat/examples/dat_epoch.rs):
# 2 000 Fashion-MNIST images, the same seeds, on the CPU. Their final weights
# must be bit-identical.
#   test_three_languages.sh BUILD_DIR RUST_EXAMPLE
# BUILD_DIR holds libdat.so and examples/dat_epoch; RUST_EXAMPLE is the built
# Rust example. Exits 77 (skip) without the data set.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd) rust=$2
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$data/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $data: skipped"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$build/examples/dat_epoch" "$data" "$tmp/c.bin" | tee "$tmp/c.out" \
    || { echo "C loop failed"; exit 1; }
LIBDAT_LIBRARY="$build/libdat.so" PYTHONPATH="$root/bindings/python" \
    /usr/bin/python3 "$root/examples/python/dat_epoch.py" "$data" "$tmp/python.bin" \
    | tee "$tmp/python.out" || { echo "Python loop failed"; exit 1; }
LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$rust" "$data" "$tmp/rust.bin" \
    | tee "$tmp/rust.out" || { echo "Rust loop failed"; exit 1; }

fail=0
size=$(stat -c %s "$tmp/c.bin")
[ "$size" -gt 0 ] || { echo "no weights written"; exit 1; }
for lang in python rust; do
    if cmp -s "$tmp/c.bin" "$tmp/$lang.bin"; then
        echo "C and $lang: identical ($size bytes, sha256 $(sha256sum < "$tmp/c.bin" | cut -c1-16))"
    else
        echo "C and $lang differ: $(cmp "$tmp/c.bin" "$tmp/$lang.bin" | head -1)"; fail=1
    fi
done
# Each loop took its 20 steps (2 000 images in batches of 100) and reports the same loss.
for lang in c python rust; do
    grep -q '^dat_epoch: 20 steps' "$tmp/$lang.out" || { echo "$lang: not 20 steps"; fail=1; }
done
[ "$(sort -u "$tmp"/*.out | wc -l)" -eq 1 ] || { echo "the loops report different losses"; fail=1; }
exit $fail
