"""The ctypes package declares every function libdat.so exports, with the
argument and result types of the C headers, and mirrors every public struct
field by field (tests/bindings/c_api.py parses the headers)."""
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

import libdat
from libdat import _lib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bindings"))
import c_api  # noqa: E402

FUNCTIONS, STRUCTS, ENUMS = c_api.parse()
SCALARS = {"int32_t": "i32", "int": "i32", "uint32_t": "u32", "int64_t": "i64",
           "uint64_t": "u64", "size_t": "u64", "float": "f32", "double": "f64",
           "unsigned char": "u8", "void": "void", "dat_log_fn": "fn", "MPI_Comm": "mpi_comm"}
OPAQUE = {"dat_ctx", "dat_tensor", "dat_model", "dat_model_builder", "dat_attack",
          "dat_quantizer", "dat_comm", "dat_optim", "dat_dataset", "dat_grad_sync",
          "dat_step_graph"}


def c_canon(t: str) -> str:
    """A C type as a comparable token: ptr:..., arrN:..., a scalar or a struct name."""
    if t.startswith("fn("):
        return "fn"
    t = t.replace("const", " ").strip()
    t = " ".join(t.split())
    if t.endswith("]"):
        base, n = t[:-1].split("[")
        return f"arr{n}:{c_canon(base)}"
    if t.endswith("*"):
        inner = t[:-1].strip()
        if inner in ("char",):
            return "cstr"
        if inner in OPAQUE or inner == "void":
            return "ptr:opaque"
        return "ptr:" + c_canon(inner)
    if t in ENUMS:
        return "i32"
    if t in SCALARS:
        return SCALARS[t]
    if t in STRUCTS:
        return t
    raise AssertionError(f"unknown C type {t!r}")


CTYPES = {ctypes.c_int32: "i32", ctypes.c_uint32: "u32", ctypes.c_int64: "i64",
          ctypes.c_uint64: "u64", ctypes.c_float: "f32", ctypes.c_double: "f64",
          ctypes.c_ubyte: "u8", ctypes.c_char_p: "cstr", ctypes.c_void_p: "ptr:opaque",
          None: "void"}


def py_canon(t) -> str:
    if t in CTYPES:
        return CTYPES[t]
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        return "ptr:" + py_canon(t._type_)
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        return f"arr{t._length_}:{py_canon(t._type_)}"
    if isinstance(t, type) and issubclass(t, ctypes.Structure):
        return t.c_name
    if isinstance(t, type) and issubclass(t, ctypes._CFuncPtr):
        return "fn"
    raise AssertionError(f"unknown ctypes type {t!r}")


