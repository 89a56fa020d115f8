"""dat_quantizer from Python: the randomized b-bit gradient quantizer (QSGD)."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Optional, Union

import numpy as np

from ._lib import QuantizerOptions, c_quantizer_p, lib
from .context import Context
from .errors import check
from .handle import Handle
from .tensor import Tensor


class QuantNorm(IntEnum):
    L2 = 0
    MAX = 1


def _buffer(codes: Union[np.ndarray, bytes, bytearray],
            writable: bool = False) -> tuple[object, int]:
    """(pointer, size) of a contiguous byte buffer, without copying it; one libdat
    writes into must be a writable array or a bytearray."""
    if isinstance(codes, np.ndarray):
        if not codes.flags.c_contiguous:
            raise ValueError("libdat: codes must be a contiguous array")
        if writable and not codes.flags.writeable:
            raise ValueError("libdat: out is a read-only array")
        return codes.ctypes.data_as(ctypes.c_void_p), codes.nbytes
    if isinstance(codes, bytearray):
        return (ctypes.c_char * len(codes)).from_buffer(codes), len(codes)
    if writable:
        raise TypeError(f"libdat: out must be a writable numpy array or a bytearray, not "
                        f"{type(codes).__name__}")
    return ctypes.c_char_p(bytes(codes)), len(codes)


class Quantizer(Handle):
    """A dat_quantizer; keyword arguments are the fields of dat_quantizer_options."""

    _what = "quantizer"
    _destroy = staticmethod(lib.dat_quantizer_destroy)

    def __init__(self, ctx: Context, bits: int = 8, bucket_size: int = 512,
                 norm: QuantNorm = QuantNorm.L2, rank: int = 0, error_feedback: bool = False,
                 seed: int = 0):
        self._ctx = ctx
        o = QuantizerOptions()
        check(lib.dat_quantizer_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        o.bits, o.bucket_size, o.norm, o.rank = bits, bucket_size, int(norm), rank
        o.error_feedback, o.seed = int(error_feedback), seed
        handle = c_quantizer_p()
        check(lib.dat_quantizer_create(ctypes.byref(handle), ctx.handle, ctypes.byref(o)))
        self._handle = handle
        ctx._adopt(self)

    def options(self) -> dict[str, int]:
        """The options it was created with, defaults resolved."""
        o = QuantizerOptions()
        check(lib.dat_quantizer_options_get(self.handle, ctypes.byref(o)))
        return {name: getattr(o, name) for name, _ in o._fields_ if name != "size"}

    def encoded_size(self, n: int) -> int:
        """Bytes of the encoding of n elements, E(n) of dat_quant.h."""
        size = ctypes.c_size_t()
        check(lib.dat_quantizer_encoded_size(self.handle, n, ctypes.byref(size)))
        return size.value

    def encode(self, x: Tensor, step: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Encodes x into `out` (a uint8 array of at least E(n) bytes, written in place)
        or into a new one of exactly E(n) bytes, which is returned."""
        n = ctypes.c_int64()
        check(lib.dat_tensor_numel(x.handle, ctypes.byref(n)))
        if out is None:
            out = np.empty(self.encoded_size(n.value), dtype=np.uint8)
        ptr, size = _buffer(out, writable=True)
        check(lib.dat_quantizer_encode(self.handle, x.handle, step, ptr, size))
        return out

    def decode(self, codes: Union[np.ndarray, bytes, bytearray], out: Tensor,
               accumulate: bool = False) -> None:
        """out = q(x), or out += q(x) with accumulate."""
        ptr, size = _buffer(codes)
        check(lib.dat_quantizer_decode(self.handle, ptr, size, out.handle, int(accumulate)))

    def reset(self) -> None:
        """Zeroes the error-feedback residual."""
        check(lib.dat_quantizer_reset(self.handle))
