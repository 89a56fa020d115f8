"""dat_dataset from Python: IDX / CIFAR / .npy readers, shards, shuffles, batches."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Iterator, Optional, Sequence

from ._lib import DatasetOptions, c_dataset_p, lib
from .context import Context
from .errors import check
from .handle import Handle
from .tensor import DType, Tensor


class DatasetFormat(IntEnum):
    IDX = 0
    CIFAR10 = 1
    CIFAR100 = 2
    NPY = 3


class Layout(IntEnum):
    AUTO = 0
    NCHW = 1
    NHWC = 2


class Part(IntEnum):
    TRAIN = 0
    VALIDATION = 1


class Dataset(Handle):
    """A dat_dataset; keyword arguments are the fields of dat_dataset_options
    (extra_paths and classes as lists)."""

    _what = "dataset"
    _destroy = staticmethod(lib.dat_dataset_destroy)

    def __init__(self, ctx: Context, images_path: str, labels_path: Optional[str] = None,
                 format: DatasetFormat = DatasetFormat.IDX,  # noqa: A002 - the C name
                 extra_paths: Sequence[str] = (), classes: Sequence[int] = (), **fields):
        self._ctx = ctx
        o = DatasetOptions()
        check(lib.dat_dataset_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        o.format = int(format)
        o.images_path = images_path.encode()
        o.labels_path = labels_path.encode() if labels_path is not None else None
        # The arrays need only live during dat_dataset_open().
        extra = (ctypes.c_char_p * max(1, len(extra_paths)))(*[p.encode() for p in extra_paths])
        if extra_paths:
            o.extra_paths, o.num_extra_paths = extra, len(extra_paths)
        subset = (ctypes.c_int32 * max(1, len(classes)))(*classes)
        if classes:
            o.classes, o.num_subset_classes = subset, len(classes)
        for k, v in fields.items():
            if not hasattr(o, k) or k in ("size", "extra_paths", "classes", "num_extra_paths",
                                          "num_subset_classes", "images_path", "labels_path"):
                raise TypeError(f"libdat: no dataset option {k!r}")
            setattr(o, k, int(v) if isinstance(v, (IntEnum, bool)) else v)
        handle = c_dataset_p()
        check(lib.dat_dataset_open(ctypes.byref(handle), ctx.handle, ctypes.byref(o)))
        self._handle = handle
        self._batch_size = o.batch_size
        ctx._adopt(self)

    def _i64(self, fn) -> int:
        v = ctypes.c_int64()
        check(fn(self.handle, ctypes.byref(v)))
        return v.value

    @property
    def num_samples(self) -> int:
        return self._i64(lib.dat_dataset_num_samples)

    @property
    def batches_per_epoch(self) -> int:
        return self._i64(lib.dat_dataset_batches_per_epoch)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        v = [ctypes.c_int32() for _ in range(3)]
        check(lib.dat_dataset_sample_shape(self.handle, *[ctypes.byref(x) for x in v]))
        return tuple(x.value for x in v)

    @property
    def num_classes(self) -> int:
        v = ctypes.c_int32()
        check(lib.dat_dataset_num_classes(self.handle, ctypes.byref(v)))
        return v.value

    def set_epoch(self, epoch: int) -> None:
        check(lib.dat_dataset_set_epoch(self.handle, epoch))

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, batch) of the next batch."""
        e, b = ctypes.c_int64(), ctypes.c_int64()
        check(lib.dat_dataset_get_position(self.handle, ctypes.byref(e), ctypes.byref(b)))
        return e.value, b.value

    def set_position(self, epoch: int, batch: int) -> None:
        check(lib.dat_dataset_set_position(self.handle, epoch, batch))

    def next_batch(self, x: Tensor, y: Optional[Tensor]) -> int:
        """Writes the next batch into x (and y); returns its sample count, 0 at the end."""
        n = ctypes.c_int32()
        check(lib.dat_dataset_next_batch(self.handle, x.handle,
                                         y.handle if y is not None else None, ctypes.byref(n)))
        return n.value

    def batch_tensors(self, ctx: Optional[Context] = None) -> tuple[Tensor, Tensor]:
        """A pair (x float32 [B, C, H, W], y int32 [B]) sized for this data set's batches."""
        ctx = ctx or self._ctx
        c, h, w = self.sample_shape
        return (Tensor(ctx, (self._batch_size, c, h, w)),
                Tensor(ctx, (self._batch_size,), DType.INT32))

    def epoch(self, epoch: int, x: Tensor, y: Optional[Tensor]) -> Iterator[int]:
        """Starts `epoch` and yields each batch's count after writing it into x, y."""
        self.set_epoch(epoch)
        while True:
            n = self.next_batch(x, y)
            if n == 0:
                return
            yield n
