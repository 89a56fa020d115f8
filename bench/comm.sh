# scripts/bench comm: dat_comm all-reduce of 11 M floats over MPI with 2 ranks against
# a raw MPI_Allreduce (goal: ratio >= 0.95), and the bytes per iteration of 32 / 16 /
# 8-bit one-sided and 8-bit two-sided quantized all-reduce. Arguments: [n] [reps].
set -euo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun -np 2 --oversubscribe "$LIBDAT_BUILD/bench/bench_comm" "${1:-11000000}" "${2:-5}"
