"""dat_comm from Python: communicators (self, MPI through mpi4py, NCCL), their
collectives, quantized or not, and the NCCL unique id."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Optional

from ._lib import (HAVE_MPI, CommId, CommOptions, CommStats, GradSyncOptions, c_comm_p,
                   c_grad_sync_p, lib, set_mpi_comm_type)
from .context import Context
from .errors import check
from .handle import Handle
from .model import Model, Reduction
from .quant import Quantizer
from .tensor import Tensor


class QuantMode(IntEnum):
    ONE_SIDED = 0
    TWO_SIDED = 1


@dataclass
class CommStatistics:
    calls: int
    bytes_sent: int
    bytes_received: int
    seconds: float


def _options(timeout_s: Optional[float]) -> CommOptions:
    o = CommOptions()
    check(lib.dat_comm_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
    if timeout_s is not None:
        o.timeout_s = timeout_s
    return o


def _mpi_handle(comm: Any):
    """The C MPI_Comm of an mpi4py communicator, typed for this MPI (pointer or int)."""
    if not HAVE_MPI:
        raise RuntimeError("libdat: this build of libdat has no MPI communicator (dat_mpi.h)")
    from mpi4py import MPI
    size = MPI._sizeof(MPI.Comm)
    c_type = ctypes.c_void_p if size == ctypes.sizeof(ctypes.c_void_p) else ctypes.c_int
    set_mpi_comm_type(c_type)
    return c_type(MPI._handleof(comm))


class UniqueId:
    """The 128-byte NCCL unique id: made on one rank, moved to the others."""

    def __init__(self, data: bytes = bytes(128)):
        if len(data) != 128:
            raise ValueError("libdat: a unique id has 128 bytes")
        self._id = CommId()
        ctypes.memmove(self._id.internal, data, 128)

    @classmethod
    def new(cls) -> "UniqueId":
        """A fresh id (needs a build with CUDA and NCCL)."""
        u = cls()
        check(lib.dat_comm_unique_id(ctypes.byref(u._id)))
        return u

    def __bytes__(self) -> bytes:
        return bytes(self._id.internal)

    def write(self, path: str) -> None:
        """Writes the id to a file atomically, for ranks sharing a file system."""
        check(lib.dat_comm_unique_id_write(ctypes.byref(self._id), path.encode()))

    @classmethod
    def read(cls, path: str, timeout_s: float = 60.0) -> "UniqueId":
        """Waits up to timeout_s for the file, then reads the id from it."""
        u = cls()
        check(lib.dat_comm_unique_id_read(ctypes.byref(u._id), path.encode(), timeout_s))
        return u

    def broadcast_mpi(self, root: int, mpi_comm: Any, timeout_s: float = 60.0) -> None:
        """Collective over an mpi4py communicator: every rank receives root's id."""
        handle = _mpi_handle(mpi_comm)
        check(lib.dat_comm_unique_id_broadcast_mpi(ctypes.byref(self._id), root, handle,
                                                   timeout_s))


