"""Finding and loading the libdat shared library, and its C declarations."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _candidates() -> list[str]:
    """Where to look, in order: $LIBDAT_LIBRARY, the repository's build folder, the system."""
    found = []
    env = os.environ.get("LIBDAT_LIBRARY")
    if env:
        found.append(env)
    repo = _HERE.parent.parent.parent  # bindings/python/libdat -> repository root
    for build in ("build", "build-asan"):
        lib = repo / build / "libdat.so"
        if lib.exists():
            found.append(str(lib))
    system = ctypes.util.find_library("dat")
    if system:
        found.append(system)
    return found


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:  # try the next candidate, remember why this one failed
            errors.append(f"{path}: {e}")
    detail = "; ".join(errors) if errors else "no candidate found"
    raise ImportError(
        "libdat: cannot load libdat.so (set LIBDAT_LIBRARY to its path, build the "
        f"repository, or install libdat): {detail}")


lib = _load()

c_status = ctypes.c_int32
c_ctx_p = ctypes.c_void_p
c_tensor_p = ctypes.c_void_p
c_log_fn = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)


class CtxOptions(ctypes.Structure):
    """Mirror of dat_ctx_options (include/libdat/dat_ctx.h)."""
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("device", ctypes.c_int32),
        ("device_ordinal", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("log_fn", c_log_fn),
        ("log_user", ctypes.c_void_p),
        ("log_level", ctypes.c_int32),
    ]


def _declare(name: str, restype, *argtypes) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_P = ctypes.POINTER
_declare("dat_status_string", ctypes.c_char_p, c_status)
_declare("dat_last_error", ctypes.c_char_p)
_declare("dat_clear_error", None)
_declare("dat_version", ctypes.c_uint32)
_declare("dat_version_string", ctypes.c_char_p)
_declare("dat_dtype_size", ctypes.c_size_t, ctypes.c_int32)
_declare("dat_dtype_name", ctypes.c_char_p, ctypes.c_int32)
_declare("dat_has_cuda", ctypes.c_int)
_declare("dat_cuda_device_count", c_status, _P(ctypes.c_int32))

_declare("dat_ctx_options_init", c_status, _P(CtxOptions))
_declare("dat_ctx_create", c_status, _P(c_ctx_p), _P(CtxOptions))
_declare("dat_ctx_destroy", None, c_ctx_p)
_declare("dat_ctx_synchronize", c_status, c_ctx_p)
_declare("dat_ctx_device", c_status, c_ctx_p, _P(ctypes.c_int32), _P(ctypes.c_int32))
_declare("dat_ctx_num_threads", c_status, c_ctx_p, _P(ctypes.c_int32))
_declare("dat_ctx_seed", c_status, c_ctx_p, _P(ctypes.c_uint64))

_declare("dat_tensor_create", c_status, _P(c_tensor_p), c_ctx_p, ctypes.c_int32, ctypes.c_int32,
         _P(ctypes.c_int64))
_declare("dat_tensor_destroy", None, c_tensor_p)
_declare("dat_tensor_shape", c_status, c_tensor_p, _P(ctypes.c_int32), _P(ctypes.c_int64))
_declare("dat_tensor_dtype", c_status, c_tensor_p, _P(ctypes.c_int32))
_declare("dat_tensor_numel", c_status, c_tensor_p, _P(ctypes.c_int64))
_declare("dat_tensor_nbytes", c_status, c_tensor_p, _P(ctypes.c_size_t))
_declare("dat_tensor_reshape", c_status, c_tensor_p, ctypes.c_int32, _P(ctypes.c_int64))
_declare("dat_tensor_host_data", c_status, c_tensor_p, _P(ctypes.c_void_p))
_declare("dat_tensor_write", c_status, c_tensor_p, ctypes.c_void_p, ctypes.c_size_t)
_declare("dat_tensor_read", c_status, c_tensor_p, ctypes.c_void_p, ctypes.c_size_t)
_declare("dat_tensor_copy", c_status, c_tensor_p, c_tensor_p)
_declare("dat_tensor_fill", c_status, c_tensor_p, ctypes.c_double)
_declare("dat_tensor_fill_uniform", c_status, c_tensor_p, ctypes.c_float, ctypes.c_float,
         ctypes.c_uint64, ctypes.c_uint64)
_declare("dat_tensor_fill_normal", c_status, c_tensor_p, ctypes.c_float, ctypes.c_float,
         ctypes.c_uint64, ctypes.c_uint64)
