#!/usr/bin/env python3
"""Turns a CUDA source into C++ for the CPU emulation (cuda_runtime.h here).

Usage: unchevron.py INPUT.cu OUTPUT.cpp

The only syntax nvcc accepts and a C++ compiler does not is the launch
`kernel<<<grid, block[, shared[, stream]]>>>(args)`; it becomes
`dat_emu::make_launch([=](auto... a) { kernel(a...); }, grid, block, shared,
stream, site)(args)`, on the same lines, so that compiler messages point at the
source's lines. The generic lambda lets a kernel template deduce its
arguments, as a launch does; it copies `kernel` where that is a variable. The
site (file, line, kernel text, launching function) names the launch in the
emulator's launch census.
"""
import re
import sys

LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:\s*<[^<>;{}]*>)?)\s*<<<(.*?)>>>", re.S)


def split_top(text):
    """Splits a launch configuration at its top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def launch(m):
    cfg = split_top(m.group(2))
    if not 2 <= len(cfg) <= 4:
        raise SystemExit(f"unchevron: cannot read the launch configuration <<<{m.group(2)}>>>")
    cfg += ["0", "0"][: 4 - len(cfg)]
    lines = "\n" * m.group(0).count("\n")
    name = " ".join(m.group(1).split()).replace("\\", "").replace('"', "")
    site = f'dat_emu::site{{__FILE__, __LINE__, "{name}", __PRETTY_FUNCTION__}}'
    return (f"dat_emu::make_launch([=](auto... a) {{ {m.group(1)}(a...); }}, dim3({cfg[0]}), dim3({cfg[1]}), "
            f"(size_t)({cfg[2]}), ({cfg[3]}), {site}){lines}")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    out = f'#line 1 "{src}"\n' + LAUNCH.sub(launch, text)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(out)


if __name__ == "__main__":
    main()