class Comm(Handle):
    """A dat_comm. Make one with Comm.self(ctx), Comm.mpi(ctx, mpi4py_comm),
    Comm.nccl(ctx, nranks, rank, uid) or Comm.nccl_mpi(ctx, mpi4py_comm). Close it
    (a `with` block) before MPI is finalized."""

    _what = "communicator"
    _destroy = staticmethod(lib.dat_comm_destroy)

    def __init__(self, ctx: Context, handle: c_comm_p):
        self._ctx = ctx
        self._handle = handle
        ctx._adopt(self)

    @classmethod
    def self(cls, ctx: Context) -> "Comm":  # noqa: A003 - the C name
        """The communicator of one rank."""
        h = c_comm_p()
        check(lib.dat_comm_create_self(ctypes.byref(h), ctx.handle))
        return cls(ctx, h)

    @classmethod
    def mpi(cls, ctx: Context, mpi_comm: Any, timeout_s: Optional[float] = None) -> "Comm":
        """Over the ranks of an mpi4py communicator (collective)."""
        handle = _mpi_handle(mpi_comm)
        o = _options(timeout_s)
        h = c_comm_p()
        check(lib.dat_comm_create_mpi(ctypes.byref(h), ctx.handle, handle, ctypes.byref(o)))
        return cls(ctx, h)

    @classmethod
    def nccl(cls, ctx: Context, nranks: int, rank: int, uid: UniqueId,
             timeout_s: Optional[float] = None) -> "Comm":
        """NCCL over nranks ranks joined by uid (collective; CUDA contexts)."""
        o = _options(timeout_s)
        h = c_comm_p()
        check(lib.dat_comm_create_nccl(ctypes.byref(h), ctx.handle, nranks, rank,
                                       ctypes.byref(uid._id), ctypes.byref(o)))
        return cls(ctx, h)

    @classmethod
    def nccl_mpi(cls, ctx: Context, mpi_comm: Any, timeout_s: Optional[float] = None) -> "Comm":
        """NCCL over the ranks of an mpi4py communicator, the id moved by MPI."""
        handle = _mpi_handle(mpi_comm)
        o = _options(timeout_s)
        h = c_comm_p()
        check(lib.dat_comm_create_nccl_mpi(ctypes.byref(h), ctx.handle, handle,
                                           ctypes.byref(o)))
        return cls(ctx, h)

    @property
    def rank(self) -> int:
        v = ctypes.c_int32()
        check(lib.dat_comm_rank(self.handle, ctypes.byref(v)))
        return v.value

    @property
    def size(self) -> int:
        v = ctypes.c_int32()
        check(lib.dat_comm_size(self.handle, ctypes.byref(v)))
        return v.value

    def allreduce(self, t: Tensor, op: Reduction = Reduction.MEAN) -> None:
        check(lib.dat_comm_allreduce(self.handle, t.handle, int(op)))

    def broadcast(self, t: Tensor, root: int = 0) -> None:
        check(lib.dat_comm_broadcast(self.handle, t.handle, root))

    def allgather(self, x: Tensor, out: Tensor) -> None:
        check(lib.dat_comm_allgather(self.handle, x.handle, out.handle))

    def allreduce_quantized(self, t: Tensor, q: Quantizer, mode: QuantMode = QuantMode.ONE_SIDED,
                            step: int = 0) -> None:
        check(lib.dat_comm_allreduce_quantized(self.handle, t.handle, q.handle, int(mode), step))

    def allreduce_grads(self, model: Model, q: Optional[Quantizer] = None,
                        mode: QuantMode = QuantMode.ONE_SIDED, step: int = 0) -> None:
        """Replaces the model's gradient by its mean over the ranks (quantized with q)."""
        check(lib.dat_comm_allreduce_grads(self.handle, model.handle,
                                           q.handle if q is not None else None, int(mode), step))

    def broadcast_model(self, model: Model, root: int = 0) -> None:
        check(lib.dat_comm_broadcast_model(self.handle, model.handle, root))

    def stats(self) -> CommStatistics:
        s = CommStats()
        s.size = ctypes.sizeof(CommStats)
        check(lib.dat_comm_get_stats(self.handle, ctypes.byref(s)))
        return CommStatistics(s.calls, s.bytes_sent, s.bytes_received, s.seconds)

    def reset_stats(self) -> None:
        check(lib.dat_comm_reset_stats(self.handle))

    def abort(self) -> None:
        check(lib.dat_comm_abort(self.handle))


class GradSync(Handle):
    """A dat_grad_sync: the gradient all-reduce of Comm.allreduce_grads, bucket by
    bucket while the model's loss backward runs. Per step:

        sync.begin(step); model.loss_backward(...); sync.end()

    Closed before its communicator, model and quantizer (they close it first)."""

    _what = "gradient synchronizer"
    _destroy = staticmethod(lib.dat_grad_sync_destroy)

    def __init__(self, comm: Comm, model: Model, bucket_elems: int = 1 << 20,
                 q: Optional[Quantizer] = None, mode: QuantMode = QuantMode.ONE_SIDED):
        opts = GradSyncOptions()
        check(lib.dat_grad_sync_options_init_sized(ctypes.byref(opts), ctypes.sizeof(opts)))
        opts.bucket_elems = bucket_elems
        opts.quantizer = q.handle if q is not None else None
        opts.mode = int(mode)
        h = c_grad_sync_p()
        check(lib.dat_grad_sync_create(ctypes.byref(h), comm.handle, model.handle,
                                       ctypes.byref(opts)))
        self._handle = h
        for owner in (comm, model, q):  # each outlives it, and closing one closes it first
            if owner is not None:
                owner._adopt(self)

    def begin(self, step: int) -> None:
        check(lib.dat_grad_sync_begin(self.handle, step))

    def end(self) -> None:
        check(lib.dat_grad_sync_end(self.handle))

    @property
    def overlaps(self) -> bool:
        v = ctypes.c_int32()
        check(lib.dat_grad_sync_overlaps(self.handle, ctypes.byref(v)))
        return bool(v.value)
