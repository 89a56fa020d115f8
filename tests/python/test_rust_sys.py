"""bindings/rust/dat-sys/src/lib.rs declares the C API exactly as the headers
do: every function with its argument names and types (pointer constness
included) and result, every struct field by field, every enum as an i32 alias
with every enumerator's value."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bindings"))
import c_api  # noqa: E402

FUNCTIONS, STRUCTS, ENUMS = c_api.parse()
ENUM_VALUES = c_api.enum_values()
SYS = (ROOT / "bindings" / "rust" / "dat-sys" / "src" / "lib.rs").read_text()

C_SCALARS = {"int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
             "size_t": "usize", "float": "f32", "double": "f64", "unsigned char": "u8",
             "int": "int", "char": "char", "void": "void"}
RUST_SCALARS = {"i32": "i32", "u32": "u32", "i64": "i64", "u64": "u64", "usize": "usize",
                "f32": "f32", "f64": "f64", "u8": "u8", "c_int": "int", "c_char": "char",
                "c_void": "void"}


def c_canon(t: str) -> str:
    t = " ".join(t.split())
    fp = re.fullmatch(r"fn\((.*?); (.*)\)", t)
    if fp:  # a function-pointer field, as c_api writes it
        return f"fn({c_canon(fp.group(1))}; {', '.join(c_canon(a) for a in fp.group(2).split(', '))})"
    if t.endswith("]"):
        base, n = t[:-1].split("[")
        return f"[{c_canon(base)};{n}]"
    if t.endswith("*"):
        inner = t[:-1].strip()
        if re.search(r"[\s*]const$", inner):  # T *const *: the pointee is a const pointer
            return "cptr:" + c_canon(inner[:-5])
        if inner.startswith("const ") and "*" not in inner:
            return "cptr:" + c_canon(inner[6:])
        return "mptr:" + c_canon(inner)
    return C_SCALARS.get(t, t)  # enums, structs, handles, dat_log_fn, MPI_Comm by name


def rust_canon(t: str) -> str:
    t = " ".join(t.split())
    fp = re.fullmatch(r'Option<unsafe extern "C" fn\((.*?)\)(?: -> (.+))?>', t)
    if fp:
        args = [rust_canon(a.split(":", 1)[1]) for a in split_top(fp.group(1))]
        return f"fn({rust_canon(fp.group(2) or 'c_void')}; {', '.join(args)})"
    m = re.fullmatch(r"\[(.*);\s*(\d+)\]", t)
    if m:
        return f"[{rust_canon(m.group(1))};{m.group(2)}]"
    if t.startswith("*const "):
        return "cptr:" + rust_canon(t[7:])
    if t.startswith("*mut "):
        return "mptr:" + rust_canon(t[5:])
    return RUST_SCALARS.get(t, t)


def split_top(s: str) -> list[str]:
    """Splits at commas outside brackets and parentheses."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [x.strip() for x in out]


def rust_functions() -> dict[str, tuple[list[tuple[str, str]], str]]:
    fns = {}
    for block in re.findall(r'extern "C" \{(.*?)\n\}', SYS, flags=re.S):
        for m in re.finditer(r"pub fn (\w+)\((.*?)\)(?:\s*->\s*([^;]+))?;", block, flags=re.S):
            params = []
            for p in split_top(m.group(2)):
                name, t = p.split(":", 1)
                params.append((name.strip().replace("r#", ""), rust_canon(t)))
            fns[m.group(1)] = (params, rust_canon(m.group(3) or "c_void"))
    return fns


def rust_structs() -> dict[str, list[tuple[str, str]]]:
    out = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", SYS, flags=re.S):
        fields = []
        for line in m.group(2).splitlines():
            f = re.fullmatch(r"\s*pub (\w+): (.+),\s*", line)
            if f:
                fields.append((f.group(1), rust_canon(f.group(2))))
        out[m.group(1)] = fields
    return out


RUST_FUNCTIONS = rust_functions()
RUST_STRUCTS = rust_structs()


def test_the_same_functions():
    assert len(RUST_FUNCTIONS) > 100
    assert sorted(RUST_FUNCTIONS) == sorted(FUNCTIONS)


def test_mpi_entry_points_need_the_feature():
    mpi = [f for f in FUNCTIONS.values() if f.header == "dat_mpi.h"]
    assert mpi
    block = re.search(r'#\[cfg\(feature = "mpi"\)\]\s*extern "C" \{(.*?)\n\}', SYS, flags=re.S)
    assert block and all(f"pub fn {f.name}(" in block.group(1) for f in mpi)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_matches_header(name):
    fn = FUNCTIONS[name]
    params, ret = RUST_FUNCTIONS[name]
    assert ret == c_canon(fn.ret), f"{name}: result"
    want = [(n, c_canon(t)) for t, n in fn.params]
    assert params == want


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_matches_header(name):
    want = [(n, c_canon(t)) for t, n in STRUCTS[name].fields]
    assert RUST_STRUCTS.get(name) == want


def test_handles_are_opaque():
    for handle in ("dat_ctx", "dat_tensor", "dat_model", "dat_model_builder", "dat_attack",
                   "dat_quantizer", "dat_comm", "dat_optim", "dat_dataset"):
        assert RUST_STRUCTS.get(handle) == [], handle
        assert re.search(rf"#\[repr\(C\)\]\npub struct {handle} \{{\n    _private: \[u8; 0\],",
                         SYS), handle


@pytest.mark.parametrize("enum", sorted(ENUM_VALUES))
def test_enum_values_match_header(enum):
    assert re.search(rf"^pub type {enum} = i32;$", SYS, flags=re.M), f"no alias {enum}"
    for name, value in ENUM_VALUES[enum].items():
        m = re.search(rf"^pub const {name}: {enum} = (0x[0-9a-f]+|-?\d+);$", SYS, flags=re.M)
        assert m, f"{name} missing"
        assert int(m.group(1), 0) == value, name


def test_log_callback_type():
    m = re.search(r"pub type dat_log_fn =\s*Option<unsafe extern \"C\" fn\((.*?)\)>;", SYS,
                  flags=re.S)
    assert m
    params = [p.split(":")[1].strip() for p in split_top(m.group(1))]
    assert [rust_canon(p) for p in params] == ["dat_log_level", "cptr:char", "mptr:void"]


def test_version_constants():
    text = (ROOT / "include" / "libdat" / "dat_version.h").read_text()
    for part in ("MAJOR", "MINOR", "PATCH"):
        c = re.search(rf"#define DAT_VERSION_{part} (\d+)", text).group(1)
        assert re.search(rf"pub const DAT_VERSION_{part}: u32 = {c};", SYS), part
