# Sourced by the dat-train comparison tests (step_graph_same.sh, nccl_same.sh).

# dat_train_run NAME JSON COMMAND...: runs COMMAND (dat-train, perhaps under
# mpirun), prints its last line and keeps it in $last, and writes that line
# without the run's timings and communicator to JSON, for cmp. Exits 77
# (skipped) when the run found no CUDA device, 1 when it failed otherwise.
dat_train_run() {
    local name=$1 json=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    last=$(printf '%s\n' "$out" | tail -n 1)
    printf '%s\n' "$last"
    if [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | grep -q 'DAT_ERR_NO_DEVICE\|DAT_ERR_UNSUPPORTED' &&
            { echo "no CUDA device: skipped"; exit 77; }
        printf '%s\n' "$out" | tail -n 20
        echo "$name: exit status $rc"; exit 1
    fi
    printf '%s\n' "$last" |
        sed 's/"images_per_s":[0-9.]*,//; s/"seconds":[0-9.]*,//; s/"comm":"[a-z]*",//' > "$json"
}
