"""dat_model from Python: presets, forward, loss + backward, input gradients,
and numpy views of the flat parameter, gradient and buffer storage."""
from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Callable, Optional

import numpy as np

from ._lib import (InputGradOptions, LossOptions, ModelLoadOptions, ModelOptions, Segment,
                   c_model_p, c_on_tensor_fn, c_tensor_p, lib)
from .context import Context
from .errors import check
from .handle import Handle
from .tensor import Tensor


class Mode(IntEnum):
    TRAIN = 0
    EVAL = 1


class Reduction(IntEnum):
    MEAN = 0
    SUM = 1


_PRESET_CHANNELS = 3  # the most input channels of a preset's default input


class ReinitHead(IntEnum):
    """When load() keeps the model's own classifier (transfer learning)."""
    NEVER = 0
    IF_MISMATCHED = 1
    ALWAYS = 2


class SegmentKind(IntEnum):
    WEIGHT = 0
    BIAS = 1
    BN_WEIGHT = 2
    BN_BIAS = 3


class Objective(IntEnum):
    CE = 0
    KL = 1


class _Borrowed(Tensor):
    """A tensor owned by a model: never destroyed from Python."""

    _destroy = None

    def __init__(self, owner, handle):  # noqa: D401 - not Tensor's constructor
        self._ctx = owner._ctx
        self._owner = owner
        self._handle = handle


