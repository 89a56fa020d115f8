# Sourced by the tests that train on Fashion-MNIST: sets $dir to the data set
# (FASHION_MNIST_DIR, or where Debian's dataset-fashion-mnist puts it) and exits
# 77 (skipped) without it; sets $tmp to a scratch folder removed on exit.
dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$dir/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $dir: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
