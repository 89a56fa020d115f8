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


def test_grad_sync_matches_allreduce_grads(ctx):
    # One rank: the synchronizer's gradient is allreduce_grads' bits.
    from libdat import GradSync
    x = Tensor.from_numpy(ctx, np.random.default_rng(1).random((4, 1, 4, 4), np.float32))
    y = Tensor.from_numpy(ctx, np.array([0, 1, 2, 0], np.int32))
    with Comm.self(ctx) as comm:
        a, b = small_model(ctx), small_model(ctx)
        qa, qb = Quantizer(ctx, bits=4, bucket_size=16), Quantizer(ctx, bits=4, bucket_size=16)
        a.loss_backward(x, y)
        comm.allreduce_grads(a, qa, QuantMode.ONE_SIDED, step=3)
        with GradSync(comm, b, bucket_elems=16, q=qb) as sync:
            assert sync.overlaps
            sync.begin(3)
            b.loss_backward(x, y)
            sync.end()
        np.testing.assert_array_equal(b.grads.numpy(), a.grads.numpy())


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


def test_statistics():
    assert abs(libdat.normal_quantile(0.975) - 1.959963984540054) < 1e-12
    assert abs(libdat.incbeta(1.0, 1.0, 0.3) - 0.3) < 1e-12
    assert abs(libdat.incbeta(2.0, 3.0, libdat.incbeta_inv(2.0, 3.0, 0.4)) - 0.4) < 1e-9
    assert libdat.clopper_pearson_lower(0, 10, 0.05) == 0.0
    # all successes: the bound solves p^n = alpha
    assert abs(libdat.clopper_pearson_lower(10, 10, 0.05) - 0.05 ** 0.1) < 1e-9
    with pytest.raises(libdat.InvalidArgumentError):
        libdat.normal_quantile(1.5)


def test_smoothing_and_certified_accuracy(ctx):
    m = small_model(ctx)
    x = Tensor(ctx, (3, 1, 4, 4))
    x.fill_uniform(0.0, 1.0)
    pred = libdat.smooth_predict(m, x, sigma=0.25, n=50, batch=25)
    assert pred.dtype == np.int32 and pred.shape == (3,)
    assert ((pred >= -1) & (pred < 3)).all()
    pred, radius = libdat.smooth_certify(m, x, sigma=0.25, n0=10, n=50, batch=25)
    assert ((radius == 0) | (pred >= 0)).all() and (radius >= 0).all()
    acc = libdat.certified_accuracy(np.array([0, 1, -1]), np.array([0.5, 0.1, 0.0]),
                                    np.array([0, 1, 2]), [0.0, 0.25])
    np.testing.assert_allclose(acc, [2 / 3, 1 / 3])
    with pytest.raises(TypeError):
        libdat.smooth_predict(m, x, no_such=1)


def test_autoattack_of_a_batch(ctx):
    m = Model(ctx, "mlp")
    x = Tensor(ctx, (4, 1, 28, 28))
    x.fill_uniform(0.0, 1.0)
    y = Tensor.from_numpy(ctx, np.array([0, 1, 2, 3], np.int32))
    x_adv = Tensor(ctx, x.shape)
    robust, outcome = libdat.autoattack(m, x, y, x_adv, eps=0.1, apgd_steps=5,
                                        attacks=libdat.aa_bit(libdat.AAAttack.APGD_CE))
    assert 0 <= robust <= 4 and outcome.shape == (4,)
    assert robust == int((outcome == libdat.AAOutcome.ROBUST).sum())
    assert np.abs(x_adv.numpy() - x.numpy()).max() <= 0.1 + 1e-6


def test_transfer_learning_entry_points(ctx, tmp_path):
    m = Model(ctx, "mlp", num_classes=10)
    assert m.num_layers == 3
    first, count = m.layer_segments(m.num_layers - 1)
    assert [s[0] for s in m.segments()[first:first + count]] == ["fc3.weight", "fc3.bias"]
    path = str(tmp_path / "m.safetensors")
    m.save(path)
    m5 = Model(ctx, "mlp", num_classes=5)
    with pytest.raises(libdat.FormatError):
        m5.load(path)
    seen = {}
    m5.load(path, reinit_head=libdat.ReinitHead.IF_MISMATCHED,
            on_tensor=lambda name, loaded: seen.__setitem__(name, loaded))
    assert seen["fc1.weight"] is True and seen["fc3.weight"] is False
    opt = Optimizer(ctx, model=m5, lr=0.1)
    opt.set_lr_scale(0, first, 0.0)  # freeze everything but the classifier
    before = m5.params.numpy()
    m5.grads.fill(1.0)
    opt.step_model(m5)
    after = m5.params.numpy()
    off = m5.segments()[first][1]
    np.testing.assert_array_equal(after[:off], before[:off])
    assert not np.array_equal(after[off:], before[off:])


def test_loss_on_the_device_and_step_graphs(ctx):
    model = Model(ctx, "mlp")
    rng = np.random.default_rng(3)
    x = Tensor.from_numpy(ctx, rng.random((4, 1, 28, 28), dtype=np.float32))
    y = Tensor.from_numpy(ctx, np.array([0, 1, 2, 3], dtype=np.int32))
    total = Tensor.from_numpy(ctx, np.array([0.5], dtype=np.float32))
    loss = model.loss_backward(x, y, loss_sum=total)
    assert model.loss_backward(x, y, loss_sum=total, read_loss=False) is None
    assert abs(total.numpy()[0] - (0.5 + 2 * loss)) <= 1e-5 * (0.5 + 2 * loss)
    # The CPU records no graphs: the step never runs, the context stays usable.
    ran = []
    with pytest.raises(libdat.UnsupportedError, match="records no graphs"):
        ctx.record(lambda: ran.append(1))
    assert not ran
    assert model.loss_backward(x, y) == pytest.approx(loss)


@pytest.mark.skipif(libdat.cuda_device_count() == 0, reason="needs a CUDA device (or the "
                    "gpu_emulation build: LIBDAT_LIBRARY=build-emu/libdat.so)")
def test_recorded_step_replays_on_cuda():
    with Context(device=libdat.Device.CUDA, seed=7) as c:
        model = Model(c, "mlp")
        attack = libdat.Attack(c, steps=2, eps=0.1)
        optim = Optimizer(c, model)
        rng = np.random.default_rng(5)
        x = Tensor.from_numpy(c, rng.random((4, 1, 28, 28), dtype=np.float32))
        y = Tensor.from_numpy(c, np.array([0, 1, 2, 3], dtype=np.int32))
        xa = Tensor.from_numpy(c, np.zeros((4, 1, 28, 28), dtype=np.float32))
        total = Tensor.from_numpy(c, np.zeros(1, dtype=np.float32))

        def step(read_loss=True):
            attack.perturb(model, x, y, xa)
            loss = model.loss_backward(xa, y, loss_sum=total, read_loss=read_loss)
            optim.step_model(model)
            return loss

        first = step()
        with pytest.raises(libdat.StateError, match="loss"):
            c.record(step)  # reads the loss back
        graph = c.record(lambda: step(read_loss=False))
        for _ in range(3):
            x.write(rng.random((4, 1, 28, 28), dtype=np.float32))
            graph.launch()
        c.synchronize()
        assert optim.steps == 4 and attack.step == 4
        assert total.numpy()[0] > first
