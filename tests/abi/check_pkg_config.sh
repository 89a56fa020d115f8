#!/usr/bin/env bash
# Builds programs with `cc $(pkg-config --cflags --libs libdat)` against the
# uninstalled libdat.pc, and runs them: a minimal one and the README's example.
set -euo pipefail
build=$1 readme=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$build/meson-uninstalled"
flags=$(pkg-config --cflags --libs libdat)

cat > "$work/min.c" <<'C'
#include <libdat/dat.h>
#include <stdio.h>
int main(void) { printf("libdat %s\n", dat_version_string()); return dat_version() == DAT_VERSION_NUMBER ? 0 : 1; }
C
# The README's first ```c block is a complete program: it must build and run.
awk '/^```c$/ {on = 1; next} /^```$/ && on {exit} on {print}' "$readme" > "$work/readme.c"
[ -s "$work/readme.c" ] || { echo "README.md has no \`\`\`c block"; exit 1; }

for prog in min readme; do
    cc -std=c11 -Wall -Wextra -Werror "$work/$prog.c" -o "$work/$prog" $flags
    LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/$prog"
done
