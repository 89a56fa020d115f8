"""The ctypes package: numpy round trips, errors as exceptions, handle lifetimes."""
import numpy as np
import pytest

import libdat
from libdat import Context, DType, Tensor


@pytest.fixture
def ctx():
    with Context(seed=1234, num_threads=2) as c:
        yield c


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8])
def test_numpy_round_trip(ctx, dtype):
    a = (np.arange(2 * 3 * 5) % 200).astype(dtype).reshape(2, 3, 5)
    with Tensor.from_numpy(ctx, a) as t:
        assert t.shape == (2, 3, 5)
        assert t.numpy().dtype == dtype
        np.testing.assert_array_equal(t.numpy(), a)


def test_bfloat16_bits_round_trip(ctx):
    bits = np.array([0x3F80, 0xC000, 0x7F80, 0x0001], dtype=np.uint16)
    t = Tensor.from_numpy(ctx, bits, dtype=DType.BFLOAT16)
    assert t.dtype == DType.BFLOAT16
    np.testing.assert_array_equal(t.numpy(), bits)


def test_zero_copy_view(ctx):
    t = Tensor(ctx, (4, 4))
    v = t.view()
    v[1, 2] = 7.5  # writes through to libdat's memory
    assert t.numpy()[1, 2] == 7.5
    t.fill(2.0)
    assert v[3, 3] == 2.0


def test_errors_carry_the_message(ctx):
    with pytest.raises(libdat.InvalidArgumentError) as e:
        Tensor(ctx, (2, 0))
    assert e.value.name == "DAT_ERR_INVALID_ARG"
    assert "shape[1] = 0" in e.value.message
    t = Tensor(ctx, (3,), DType.INT32)
    with pytest.raises(libdat.InvalidArgumentError, match="not representable"):
        t.fill(0.5)
    with pytest.raises(libdat.InvalidArgumentError, match="float32 or bfloat16"):
        t.fill_normal()


def test_random_fills_repeat_and_match_the_seed():
    with Context(seed=99) as a, Context(seed=99) as b, Context(seed=100) as c:
        xs = []
        for ctx in (a, b, c):
            t = Tensor(ctx, (1000,))
            t.fill_normal(0.0, 1.0, stream=3)
            xs.append(t.numpy())
        np.testing.assert_array_equal(xs[0], xs[1])
        assert not np.array_equal(xs[0], xs[2])
        assert abs(xs[0].mean()) < 4 / np.sqrt(1000)


def test_closed_handles_are_refused(ctx):
    t = Tensor(ctx, (2,))
    t.close()
    t.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        t.numpy()


def test_tensor_keeps_context_alive():
    t = Tensor(Context(seed=5), (8,))  # the context has no other reference
    t.fill_uniform(0.0, 1.0)
    assert ((t.numpy() >= 0) & (t.numpy() < 1)).all()


def test_library_facts(ctx):
    assert libdat.version().count(".") == 2
    assert libdat.cuda_device_count() >= 0
    assert ctx.seed == 1234
    assert ctx.num_threads == 2
    assert ctx.device == (libdat.Device.CPU, -1)
    if libdat.cuda_device_count() == 0:
        with pytest.raises(libdat.DatError, match="CUDA"):
            Context(device=libdat.Device.CUDA)


def test_cuda_only_options_on_the_cpu():
    # precision, tune_convolutions, cuda_graphs and deterministic are accepted and
    # ignored on the CPU.
    with Context(precision=libdat.Precision.TF32, tune_convolutions=True,
                 cuda_graphs=True, deterministic=True) as c:
        assert c.device == (libdat.Device.CPU, -1)
    # Each mirrored field lands where the C library reads it: a bad value in it is
    # refused by name.
    import ctypes
    from libdat._lib import CtxOptions, c_ctx_p, lib
    for field in ("precision", "tune_convolutions", "cuda_graphs", "channels_last",
                  "deterministic"):
        opts = CtxOptions()
        assert lib.dat_ctx_options_init(ctypes.byref(opts)) == 0
        setattr(opts, field, 7)
        handle = c_ctx_p()
        assert lib.dat_ctx_create(ctypes.byref(handle), ctypes.byref(opts)) != 0
        assert field in lib.dat_last_error().decode()


def test_bf16_and_channels_last_on_the_cpu():
    # The CPU emulates bf16 activations; channels last gives NCHW's very bits there.
    from libdat import Model
    x = np.random.default_rng(3).random((4, 1, 28, 28), dtype=np.float32)
    logits = {}
    for name, kw in {"fp32": {}, "nhwc": {"channels_last": True},
                     "bf16": {"precision": libdat.Precision.BF16, "channels_last": False}}.items():
        with Context(num_threads=2, **kw) as c:
            m = Model(c, "cnn_small", init_seed=5)
            z = Tensor(c, (4, 10))
            m.forward(Tensor.from_numpy(c, x), z)
            logits[name] = z.numpy().copy()
            m.close()
    np.testing.assert_array_equal(logits["nhwc"], logits["fp32"])
    err = np.linalg.norm(logits["bf16"] - logits["fp32"]) / np.linalg.norm(logits["fp32"])
    assert 0 < err < 0.01
