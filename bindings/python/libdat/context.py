"""The libdat context: device, threads, seed."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Callable, Optional

from ._lib import CtxOptions, c_ctx_p, c_log_fn, c_step_graph_p, lib
from .errors import check
from .handle import Handle, _recordings


class Device(IntEnum):
    CPU = 0
    CUDA = 1


class Precision(IntEnum):
    """Arithmetic of a context's models (dat_precision)."""
    FP32 = 0
    TF32 = 1
    BF16 = 2


class LogLevel(IntEnum):
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


class Context(Handle):
    """A dat_ctx. Close it with close() or a `with` block; garbage collection closes
    it too. Tensors made from a context keep it alive."""

    _what = "context"
    _destroy = staticmethod(lib.dat_ctx_destroy)

    def __init__(self, device: Device = Device.CPU, device_ordinal: int = 0,
                 num_threads: int = 0, seed: int = 0,
                 log: Optional[Callable[[LogLevel, str], None]] = None,
                 log_level: LogLevel = LogLevel.WARN,
                 precision: Precision = Precision.FP32, tune_convolutions: bool = False,
                 cuda_graphs: bool = True, channels_last: Optional[bool] = None,
                 deterministic: bool = False):
        """log, if given, receives libdat's log messages (level, line) up to log_level; it
        must not raise (libdat calls it from C: ctypes prints an exception and drops it).
        tune_convolutions, cuda_graphs and deterministic (only deterministic cuDNN
        algorithms) matter on CUDA only; precision BF16 and
        channels_last (None: the backend's choice) are emulated on the CPU
        (dat_ctx_options)."""
        opts = CtxOptions()
        check(lib.dat_ctx_options_init_sized(ctypes.byref(opts), ctypes.sizeof(opts)))
        opts.device = int(device)
        opts.device_ordinal = device_ordinal
        opts.num_threads = num_threads
        opts.seed = seed
        opts.precision = int(precision)
        opts.tune_convolutions = int(bool(tune_convolutions))
        opts.cuda_graphs = int(bool(cuda_graphs))
        opts.channels_last = -1 if channels_last is None else int(bool(channels_last))
        opts.deterministic = int(bool(deterministic))
        if log is not None:
            def relay(level: int, message: bytes, _user) -> None:
                log(LogLevel(level), message.decode(errors="replace"))
            self._log_fn = c_log_fn(relay)  # kept alive as long as the context
            opts.log_fn = self._log_fn
            opts.log_level = int(log_level)
        handle = c_ctx_p()
        check(lib.dat_ctx_create(ctypes.byref(handle), ctypes.byref(opts)))
        self._handle = handle


    @property
    def num_threads(self) -> int:
        n = ctypes.c_int32()
        check(lib.dat_ctx_num_threads(self.handle, ctypes.byref(n)))
        return n.value

    @property
    def seed(self) -> int:
        s = ctypes.c_uint64()
        check(lib.dat_ctx_seed(self.handle, ctypes.byref(s)))
        return s.value

    @property
    def device(self) -> tuple[Device, int]:
        kind, ordinal = ctypes.c_int32(), ctypes.c_int32()
        check(lib.dat_ctx_device(self.handle, ctypes.byref(kind), ctypes.byref(ordinal)))
        return Device(kind.value), ordinal.value

    def synchronize(self) -> None:
        """Waits for the device; raises what device-side checks of replayed step graphs
        found since the last call."""
        check(lib.dat_ctx_synchronize(self.handle))

    def record(self, step: Callable[[], None]) -> "StepGraph":
        """Records the calls step() makes on this context's objects as a step graph (CUDA
        only; run the step once first, and pass read_loss=False to loss_backward). The
        recording ends whatever step() does; the first error wins."""
        check(lib.dat_capture_begin(self.handle))
        raw = c_step_graph_p()
        used: set = set()  # what step() touched: the graph's launches write into them
        _recordings().append(used)
        try:
            step()
        except BaseException:
            lib.dat_capture_end(self.handle, ctypes.byref(raw))
            if raw:
                lib.dat_step_graph_destroy(raw)
            raise
        finally:
            _recordings().remove(used)
        check(lib.dat_capture_end(self.handle, ctypes.byref(raw)))
        graph = StepGraph(raw)
        self._adopt(graph)
        for h in used - {self}:  # each outlives the graph; closing one closes it first
            h._adopt(graph)
        return graph


class StepGraph(Handle):
    """A recorded step (dat_step_graph): launch() replays it on what its tensors hold
    then. Made by Context.record; closed before its context and before every object
    the recorded step used (closing one of them closes the graph first)."""

    _what = "step graph"
    _destroy = staticmethod(lib.dat_step_graph_destroy)

    def __init__(self, raw) -> None:
        self._handle = raw

    def launch(self) -> None:
        """Queues one replay and advances the host's step counters."""
        check(lib.dat_step_graph_launch(self.handle))
