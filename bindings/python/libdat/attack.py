"""dat_attack from Python: adversarial examples and robust accuracy."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Optional

from ._lib import AttackOptions, c_attack_p, lib
from .context import Context
from .errors import check
from .handle import Handle
from .model import Mode, Model
from .tensor import Tensor


class AttackKind(IntEnum):
    PGD = 0
    FGSM = 1
    TRADES = 2
    SMOOTH_PGD = 3


class Norm(IntEnum):
    LINF = 0
    L2 = 1


class Attack(Handle):
    """A dat_attack; keyword arguments are the fields of dat_attack_options."""

    _what = "attack"
    _destroy = staticmethod(lib.dat_attack_destroy)

    def __init__(self, ctx: Context, kind: AttackKind = AttackKind.PGD, norm: Norm = Norm.LINF,
                 eps: float = 8 / 255, alpha: float = 0.0, steps: int = 10,
                 random_start: bool = True, restarts: int = 1, mode: Mode = Mode.EVAL,
                 lo: float = 0.0, hi: float = 1.0, sigma: float = 0.25, noise_samples: int = 1,
                 seed: int = 0, rank: int = 0):
        self._ctx = ctx
        o = AttackOptions()
        check(lib.dat_attack_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        o.kind, o.norm, o.eps, o.alpha, o.steps = int(kind), int(norm), eps, alpha, steps
        o.random_start, o.restarts, o.mode = int(random_start), restarts, int(mode)
        o.lo, o.hi, o.sigma, o.noise_samples = lo, hi, sigma, noise_samples
        o.seed, o.rank = seed, rank
        handle = c_attack_p()
        check(lib.dat_attack_create(ctypes.byref(handle), ctx.handle, ctypes.byref(o)))
        self._handle = handle
        ctx._adopt(self)


    @property
    def step(self) -> int:
        s = ctypes.c_uint64()
        check(lib.dat_attack_get_step(self.handle, ctypes.byref(s)))
        return s.value

    @step.setter
    def step(self, value: int) -> None:
        check(lib.dat_attack_set_step(self.handle, value))

    def perturb(self, model: Model, x: Tensor, y: Optional[Tensor], x_adv: Tensor) -> None:
        check(lib.dat_attack_perturb(self.handle, model.handle, x.handle,
                                     y.handle if y is not None else None, x_adv.handle))

    def gaussian_copies(self, x: Tensor, y: Optional[Tensor], x_out: Tensor,
                        y_out: Optional[Tensor] = None) -> None:
        """Row j * N + i of x_out is x_i + sigma * noise (j < noise_samples): the noise a
        SMOOTH_PGD perturbation by this attack draws at the same step (set `step` back to
        take the copies the attack saw, as SmoothAdv trains)."""
        check(lib.dat_attack_gaussian_copies(self.handle, x.handle,
                                             y.handle if y is not None else None, x_out.handle,
                                             y_out.handle if y_out is not None else None))

    def robust_accuracy(self, model: Model, x: Tensor, y: Tensor,
                        mask: Optional[Tensor] = None) -> tuple[int, int]:
        """(clean correct, robust correct) for one batch."""
        c, r = ctypes.c_int32(), ctypes.c_int32()
        check(lib.dat_eval_robust_accuracy(self.handle, model.handle, x.handle, y.handle,
                                           ctypes.byref(c), ctypes.byref(r),
                                           mask.handle if mask is not None else None))
        return c.value, r.value
