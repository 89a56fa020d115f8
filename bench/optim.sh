# scripts/bench optim: one LAMB step over 11 M parameters (PreAct ResNet-18's size)
# against a LAMB written with PyTorch's foreach kernels and against memcpy bandwidth.
# Last line: optim ratio=R (libdat over PyTorch) and the fraction of memcpy.
set -euo pipefail
n=${N:-11172170} threads=${THREADS:-2} iters=${ITERS:-10}
ours=$("$LIBDAT_BUILD/bench/bench_optim" "$n" "$iters" "$threads")
theirs=$(/usr/bin/python3 bench/optim_torch.py "$n" "$iters" "$threads")
echo "libdat  $ours"
echo "pytorch $theirs"
f() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<< " $2"; }
a=$(f step_ms "$ours") b=$(f step_ms "$theirs") g=$(f gbs "$ours") c=$(f memcpy_gbs "$ours")
echo "optim ratio=$(/usr/bin/python3 -c "print(f'{$b / $a:.2f}')") libdat_ms=$a pytorch_ms=$b" \
     "libdat_gbs=$g memcpy_gbs=$c of_memcpy=$(/usr/bin/python3 -c "print(f'{$g / $c:.2f}')")" \
     "n=$n threads=$threads"
