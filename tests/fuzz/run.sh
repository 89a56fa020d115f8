#!/usr/bin/env bash
# Builds the reader fuzzers (datasets and safetensors) with clang's libFuzzer (plus AddressSanitizer and
# UndefinedBehaviorSanitizer) and runs each for a bounded time on its seed
# corpus, tests/fuzz/corpus/KIND/.
#
#   tests/fuzz/run.sh [SECONDS_EACH] [KIND ...]   (default 60 s; idx cifar npy safetensors)
#
# New inputs go to a scratch folder, not the committed corpus. A crash leaves
# crash-* in tests/fuzz/out/ and makes the script fail; once fixed, copy the
# file into corpus/KIND/, where the unit tests replay it for good.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
shift || true
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(idx cifar npy safetensors)
out=$root/tests/fuzz/out
mkdir -p "$out"
cc=${CLANG:-clang}
flags=(-std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$root/include" -I"$root/lib")
srcs=("$root"/lib/data/{idx,gzip,cifar,npy,source}.c "$root"/lib/io/safetensors.c
      "$root/lib/core/error.c")
status=0
for kind in "${kinds[@]}"; do
    bin=$out/fuzz_$kind
    "$cc" "${flags[@]}" "$root/tests/fuzz/fuzz_$kind.c" "${srcs[@]}" -lz -lm -o "$bin"
    work=$(mktemp -d)
    echo "fuzz_$kind: ${seconds} s"
    if ! "$bin" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
            -artifact_prefix="$out/${kind}-" -print_final_stats=1 \
            "$work" "$root/tests/fuzz/corpus/$kind" 2>"$out/$kind.log"; then
        echo "fuzz_$kind FAILED: see $out/$kind.log and $out/${kind}-crash-*"
        tail -30 "$out/$kind.log"
        status=1
    else
        grep -E 'stat::number_of_executed_units|cov:' "$out/$kind.log" | tail -2
    fi
    rm -rf "$work"
done
exit $status
