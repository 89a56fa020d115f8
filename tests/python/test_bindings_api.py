"""The parts of the Python package beyond tensors: builder, quantizer, communicator,
unique id, data set, checkpoints, logging and handle lifetimes."""
import gc
import weakref

import numpy as np
import pytest

import libdat
from libdat import (Comm, Context, Dataset, DType, LayerKind, Model, ModelBuilder, Optimizer,
                    Position, QuantMode, Quantizer, Tensor, UniqueId)

import fmnist

FMNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def ctx():
    with Context(seed=7, num_threads=2) as c:
        yield c


def small_model(ctx):
    b = ModelBuilder(ctx, 1, 4, 4)
    flat = b.add(LayerKind.FLATTEN, 0)
    fc = b.add(LayerKind.LINEAR, flat, name="fc", out_features=3)
    return b.finish(fc, init_seed=3)


def test_builder_makes_a_working_model(ctx):
    m = small_model(ctx)
    assert m.shape == (1, 4, 4, 3)
    assert [s[0] for s in m.segments()] == ["fc.weight", "fc.bias"]
    x = Tensor.from_numpy(ctx, np.full((2, 1, 4, 4), 0.5, np.float32))
    logits = Tensor(ctx, (2, 3))
    m.forward(x, logits)
    w = m.params.view()  # zero-copy: the flat parameters as numpy
    expected = 0.5 * w[:48].reshape(3, 16).sum(1) + w[48:]
    np.testing.assert_allclose(logits.numpy()[0], expected, rtol=1e-5)
    with pytest.raises(libdat.InvalidArgumentError, match="fc"):
        b = ModelBuilder(ctx, 1, 4, 4)
        f = b.add(LayerKind.FLATTEN, 0)
        b.add(LayerKind.LINEAR, f, name="fc", out_features=3)
        b.add(LayerKind.LINEAR, f, name="fc", out_features=3)  # the name repeats


def test_quantizer_pass_through_and_in_place_codes(ctx):
    q = Quantizer(ctx, bits=32, bucket_size=4)
    assert q.options()["bits"] == 32
    x = Tensor.from_numpy(ctx, np.arange(10, dtype=np.float32))
    assert q.encoded_size(10) == 40
    codes = np.zeros(64, np.uint8)
    assert q.encode(x, step=0, out=codes) is codes  # written in place, no copy
    out = Tensor(ctx, (10,))
    q.decode(codes, out)
    np.testing.assert_array_equal(out.numpy(), np.arange(10, dtype=np.float32))
    q.decode(codes, out, accumulate=True)
    np.testing.assert_array_equal(out.numpy(), 2 * np.arange(10, dtype=np.float32))
    with pytest.raises(libdat.InvalidArgumentError):
        q.decode(codes[:8], out)  # too short for 10 elements


def test_quantizer_is_unbiased_and_repeatable(ctx):
    q = Quantizer(ctx, bits=4, bucket_size=64, error_feedback=True)
    v = np.linspace(-1, 1, 64, dtype=np.float32)
    x = Tensor.from_numpy(ctx, v)
    acc = np.zeros(64)
    out = Tensor(ctx, (64,))
    for step in range(400):
        q.decode(q.encode(x, step), out)
        acc += out.numpy()
        q.reset()
    assert np.abs(acc / 400 - v).max() < 0.05
    first = q.encode(x, 5)
    assert not np.array_equal(q.encode(x, 5), first)  # the residual was added
    q.reset()
    np.testing.assert_array_equal(q.encode(x, 5), first)  # same step, no residual: same codes


