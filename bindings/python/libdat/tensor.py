"""dat_tensor <-> numpy."""
from __future__ import annotations

import ctypes
import weakref
from enum import IntEnum
from typing import Sequence

import numpy as np

from ._lib import c_tensor_p, lib
from .context import Context
from .errors import check
from .handle import Handle

MAX_DIMS = 8


def _dims(shape: Sequence[int]):
    """A shape as C's int64 array, room for all of it: libdat itself refuses more than
    MAX_DIMS dimensions, with its message."""
    return (ctypes.c_int64 * max(MAX_DIMS, len(shape)))(*shape)


class DType(IntEnum):
    FLOAT32 = 0
    BFLOAT16 = 1  # held in numpy as uint16 bit patterns
    INT32 = 2
    UINT8 = 3


_NUMPY = {DType.FLOAT32: np.float32, DType.BFLOAT16: np.uint16, DType.INT32: np.int32,
          DType.UINT8: np.uint8}
_FROM_NUMPY = {np.dtype(np.float32): DType.FLOAT32, np.dtype(np.int32): DType.INT32,
               np.dtype(np.uint8): DType.UINT8}


class Tensor(Handle):
    """A dat_tensor on a context's device. Closed by close(), a `with` block or
    garbage collection."""

    _what = "tensor"
    _destroy = staticmethod(lib.dat_tensor_destroy)

    def __init__(self, ctx: Context, shape: Sequence[int], dtype: DType = DType.FLOAT32):
        self._ctx = ctx  # keeps the context alive as long as the tensor
        dims = _dims(shape)
        handle = c_tensor_p()
        check(lib.dat_tensor_create(ctypes.byref(handle), ctx.handle, int(dtype), len(shape),
                                    dims))
        self._handle = handle
        ctx._adopt(self)

    @classmethod
    def from_numpy(cls, ctx: Context, array: np.ndarray,
                   dtype: DType | None = None) -> "Tensor":
        """A new tensor with the array's shape and contents. float32, int32 and uint8
        map to themselves; pass dtype=DType.BFLOAT16 with a uint16 array of bits."""
        if dtype is None:
            if array.dtype not in _FROM_NUMPY:
                raise TypeError(f"libdat: no tensor dtype for numpy {array.dtype}; convert "
                                "to float32, int32 or uint8")
            dtype = _FROM_NUMPY[array.dtype]
        t = cls(ctx, array.shape, dtype)
        t.write(array)
        return t


    @property
    def shape(self) -> tuple[int, ...]:
        nd = ctypes.c_int32()
        dims = (ctypes.c_int64 * MAX_DIMS)()
        check(lib.dat_tensor_shape(self.handle, ctypes.byref(nd), dims))
        return tuple(dims[i] for i in range(nd.value))

    @property
    def dtype(self) -> DType:
        d = ctypes.c_int32()
        check(lib.dat_tensor_dtype(self.handle, ctypes.byref(d)))
        return DType(d.value)

    @property
    def nbytes(self) -> int:
        n = ctypes.c_size_t()
        check(lib.dat_tensor_nbytes(self.handle, ctypes.byref(n)))
        return n.value

    def write(self, array: np.ndarray) -> None:
        """Copies a numpy array of the tensor's dtype and element count into it."""
        want = np.dtype(_NUMPY[self.dtype])
        if array.dtype != want:
            raise TypeError(f"libdat: tensor is {self.dtype.name}, array is {array.dtype}")
        src = np.ascontiguousarray(array)
        check(lib.dat_tensor_write(self.handle, src.ctypes.data, src.nbytes))

    def numpy(self) -> np.ndarray:
        """A copy of the contents as a numpy array of the tensor's shape."""
        out = np.empty(self.shape, dtype=_NUMPY[self.dtype])
        check(lib.dat_tensor_read(self.handle, out.ctypes.data, out.nbytes))
        return out

    def __array__(self, dtype=None) -> np.ndarray:
        """numpy.asarray(tensor): a copy of the contents (view() shares memory)."""
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        if self._handle is None:
            return "Tensor(closed)"
        return f"Tensor(shape={self.shape}, dtype={self.dtype.name})"

    def view(self) -> np.ndarray:
        """A zero-copy numpy view of a CPU tensor's memory. The memory stays as long as
        the view (and any view of it) does, even past close() of the tensor or its
        context, which then destroy their C objects when the last view goes."""
        ptr = ctypes.c_void_p()
        check(lib.dat_tensor_host_data(self.handle, ctypes.byref(ptr)))
        dtype = np.dtype(_NUMPY[self.dtype])
        buf = (ctypes.c_char * self.nbytes).from_address(ptr.value)
        buf._owner = self  # the ctypes buffer, and so the array, keeps the tensor alive
        self._hold()
        weakref.finalize(buf, self._release)
        return np.frombuffer(buf, dtype=dtype).reshape(self.shape)

    def copy_from(self, src: "Tensor") -> None:
        check(lib.dat_tensor_copy(self.handle, src.handle))

    def reshape(self, shape: Sequence[int]) -> None:
        dims = _dims(shape)
        check(lib.dat_tensor_reshape(self.handle, len(shape), dims))

    def fill(self, value: float) -> None:
        check(lib.dat_tensor_fill(self.handle, value))

    def fill_uniform(self, low: float = 0.0, high: float = 1.0, stream: int = 0,
                     offset: int = 0) -> None:
        check(lib.dat_tensor_fill_uniform(self.handle, low, high, stream, offset))

    def fill_normal(self, mean: float = 0.0, std: float = 1.0, stream: int = 0,
                    offset: int = 0) -> None:
        check(lib.dat_tensor_fill_normal(self.handle, mean, std, stream, offset))
