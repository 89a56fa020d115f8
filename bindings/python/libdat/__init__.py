"""libdat: distributed adversarial training, from Python through ctypes.

The shared library is found through $LIBDAT_LIBRARY, then the repository's
build folder, then the system's library path.
"""
from ._lib import lib as _lib
from .attack import Attack, AttackKind, Norm
from .context import Context, Device
from .errors import (DatError, FormatError, InvalidArgumentError, NoDeviceError,
                     NumericError)
from .model import Mode, Model, Objective, Reduction
from .optim import OptimKind, Optimizer, Schedule
from .tensor import DType, Tensor

__all__ = ["Context", "Device", "DType", "Tensor", "DatError", "InvalidArgumentError",
           "NoDeviceError", "FormatError", "NumericError", "version", "has_cuda",
           "cuda_device_count", "Model", "Mode", "Objective", "Reduction", "Attack", "AttackKind", "Norm", "Optimizer",
           "OptimKind", "Schedule"]


def version() -> str:
    """Version of the loaded library, "major.minor.patch"."""
    return _lib.dat_version_string().decode()


def has_cuda() -> bool:
    return bool(_lib.dat_has_cuda())


def cuda_device_count() -> int:
    import ctypes
    from .errors import check
    n = ctypes.c_int32()
    check(_lib.dat_cuda_device_count(ctypes.byref(n)))
    return n.value
