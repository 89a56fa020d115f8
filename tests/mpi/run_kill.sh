#!/usr/bin/env bash
# Runs test_mpi_kill on NP ranks. The last rank kills itself; the others must
# each report DAT_ERR_TIMEOUT within the timeout. mpirun is told not to abort
# the job when a rank dies (it would kill the survivors before they report),
# and is stopped here once the survivors' verdicts are in (it would otherwise
# wait for the dead rank).
set -u
mpirun=$1 exe=$2 np=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$mpirun" --oversubscribe --bind-to none --mca orte_abort_on_non_zero_status 0 \
    -np "$np" "$exe" "$dir" > "$dir/mpirun.log" 2>&1 &
pid=$!
want=$((np - 1))
deadline=$((SECONDS + 60))
while [ "$(ls "$dir" | grep -c '^rank')" -lt "$want" ] && [ $SECONDS -lt $deadline ] \
      && kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
fail=0
for ((r = 0; r < want; r++)); do
    if [ -f "$dir/rank$r" ]; then
        cat "$dir/rank$r"
        grep -q ': PASS: ' "$dir/rank$r" || fail=1
    else
        echo "rank $r reported nothing"; fail=1
    fi
done
if [ $fail -ne 0 ]; then
    echo "--- mpirun output ---"; cat "$dir/mpirun.log"
fi
exit $fail
