# scripts/bench quant: quantize + pack and unpack + accumulate of 11 M floats in GB/s
# against memcpy with the same threads (goal: ratio >= 0.5 with 2 threads).
# Arguments: [n] [bits] [threads] [reps] (defaults 11 M, 8, 2, 10).
set -euo pipefail
exec "$LIBDAT_BUILD/bench/bench_quant" "${1:-11000000}" "${2:-8}" "${3:-2}" "${4:-10}"
