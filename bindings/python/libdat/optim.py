"""dat_optim from Python: SGD / momentum / Adam(W) with LALR (LARS, LAMB) and schedules."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Optional, Sequence

from ._lib import OptimOptions, Segment, c_optim_p, lib
from .context import Context
from .errors import check
from .handle import Handle
from .model import Model
from .tensor import Tensor


class OptimKind(IntEnum):
    SGD = 0
    MOMENTUM = 1
    NESTEROV = 2
    ADAM = 3
    ADAMW = 4


class Schedule(IntEnum):
    CONSTANT = 0
    PIECEWISE = 1
    COSINE = 2
    ONECYCLE = 3


class LrScaling(IntEnum):
    NONE = 0
    LINEAR = 1
    SQRT = 2


class Optimizer(Handle):
    """A dat_optim over a model (model=...) or over explicit segments
    (segments=[(offset, length, kind), ...]); keyword arguments are the fields of
    dat_optim_options (milestones as a list)."""

    _what = "optimizer"
    _destroy = staticmethod(lib.dat_optim_destroy)

    def __init__(self, ctx: Context, model: Optional[Model] = None,
                 segments: Optional[Sequence[tuple[int, int, int]]] = None,
                 milestones: Sequence[int] = (), **fields):
        if model is not None and model._ctx is not ctx:
            raise ValueError("libdat: the optimizer of a model lives in the model's context; "
                             "pass that context")
        self._ctx = ctx
        o = OptimOptions()
        check(lib.dat_optim_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        for k, v in fields.items():
            if not hasattr(o, k):
                raise TypeError(f"libdat: no optimizer option {k!r}")
            setattr(o, k, int(v) if isinstance(v, IntEnum) else v)
        o.num_milestones = len(milestones)
        for i, m in enumerate(milestones):
            o.milestones[i] = m
        handle = c_optim_p()
        if model is not None:
            check(lib.dat_optim_create_for_model(ctypes.byref(handle), model.handle,
                                                 ctypes.byref(o)))
        else:
            segs = (Segment * len(segments))()
            for i, (off, n, kind) in enumerate(segments):
                segs[i].size = ctypes.sizeof(Segment)
                segs[i].offset, segs[i].length, segs[i].kind = off, n, kind
            check(lib.dat_optim_create(ctypes.byref(handle), ctx.handle, segs, len(segments),
                                       ctypes.byref(o)))
        self._handle = handle
        ctx._adopt(self)

    def step(self, params: Tensor, grads: Tensor) -> None:
        check(lib.dat_optim_step(self.handle, params.handle, grads.handle))

    def step_model(self, model: Model) -> None:
        check(lib.dat_optim_step_model(self.handle, model.handle))

    def set_lr_scale(self, first_segment: int, count: int, scale: float) -> None:
        """Scales the learning rate of `count` segments from `first_segment` (0 freezes
        them); configuration, not state: set it again after loading a state."""
        check(lib.dat_optim_set_lr_scale(self.handle, first_segment, count, scale))

    @property
    def lr(self) -> float:
        v = ctypes.c_double()
        check(lib.dat_optim_lr(self.handle, ctypes.byref(v)))
        return v.value

    @property
    def steps(self) -> int:
        v = ctypes.c_int64()
        check(lib.dat_optim_get_step(self.handle, ctypes.byref(v)))
        return v.value

    @steps.setter
    def steps(self, value: int) -> None:
        check(lib.dat_optim_set_step(self.handle, value))

    def state(self) -> bytes:
        n = ctypes.c_size_t()
        check(lib.dat_optim_state_size(self.handle, ctypes.byref(n)))
        buf = ctypes.create_string_buffer(n.value)
        check(lib.dat_optim_state_save(self.handle, buf, n.value))
        return buf.raw

    def load_state(self, data: bytes) -> None:
        check(lib.dat_optim_state_load(self.handle, data, len(data)))
