"""The public C API as data, parsed from include/libdat/*.h: every DAT_API
function (name, return type, parameter types) and every struct (field names and
types), with types normalized ("int32_t", "const char *", "dat_tensor *",
"int64_t[16]", ...). The binding checks of Python and Rust compare against it.

Only the shapes these headers use are understood; anything else raises, so a
new construct in a header makes the checks fail loudly instead of skipping it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "libdat"


@dataclass
class Function:
    name: str
    ret: str
    params: list[tuple[str, str]]  # (type, name)
    header: str


@dataclass
class Struct:
    name: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # (type, name)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _norm(t: str) -> str:
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\s*\*\s*", " *", t).replace(" * *", " **").replace(" *", " *")
    return re.sub(r"\*\s+\*", "**", t).strip()


def _split_decl(decl: str, defines: dict[str, str]) -> tuple[str, str]:
    """'const int64_t *shape' -> ('const int64_t *', 'shape'); arrays -> 'T[n]'."""
    decl = decl.strip()
    m = re.fullmatch(r"(.*?)([A-Za-z_]\w*)\s*(\[\s*(\w+)\s*\])?", decl, flags=re.S)
    if not m or not m.group(1).strip():
        raise ValueError(f"cannot parse declaration {decl!r}")
    t = _norm(m.group(1))
    if m.group(3):
        n = defines.get(m.group(4), m.group(4))
        t = f"{t}[{n}]"
    return t, m.group(2)


def _defines(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in
            re.finditer(r"#define\s+(\w+)\s+(\d+)\s*$", text, flags=re.M)}


def enum_values(include: Path = INCLUDE) -> dict[str, dict[str, int]]:
    """Enumerators of every public enum: {enum type: {NAME: value}} (all explicit)."""
    out: dict[str, dict[str, int]] = {}
    for p in sorted(include.glob("*.h")):
        text = _strip_comments(p.read_text())
        for m in re.finditer(r"typedef\s+enum\s+\w+\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
            values = {}
            for item in m.group(1).split(","):
                item = item.strip()
                if not item:
                    continue
                name, value = (x.strip() for x in item.split("="))
                values[name] = int(value, 0)
            out[m.group(2)] = values
    return out


def parse(include: Path = INCLUDE) -> tuple[dict[str, Function], dict[str, Struct], set[str]]:
    """(functions by name, structs by name, enum type names) of every public header."""
    functions: dict[str, Function] = {}
    structs: dict[str, Struct] = {}
    enums: set[str] = set()
    texts = {p.name: _strip_comments(p.read_text()) for p in sorted(include.glob("*.h"))}
    defines: dict[str, str] = {}
    for text in texts.values():
        defines.update(_defines(text))
    for header, text in texts.items():
        for m in re.finditer(r"typedef\s+enum\s+\w+\s*\{.*?\}\s*(\w+)\s*;", text, flags=re.S):
            enums.add(m.group(1))
        for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", text,
                             flags=re.S):
            s = Struct(m.group(3))
            for line in m.group(2).split(";"):
                line = line.strip()
                if not line:
                    continue
                fp = re.fullmatch(r"(.+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)", line, flags=re.S)
                if fp:  # a function pointer: "fn(ret; type, type, ...)"
                    args = [_split_decl(a, defines)[0] for a in fp.group(3).split(",")]
                    s.fields.append((f"fn({_norm(fp.group(1))}; {', '.join(args)})",
                                     fp.group(2)))
                    continue
                first, *more = [x.strip() for x in line.split(",")]
                t, name = _split_decl(first, defines)
                s.fields.append((t, name))
                base = t.rstrip("*").strip()
                for extra in more:  # "float lo, hi"
                    et, en = _split_decl(f"{base} {extra}", defines)
                    s.fields.append((et, en))
            structs[s.name] = s
        for m in re.finditer(r"DAT_API\s+([^;(]*?)\b(dat_\w+)\s*\(([^)]*)\)\s*;", text,
                             flags=re.S):
            params = []
            body = m.group(3).strip()
            if body != "void":
                for p in body.split(","):
                    params.append(_split_decl(p, defines))
            functions[m.group(2)] = Function(m.group(2), _norm(m.group(1)), params, header)
    return functions, structs, enums