def test_self_communicator(ctx):
    with Comm.self(ctx) as comm:
        assert (comm.rank, comm.size) == (0, 1)
        t = Tensor.from_numpy(ctx, np.array([1.0, 2.0], np.float32))
        comm.allreduce(t)
        comm.broadcast(t, 0)
        out = Tensor(ctx, (2,))
        comm.allgather(t, out)
        np.testing.assert_array_equal(out.numpy(), [1.0, 2.0])
        q = Quantizer(ctx, bits=32)
        comm.allreduce_quantized(t, q, QuantMode.TWO_SIDED, step=1)
        np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
        m = small_model(ctx)
        m.grads.fill(1.0)
        comm.allreduce_grads(m, q, QuantMode.ONE_SIDED, step=0)
        comm.broadcast_model(m, 0)
        np.testing.assert_array_equal(m.grads.numpy(), 1.0)
        s = comm.stats()
        assert s.calls >= 6 and s.bytes_sent == 0  # one rank sends nothing
        comm.reset_stats()
        assert comm.stats().calls == 0
        with pytest.raises(libdat.InvalidArgumentError):
            comm.broadcast(t, 1)
        comm.abort()
        with pytest.raises(libdat.StateError):
            comm.allreduce(t)


def test_unique_id_file_round_trip(tmp_path):
    uid = UniqueId(bytes(range(128)))
    uid.write(str(tmp_path / "id"))
    assert bytes(UniqueId.read(str(tmp_path / "id"), 1.0)) == bytes(range(128))
    with pytest.raises(libdat.TimeoutFailure):
        UniqueId.read(str(tmp_path / "missing"), 0.05)
    if not libdat.has_cuda():
        with pytest.raises(libdat.UnsupportedError):
            UniqueId.new()


@pytest.mark.skipif(not fmnist.available(), reason="needs dataset-fashion-mnist")
def test_dataset_serves_shards_of_fashion_mnist(ctx):
    ds = Dataset(ctx, f"{FMNIST}/t10k-images-idx3-ubyte.gz", f"{FMNIST}/t10k-labels-idx1-ubyte.gz",
                 limit=100, batch_size=32, world_size=2, rank=1, seed=3, drop_last=True)
    assert (ds.num_samples, ds.batches_per_epoch, ds.sample_shape, ds.num_classes) == \
        (50, 1, (1, 28, 28), 10)
    x, y = ds.batch_tensors()
    counts = list(ds.epoch(0, x, y))
    assert counts == [32]
    assert ds.position == (0, 1)
    images, labels = fmnist.load("test")
    # every served sample is one of the first 100 images, with its label
    xs, ys = x.numpy(), y.numpy()
    for i in range(32):
        j = int(np.argmin(np.abs(images[:100] - xs[i]).reshape(100, -1).sum(1)))
        np.testing.assert_array_equal(images[j], xs[i])
        assert labels[j] == ys[i]
    ds.set_position(0, 0)
    assert ds.next_batch(x, y) == 32
    with pytest.raises(libdat.IOFailure, match="dataset-"):
        Dataset(ctx, "/usr/share/datasets/nothing/x.gz", "/usr/share/datasets/nothing/y.gz")
    with pytest.raises(TypeError):
        Dataset(ctx, "x", "y", no_such_option=1)


def test_checkpoint_round_trip(ctx, tmp_path):
    m = small_model(ctx)
    opt = Optimizer(ctx, model=m, lr=0.1)
    m.grads.fill(0.5)
    opt.step_model(m)
    path = str(tmp_path / "ck.safetensors")
    libdat.save_checkpoint(path, m, opt, Position(epoch=2, step=1, attack_step=9), '{"a": 1}')
    w = m.params.numpy()
    m2 = small_model(ctx)
    opt2 = Optimizer(ctx, model=m2, lr=0.1)
    pos, config = libdat.load_checkpoint(path, m2, opt2)
    assert pos == Position(2, 1, 9) and config == '{"a": 1}'
    np.testing.assert_array_equal(m2.params.numpy(), w)
    assert opt2.steps == 1
    with pytest.raises(libdat.IOFailure):
        libdat.load_checkpoint(str(tmp_path / "none"), m2)


def test_log_callback_and_gc_closing():
    lines = []
    ctx = Context(seed=1, log=lambda level, line: lines.append((level, line)),
                  log_level=libdat.LogLevel.DEBUG)
    t = Tensor(ctx, (4,))
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is None  # nothing else holds a tensor: garbage collection destroys it
    model = Model(ctx, "mlp")
    params = model.params
    ctx.close()  # closes the model, and so its borrowed buffers, first
    with pytest.raises(ValueError, match="closed"):
        params.numpy()
    assert all(isinstance(level, libdat.LogLevel) for level, _ in lines)