def exported_functions(path: str) -> list[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    return [f[2] for f in (line.split() for line in out.splitlines())
            if len(f) == 3 and f[1] == "T"]


def test_every_exported_function_is_declared():
    exported = exported_functions(os.environ["LIBDAT_LIBRARY"])
    assert len(exported) > 100
    missing = sorted(set(exported) - _lib.DECLARED)
    assert not missing, f"exported by libdat.so but not bound in libdat/_lib.py: {missing}"


def test_every_header_function_is_declared():
    missing = sorted(set(FUNCTIONS) - _lib.DECLARED)
    if not _lib.HAVE_MPI:  # dat_mpi.h exists only in builds with MPI
        missing = [f for f in missing if FUNCTIONS[f].header != "dat_mpi.h"]
    assert not missing, f"declared in include/libdat but not bound: {missing}"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_signature_matches_header(name):
    fn = FUNCTIONS[name]
    if name not in _lib.DECLARED:
        pytest.skip("not in this build")
    cfn = getattr(_lib.lib, name)
    assert py_canon(cfn.restype) == c_canon(fn.ret), f"{name}: result type"
    assert len(cfn.argtypes) == len(fn.params), f"{name}: argument count"
    for i, ((ct, pname), pt) in enumerate(zip(fn.params, cfn.argtypes)):
        want = c_canon(ct)
        got = py_canon(pt)
        if want == "mpi_comm":
            assert got in ("ptr:opaque", "i32"), f"{name}: {pname}"
            continue
        assert got == want, f"{name}: argument {i} ({pname}) is {got}, header says {want}"


MIRRORS = {cls.c_name: cls for cls in vars(_lib).values()
           if isinstance(cls, type) and issubclass(cls, ctypes.Structure) and cls is not
           ctypes.Structure}


def test_every_struct_is_mirrored():
    assert sorted(MIRRORS) == sorted(STRUCTS)


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_fields_match_header(name):
    py = [(f[0], py_canon(f[1])) for f in MIRRORS[name]._fields_]
    c = [(n, c_canon(t)) for t, n in STRUCTS[name].fields]
    assert py == c


INITS = {"dat_ctx_options_init": "dat_ctx_options", "dat_model_options_init": "dat_model_options",
         "dat_loss_options_init": "dat_loss_options",
         "dat_input_grad_options_init": "dat_input_grad_options",
         "dat_model_load_options_init": "dat_model_load_options",
         "dat_attack_options_init": "dat_attack_options",
         "dat_optim_options_init": "dat_optim_options",
         "dat_quantizer_options_init": "dat_quantizer_options",
         "dat_comm_options_init": "dat_comm_options",
         "dat_smooth_options_init": "dat_smooth_options",
         "dat_autoattack_options_init": "dat_autoattack_options",
         "dat_dataset_options_init": "dat_dataset_options"}


@pytest.mark.parametrize("init", sorted(INITS))
def test_struct_size_matches_the_library(init):
    """The size field the library's init writes is sizeof() in C: the mirror must agree."""
    o = MIRRORS[INITS[init]]()
    assert getattr(_lib.lib, init)(ctypes.byref(o)) == 0
    assert o.size == ctypes.sizeof(o)


def test_layer_spec_size_matches_the_library():
    spec = _lib.LayerSpec()
    assert _lib.lib.dat_layer_spec_init(ctypes.byref(spec), 0) == 0
    assert spec.size == ctypes.sizeof(spec)


def test_misc_entry_points():
    assert libdat.version_number() == 100 * int(libdat.version().split(".")[1]) + \
        10000 * int(libdat.version().split(".")[0]) + int(libdat.version().split(".")[2])
    assert libdat.status_string(1) == "DAT_ERR_INVALID_ARG"
    assert libdat.dtype_size(libdat.DType.FLOAT32) == 4
    assert libdat.dtype_name(libdat.DType.UINT8) == "uint8"
    with pytest.raises(libdat.InvalidArgumentError):
        libdat.Tensor(libdat.Context(), (0,))
    assert libdat.last_error() != ""
    libdat.clear_error()
    assert libdat.last_error() == ""


ENUM_VALUES = c_api.enum_values()
PY_ENUMS = [  # (Python enum, C enum, prefix of the C names)
    (libdat.DType, "dat_dtype", "DAT_"), (libdat.Device, "dat_device_kind", "DAT_DEVICE_"),
    (libdat.LogLevel, "dat_log_level", "DAT_LOG_"), (libdat.Mode, "dat_model_mode", "DAT_MODE_"),
    (libdat.Precision, "dat_precision", "DAT_PRECISION_"),
    (libdat.Reduction, "dat_reduction", "DAT_REDUCE_"),
    (libdat.Objective, "dat_objective", "DAT_OBJECTIVE_"),
    (libdat.SegmentKind, "dat_segment_kind", "DAT_SEGMENT_"),
    (libdat.LayerKind, "dat_layer_kind", "DAT_LAYER_"),
    (libdat.AttackKind, "dat_attack_kind", "DAT_ATTACK_"), (libdat.Norm, "dat_norm", "DAT_NORM_"),
    (libdat.QuantNorm, "dat_quant_norm", "DAT_QUANT_NORM_"),
    (libdat.QuantMode, "dat_quant_mode", "DAT_QUANT_"),
    (libdat.OptimKind, "dat_optim_kind", "DAT_OPTIM_"),
    (libdat.Schedule, "dat_schedule_kind", "DAT_SCHEDULE_"),
    (libdat.LrScaling, "dat_lr_scaling", "DAT_LR_SCALING_"),
    (libdat.DatasetFormat, "dat_dataset_format", "DAT_DATASET_"),
    (libdat.Layout, "dat_dataset_layout", "DAT_LAYOUT_"),
    (libdat.Part, "dat_dataset_part", "DAT_PART_"),
    (libdat.ReinitHead, "dat_reinit_head", "DAT_REINIT_HEAD_"),
    (libdat.AAAttack, "dat_aa_attack", "DAT_AA_"), (libdat.AAOutcome, "dat_aa_outcome", "DAT_AA_"),
]


@pytest.mark.parametrize("py, c, prefix", PY_ENUMS, ids=[c for _, c, _ in PY_ENUMS])
def test_enum_matches_header(py, c, prefix):
    want = {k[len(prefix):]: v for k, v in ENUM_VALUES[c].items() if "FORCE_32BIT" not in k}
    assert {m.name: m.value for m in py} == want


def test_every_enum_is_mirrored():
    assert sorted(c for _, c, _ in PY_ENUMS) + ["dat_status"] == sorted(ENUM_VALUES)


def test_status_names_match_header():
    from libdat.errors import STATUS_NAMES
    want = {v: k for k, v in ENUM_VALUES["dat_status"].items()
            if v != 0 and "FORCE" not in k}
    assert STATUS_NAMES == want
