# scripts/bench grad-sync: one step's loss backward and gradient all-reduce over MPI
# with 2 ranks, sequential (dat_comm_allreduce_grads after the backward pass) against
# overlapped (dat_grad_sync: buckets reduced during it). Arguments: [preset] [batch]
# [reps] [bits]. Last line: "grad-sync ratio=R ..." (R = sequential / overlapped time).
set -euo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun -np 2 --oversubscribe --bind-to none "$LIBDAT_BUILD/bench/bench_grad_sync" \
    "${1:-preact_resnet18}" "${2:-16}" "${3:-5}" "${4:-32}"
