#!/usr/bin/env bash
# Runs an example program on Debian's Fashion-MNIST and checks its last line:
#   run_example.sh PATTERN COMMAND...
# Skips (77) when the data set (package dataset-fashion-mnist) is absent.
set -uo pipefail
pattern=$1; shift
dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$dir/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $dir: skipped"; exit 77; }
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || { echo "exit status $rc"; exit 1; }
last=$(printf '%s\n' "$out" | tail -n 1)
if ! printf '%s\n' "$last" | grep -Eq -- "$pattern"; then
    echo "last line does not match /$pattern/"; exit 1
fi