class Model(Handle):
    """A dat_model. Closed by close(), a `with` block or garbage collection."""

    _what = "model"
    _destroy = staticmethod(lib.dat_model_destroy)

    def __init__(self, ctx: Context, preset: str, num_classes: int = 0, mean=None, std=None,
                 init_seed: int = 0, input_shape: Optional[tuple[int, int, int]] = None):
        self._ctx = ctx
        opts = ModelOptions()
        check(lib.dat_model_options_init_sized(ctypes.byref(opts), ctypes.sizeof(opts)))
        opts.num_classes = num_classes
        opts.init_seed = init_seed
        if input_shape:
            opts.in_channels, opts.in_height, opts.in_width = input_shape
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise ValueError("libdat: mean and std go together, one value per input channel")
        if mean is not None:
            # libdat reads one value per input channel, which the preset may fix: NaN past
            # the values given makes too few an error, not a read past the array.
            n = max(len(mean), input_shape[0] if input_shape else 0, _PRESET_CHANNELS)
            pad = [float("nan")] * (n - len(mean))
            opts.mean = (ctypes.c_float * n)(*mean, *pad)
            opts.std = (ctypes.c_float * n)(*std, *pad)
        handle = c_model_p()
        check(lib.dat_model_create_preset(ctypes.byref(handle), ctx.handle, preset.encode(),
                                          ctypes.byref(opts)))
        self._handle = handle
        ctx._adopt(self)
        channels = self.shape[0]
        if mean is not None and len(mean) != channels:
            self.close()
            raise ValueError(f"libdat: {len(mean)} mean and std values for a model of "
                             f"{channels} input channels")

    @classmethod
    def _adopt_handle(cls, ctx: Context, handle) -> "Model":
        """Wraps a dat_model made elsewhere (the builder), owning it from now on."""
        m = cls.__new__(cls)
        m._ctx = ctx
        m._handle = handle
        ctx._adopt(m)
        return m

    def _flat(self, fn) -> Optional[Tensor]:
        h = c_tensor_p()
        check(fn(self.handle, ctypes.byref(h)))
        if not h.value:
            return None
        borrowed = _Borrowed(self, h)
        self._adopt(borrowed)  # closing the model invalidates its buffers too
        return borrowed

    @property
    def params(self) -> Tensor:
        return self._flat(lib.dat_model_params)

    @property
    def grads(self) -> Tensor:
        return self._flat(lib.dat_model_grads)

    @property
    def buffers(self) -> Optional[Tensor]:
        return self._flat(lib.dat_model_buffers)

    def segments(self) -> list[tuple[str, int, int, int]]:
        """(name, offset, length, kind) of every parameter tensor."""
        n = ctypes.c_int32()
        check(lib.dat_model_num_segments(self.handle, ctypes.byref(n)))
        out = []
        for i in range(n.value):
            s = Segment()
            s.size = ctypes.sizeof(Segment)
            check(lib.dat_model_segment(self.handle, i, ctypes.byref(s)))
            out.append((s.name.decode(), s.offset, s.length, SegmentKind(s.kind)))
        return out

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(channels, height, width, classes)."""
        v = [ctypes.c_int32() for _ in range(4)]
        check(lib.dat_model_shape(self.handle, *[ctypes.byref(x) for x in v]))
        return tuple(x.value for x in v)

    @property
    def mode(self) -> Mode:
        m = ctypes.c_int32()
        check(lib.dat_model_mode_get(self.handle, ctypes.byref(m)))
        return Mode(m.value)

    @mode.setter
    def mode(self, mode: Mode) -> None:
        check(lib.dat_model_set_mode(self.handle, int(mode)))

    def forward(self, x: Tensor, logits: Tensor) -> None:
        check(lib.dat_model_forward(self.handle, x.handle, logits.handle))

    def loss_backward(self, x: Tensor, y: Optional[Tensor], adv_weight: float = 1.0,
                      clean_weight: float = 0.0, kl_weight: float = 0.0,
                      x_clean: Optional[Tensor] = None, sample_weights: Optional[Tensor] = None,
                      reduction: Reduction = Reduction.MEAN, accumulate: bool = False,
                      loss_sum: Optional[Tensor] = None,
                      read_loss: bool = True) -> Optional[float]:
        """The loss and its gradient. loss_sum: a float32 tensor of one element the loss is
        added to on the device. read_loss=False reads nothing back and returns None (what a
        step recorded with Context.record does)."""
        o = LossOptions()
        check(lib.dat_loss_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        o.adv_weight, o.clean_weight, o.kl_weight = adv_weight, clean_weight, kl_weight
        o.x_clean = x_clean.handle if x_clean is not None else None
        o.sample_weights = sample_weights.handle if sample_weights is not None else None
        o.reduction = int(reduction)
        o.accumulate = int(accumulate)
        o.loss_sum = loss_sum.handle if loss_sum is not None else None
        loss = ctypes.c_float()
        check(lib.dat_model_loss_backward(self.handle, x.handle,
                                          y.handle if y is not None else None, ctypes.byref(o),
                                          ctypes.byref(loss) if read_loss else None))
        return loss.value if read_loss else None

    def input_grad(self, x: Tensor, y: Optional[Tensor], dx: Tensor,
                   objective: Objective = Objective.CE, target_logits: Optional[Tensor] = None,
                   reduction: Reduction = Reduction.SUM, sample_losses: Optional[Tensor] = None,
                   logits: Optional[Tensor] = None) -> float:
        o = InputGradOptions()
        check(lib.dat_input_grad_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        o.objective = int(objective)
        o.target_logits = target_logits.handle if target_logits is not None else None
        o.reduction = int(reduction)
        o.sample_losses = sample_losses.handle if sample_losses is not None else None
        o.logits = logits.handle if logits is not None else None
        loss = ctypes.c_float()
        check(lib.dat_model_input_grad(self.handle, x.handle, y.handle if y is not None else None,
                                       ctypes.byref(o), dx.handle, ctypes.byref(loss)))
        return loss.value

    def nodes(self) -> list[tuple[int, tuple[int, int, int]]]:
        """(layer kind, (C, H, W)) of every node; node 0 is the input (kind -1)."""
        n = ctypes.c_int32()
        check(lib.dat_model_num_nodes(self.handle, ctypes.byref(n)))
        out = []
        for i in range(n.value):
            v = [ctypes.c_int32() for _ in range(4)]
            check(lib.dat_model_node_info(self.handle, i, *[ctypes.byref(x) for x in v]))
            out.append((v[0].value, (v[1].value, v[2].value, v[3].value)))
        return out

    def activation(self, node: int, batch: int) -> np.ndarray:
        """Output of `node` in the last forward pass of `batch` samples."""
        _, shape = self.nodes()[node]
        t = Tensor(self._ctx, (batch, *shape))
        check(lib.dat_model_activation(self.handle, node, t.handle))
        return t.numpy()

    def save(self, path: str) -> None:
        """The state_dict as a safetensors file (PyTorch names and shapes)."""
        check(lib.dat_model_save(self.handle, path.encode()))

    def load(self, path: str, ignore_unexpected: bool = False,
             reinit_head: ReinitHead = ReinitHead.NEVER,
             on_tensor: Optional[Callable[[str, bool], None]] = None) -> None:
        """Loads a safetensors state_dict written by libdat or PyTorch (all or nothing).
        on_tensor(name, loaded) is called per tensor after a successful load: loaded is
        False where the model kept its own values (a re-initialized classifier)."""
        o = ModelLoadOptions()
        check(lib.dat_model_load_options_init_sized(ctypes.byref(o), ctypes.sizeof(o)))
        o.ignore_unexpected = int(ignore_unexpected)
        o.reinit_head = int(reinit_head)
        raised: list[BaseException] = []
        if on_tensor is not None:
            def relay(name: bytes, loaded: int, _user) -> None:
                if raised:
                    return
                try:
                    on_tensor(name.decode(), bool(loaded))
                except BaseException as e:  # ctypes would print and drop it
                    raised.append(e)
            callback = c_on_tensor_fn(relay)  # alive until the call returns
            o.on_tensor = callback
        check(lib.dat_model_load(self.handle, path.encode(), ctypes.byref(o)))
        if raised:  # the model is loaded; the caller's callback failed
            raise raised[0]

    @property
    def num_layers(self) -> int:
        """Layers with parameters (PyTorch modules); the last is the classifier."""
        n = ctypes.c_int32()
        check(lib.dat_model_num_layers(self.handle, ctypes.byref(n)))
        return n.value

    def layer_segments(self, layer: int) -> tuple[int, int]:
        """(first segment, number of segments) of a layer."""
        first, count = ctypes.c_int32(), ctypes.c_int32()
        check(lib.dat_model_layer_segments(self.handle, layer, ctypes.byref(first),
                                           ctypes.byref(count)))
        return first.value, count.value

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, by state_dict name (flat, 1-D)."""
        p = self.params.numpy()
        return {name: p[off:off + n].copy() for name, off, n, _ in self.segments()}
