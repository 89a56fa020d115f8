# Shared by the paper-shape experiments of bench/results/: runs one dat-train
# configuration for each seed, skipping runs whose result file is complete, so
# an interrupted experiment continues where it stopped.
#
#   source bench/results/run.sh
#   result NAME RANKS SEEDS -- DAT-TRAIN ARGS...
#
# "{seed}" inside an argument becomes the seed (per-seed checkpoint folders).
# Each run leaves $RESULTS/NAME.sSEED.json (dat-train's final JSON line),
# .metrics.jsonl (one line per epoch) and .log (stderr). A run whose loss became NaN
# is finished too: its .json is {"diverged": "epoch E, step S"}. RESULTS defaults to
# build/results; LIBDAT_BUILD to build.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${LIBDAT_BUILD:-$root/build}
RESULTS=${RESULTS:-$build/results}
mkdir -p "$RESULTS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
train="$build/examples/dat-train/dat-train"

# "epoch E, step S" where dat-train stopped on a NaN loss (its error line), else fails.
diverged_at() {
    local at='.*: loss \(epoch ([0-9]+), batch [0-9]+, step ([0-9]+)\): DAT_ERR_NUMERIC: .*NaN.*'
    sed -En "s/$at/epoch \\1, step \\2/p" "$1" | head -n 1 | grep .
}

result() {
    local name=$1 ranks=$2 seeds=$3
    shift 4 # the "--"
    local seed
    for seed in $seeds; do
        local out="$RESULTS/$name.s$seed"
        if [ -s "$out.json" ] && grep -Eq '"(ta|diverged)"' "$out.json"; then
            continue
        fi
        rm -f "$out.metrics.jsonl"
        # One thread per rank everywhere: 1-rank and 4-rank runs do the same work per
        # process, and no OpenMP barrier spins on a core another job holds.
        local launch=("$train")
        if [ "$ranks" -gt 1 ]; then
            launch=(mpirun -np "$ranks" --oversubscribe --bind-to none "$train")
        fi
        echo "$(date +%H:%M:%S) $name seed $seed ($ranks ranks)"
        if "${launch[@]}" --threads 1 --progress none --seed "$seed" \
                --metrics "$out.metrics.jsonl" "${@//\{seed\}/$seed}" >"$out.out" \
                2>"$out.log"; then
            tail -n 1 "$out.out" >"$out.json"
            rm -f "$out.out"
        elif where=$(diverged_at "$out.log"); then
            echo "  diverged: $where"
            printf '{"diverged":"%s"}\n' "$where" >"$out.json"
            rm -f "$out.out"
        else # the next configurations still run; this one is retried next time
            echo "  failed: see $out.log" >&2
        fi
    done
}
