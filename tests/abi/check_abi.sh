#!/usr/bin/env bash
# Compares the public ABI of the built library with the baseline kept in
# abi/libdat.abi. Any difference fails: a change to the public API must come
# with `scripts/abi-update` (and, if it breaks callers, a new soname major).
set -euo pipefail
lib=$1 headers=$2 baseline=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
abidw --headers-dir "$headers" --drop-private-types --no-corpus-path \
      --out-file "$work/current.abi" "$lib"
if ! abidiff \
        "$baseline" "$work/current.abi" > "$work/report.txt"; then
    cat "$work/report.txt"
    echo "the public ABI differs from $baseline: if that is deliberate, run scripts/abi-update"
    exit 1
fi
echo "ABI matches $baseline"
