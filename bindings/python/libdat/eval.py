"""dat_eval.h from Python: AutoAttack, randomized-smoothing certification and the
statistics behind them. Per-sample results come back as numpy arrays that libdat
writes directly (no copy)."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Optional, Sequence

import numpy as np

from ._lib import AutoAttackOptions, SmoothOptions, lib
from .attack import Norm
from .errors import check
from .model import Model
from .tensor import Tensor

SMOOTH_ABSTAIN = -1  # DAT_SMOOTH_ABSTAIN


class AAAttack(IntEnum):
    APGD_CE = 0
    APGD_T = 1
    FAB_T = 2
    SQUARE = 3
    COUNT = 4


class AAOutcome(IntEnum):
    ROBUST = -1
    MISCLASSIFIED = -2


AA_STANDARD = 0xF  # all four attacks


def aa_bit(attack: AAAttack) -> int:
    """The bit of one attack in the `attacks` mask (DAT_AA_BIT)."""
    return 1 << int(attack)


def _double(fn, *args) -> float:
    out = ctypes.c_double()
    check(fn(*args, ctypes.byref(out)))
    return out.value


def incbeta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    return _double(lib.dat_stat_incbeta, a, b, x)


def incbeta_inv(a: float, b: float, p: float) -> float:
    """The p-quantile of Beta(a, b)."""
    return _double(lib.dat_stat_incbeta_inv, a, b, p)


def normal_quantile(p: float) -> float:
    """Phi^-1(p)."""
    return _double(lib.dat_stat_normal_quantile, p)


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower confidence bound of a binomial proportion."""
    return _double(lib.dat_stat_clopper_pearson_lower, successes, trials, alpha)


def _fill(o, fields: dict, what: str) -> None:
    for k, v in fields.items():
        if not hasattr(o, k) or k == "size":
            raise TypeError(f"libdat: no {what} option {k!r}")
        setattr(o, k, int(v) if isinstance(v, (IntEnum, bool)) else v)


def _smooth_options(fields: dict) -> SmoothOptions:
    o = SmoothOptions()
    check(lib.dat_smooth_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
    _fill(o, fields, "smoothing")
    return o


def _i32p(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))


def _f32p(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def smooth_predict(model: Model, x: Tensor, **fields) -> np.ndarray:
    """PREDICT of the smoothed classifier: int32 [N] classes, SMOOTH_ABSTAIN where it
    abstains. Keyword arguments are the fields of dat_smooth_options."""
    o = _smooth_options(fields)
    pred = np.empty(x.shape[0], np.int32)
    check(lib.dat_smooth_predict(model.handle, x.handle, ctypes.byref(o), _i32p(pred)))
    return pred


def smooth_certify(model: Model, x: Tensor, **fields) -> tuple[np.ndarray, np.ndarray]:
    """CERTIFY: (int32 [N] classes or SMOOTH_ABSTAIN, float32 [N] l2 radii)."""
    o = _smooth_options(fields)
    pred = np.empty(x.shape[0], np.int32)
    radius = np.empty(x.shape[0], np.float32)
    check(lib.dat_smooth_certify(model.handle, x.handle, ctypes.byref(o), _i32p(pred),
                                 _f32p(radius)))
    return pred, radius


def certified_accuracy(pred: np.ndarray, radius: np.ndarray, labels: np.ndarray,
                       radii: Sequence[float]) -> np.ndarray:
    """Fraction of samples with pred == label and radius >= r, for each r in radii."""
    pred = np.ascontiguousarray(pred, np.int32)
    radius = np.ascontiguousarray(radius, np.float32)
    labels = np.ascontiguousarray(labels, np.int32)
    if not len(pred) == len(radius) == len(labels):
        raise ValueError("libdat: pred, radius and labels must have one entry per sample")
    r = np.ascontiguousarray(radii, np.float32)
    out = np.empty(len(r), np.float64)
    check(lib.dat_smooth_certified_accuracy(_i32p(pred), _f32p(radius), _i32p(labels),
                                            len(pred), _f32p(r), len(r),
                                            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
    return out


def autoattack(model: Model, x: Tensor, y: Tensor, x_adv: Optional[Tensor] = None,
               norm: Norm = Norm.LINF, **fields) -> tuple[int, np.ndarray]:
    """AutoAttack of one batch: (robust count, int32 [N] outcomes: AAOutcome values or
    the AAAttack that broke the point). Keyword arguments are the fields of
    dat_autoattack_options (eps, attacks, apgd_steps, ...)."""
    o = AutoAttackOptions()
    check(lib.dat_autoattack_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
    o.norm = int(norm)
    _fill(o, fields, "AutoAttack")
    outcome = np.empty(x.shape[0], np.int32)
    robust = ctypes.c_int32()
    check(lib.dat_eval_autoattack(model.handle, x.handle, y.handle, ctypes.byref(o),
                                  x_adv.handle if x_adv is not None else None,
                                  _i32p(outcome), ctypes.byref(robust)))
    return robust.value, outcome
