"""libdat statuses as Python exceptions carrying dat_last_error()."""
from __future__ import annotations

from ._lib import lib

# Values of dat_status (include/libdat/dat_common.h); they are part of the ABI.
OK = 0
STATUS_NAMES = {
    1: "DAT_ERR_INVALID_ARG", 2: "DAT_ERR_OUT_OF_MEMORY", 3: "DAT_ERR_NO_DEVICE",
    4: "DAT_ERR_UNSUPPORTED", 5: "DAT_ERR_IO", 6: "DAT_ERR_FORMAT", 7: "DAT_ERR_NUMERIC",
    8: "DAT_ERR_CUDA", 9: "DAT_ERR_COMM", 10: "DAT_ERR_TIMEOUT", 11: "DAT_ERR_STATE",
    12: "DAT_ERR_INTERNAL",
}


class DatError(Exception):
    """A libdat call failed. `status` is the dat_status value, `name` its name and
    `message` what dat_last_error() said about it."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.name = lib.dat_status_string(status).decode()
        self.message = message
        super().__init__(f"{self.name}: {message}")


class InvalidArgumentError(DatError, ValueError):
    pass


class OutOfMemoryError(DatError, MemoryError):
    pass


class NoDeviceError(DatError):
    pass


class FormatError(DatError):
    pass


class NumericError(DatError, ArithmeticError):
    pass


class UnsupportedError(DatError, NotImplementedError):
    pass


class IOFailure(DatError, OSError):
    pass


class CommError(DatError):
    pass


class TimeoutFailure(DatError, TimeoutError):
    pass


class StateError(DatError, RuntimeError):
    pass


_BY_STATUS = {1: InvalidArgumentError, 2: OutOfMemoryError, 3: NoDeviceError,
              4: UnsupportedError, 5: IOFailure, 6: FormatError, 7: NumericError, 9: CommError, 10: TimeoutFailure, 11: StateError}


def check(status: int) -> None:
    """Raises the exception for a failing status, with libdat's message."""
    if status != OK:
        message = lib.dat_last_error().decode(errors="replace")
        raise _BY_STATUS.get(status, DatError)(status, message)
