"""libdat: distributed adversarial training, from Python through ctypes.

The shared library is found through $LIBDAT_LIBRARY, then the repository's
build folder, then the system's library path. Every handle (Context, Tensor,
Model, Attack, Quantizer, Comm, Optimizer, Dataset, ModelBuilder) is closed by
close(), a `with` block or garbage collection; closing a context closes what was
made from it first. Failing calls raise DatError (or a subclass) carrying the
status and dat_last_error()'s message.
"""
from __future__ import annotations

import ctypes

from ._lib import lib as _cdll
from .attack import Attack, AttackKind, Norm
from .builder import LayerKind, ModelBuilder
from .checkpoint import Position, load_checkpoint, save_checkpoint
from .comm import Comm, CommStatistics, GradSync, QuantMode, UniqueId
from .context import Context, Device, LogLevel, Precision, StepGraph
from .data import Dataset, DatasetFormat, Layout, Part
from .errors import (CommError, DatError, FormatError, InvalidArgumentError, IOFailure,
                     NoDeviceError, NumericError, OutOfMemoryError, StateError, TimeoutFailure,
                     UnsupportedError, check)
from .eval import (AA_STANDARD, SMOOTH_ABSTAIN, AAAttack, AAOutcome, aa_bit, autoattack,
                   certified_accuracy, clopper_pearson_lower, incbeta, incbeta_inv,
                   normal_quantile, smooth_certify, smooth_predict)
from .model import Mode, Model, Objective, Reduction, ReinitHead, SegmentKind
from .optim import LrScaling, OptimKind, Optimizer, Schedule
from .quant import QuantNorm, Quantizer
from .tensor import DType, Tensor

__all__ = ["Context", "StepGraph", "Device", "LogLevel", "Precision", "DType", "Tensor", "DatError",
           "InvalidArgumentError", "NoDeviceError", "FormatError", "NumericError",
           "OutOfMemoryError", "UnsupportedError", "IOFailure", "CommError", "TimeoutFailure",
           "StateError",
           "version", "version_number", "status_string", "last_error", "clear_error",
           "dtype_size", "dtype_name", "has_cuda", "cuda_device_count", "Model", "Mode",
           "Objective", "Reduction", "SegmentKind", "ModelBuilder", "LayerKind", "Attack", "AttackKind",
           "Norm", "Optimizer", "OptimKind", "Schedule", "LrScaling", "Quantizer", "QuantNorm",
           "Comm", "CommStatistics", "GradSync", "QuantMode", "UniqueId", "Dataset", "DatasetFormat",
           "Layout", "Part", "Position", "save_checkpoint", "load_checkpoint", "check", "ReinitHead",
           "AAAttack", "AAOutcome", "AA_STANDARD", "aa_bit", "autoattack", "SMOOTH_ABSTAIN",
           "smooth_predict", "smooth_certify", "certified_accuracy", "incbeta", "incbeta_inv",
           "normal_quantile", "clopper_pearson_lower"]


def version() -> str:
    """Version of the loaded library, "major.minor.patch"."""
    return _cdll.dat_version_string().decode()


def version_number() -> int:
    """Version of the loaded library as major * 10000 + minor * 100 + patch."""
    return int(_cdll.dat_version())


def status_string(status: int) -> str:
    """Name of a dat_status value, e.g. "DAT_ERR_INVALID_ARG"."""
    return _cdll.dat_status_string(status).decode()


def last_error() -> str:
    """The calling thread's last libdat error message ("" if none)."""
    return _cdll.dat_last_error().decode(errors="replace")


def clear_error() -> None:
    _cdll.dat_clear_error()


def dtype_size(dtype: DType) -> int:
    return int(_cdll.dat_dtype_size(int(dtype)))


def dtype_name(dtype: DType) -> str:
    return _cdll.dat_dtype_name(int(dtype)).decode()


def has_cuda() -> bool:
    return bool(_cdll.dat_has_cuda())


def cuda_device_count() -> int:
    n = ctypes.c_int32()
    check(_cdll.dat_cuda_device_count(ctypes.byref(n)))
    return n.value
