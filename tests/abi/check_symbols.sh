#!/usr/bin/env bash
# The shared library exports only dat_* symbols, carries the soname
# libdat.so.0, and every exported function is exercised by the misuse test.
set -euo pipefail
lib=$1 misuse_src=$2
fail=0
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
bad=$(printf '%s\n' "$syms" | grep -v '^dat_' || true)
if [ -n "$bad" ]; then
    echo "exported symbols outside dat_*:"; printf '  %s\n' $bad; fail=1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libdat.so.0" ]; then
    echo "SONAME is '$soname', expected libdat.so.0"; fail=1
fi
funcs=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}')
for f in $funcs; do
    if ! grep -q "\b$f\b" "$misuse_src"; then
        echo "exported function $f is not exercised by $(basename "$misuse_src")"; fail=1
    fi
done
echo "$(printf '%s\n' $funcs | wc -l) exported functions, soname $soname"
exit $fail
