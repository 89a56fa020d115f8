"""dat_model_builder from Python: models layer by layer."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Optional, Sequence

from ._lib import LayerSpec, c_builder_p, c_model_p, lib
from .context import Context
from .errors import check
from .handle import Handle
from .model import Model


class LayerKind(IntEnum):
    CONV2D = 0
    LINEAR = 1
    BATCHNORM = 2
    RELU = 3
    MAXPOOL = 4
    AVGPOOL = 5
    GLOBAL_AVGPOOL = 6
    FLATTEN = 7
    ADD = 8


class ModelBuilder(Handle):
    """A dat_model_builder: the input [N, channels, height, width] is node 0; add()
    returns each new node's id; finish() makes the Model."""

    _what = "model builder"
    _destroy = staticmethod(lib.dat_model_builder_destroy)

    def __init__(self, ctx: Context, channels: int, height: int, width: int):
        self._ctx = ctx
        self._channels = channels
        handle = c_builder_p()
        check(lib.dat_model_builder_create(ctypes.byref(handle), ctx.handle, channels, height,
                                           width))
        self._handle = handle
        ctx._adopt(self)

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Per-channel input normalization, one mean and std per input channel."""
        if len(mean) != self._channels or len(std) != self._channels:
            raise ValueError(f"libdat: {len(mean)} mean and {len(std)} std values for "
                             f"{self._channels} input channels")
        m = (ctypes.c_float * len(mean))(*mean)
        s = (ctypes.c_float * len(std))(*std)
        check(lib.dat_model_builder_set_normalization(self.handle, m, s))

    def add(self, kind: LayerKind, input: int, input2: int = -1,  # noqa: A002 - the C name
            name: Optional[str] = None, **fields) -> int:
        """Appends a layer; keyword arguments are the fields of dat_layer_spec
        (out_features, kernel, stride, padding, bias, bn_eps, bn_momentum)."""
        spec = LayerSpec()
        check(lib.dat_layer_spec_init_sized(ctypes.byref(spec), int(kind), ctypes.sizeof(spec)))
        spec.name = name.encode() if name is not None else None
        for k, v in fields.items():
            if not hasattr(spec, k) or k in ("size", "kind", "name"):
                raise TypeError(f"libdat: no layer option {k!r}")
            setattr(spec, k, int(v) if isinstance(v, bool) else v)
        node = ctypes.c_int32()
        check(lib.dat_model_builder_add(self.handle, ctypes.byref(spec), input, input2,
                                        ctypes.byref(node)))
        return node.value

    def finish(self, output: int, init_seed: int = 0) -> Model:
        """The model whose logits are node `output`; the builder stays usable."""
        handle = c_model_p()
        check(lib.dat_model_builder_finish(self.handle, output, init_seed,
                                           ctypes.byref(handle)))
        return Model._adopt_handle(self._ctx, handle)
