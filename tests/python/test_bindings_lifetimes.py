"""Handle lifetimes and argument checks of the Python package: a C object is destroyed only
after everything made from it (children, numpy views, step graphs), in any order of
close() or garbage collection, and arguments libdat would read past are refused."""
import gc
import os
import subprocess
import sys

import numpy as np
import pytest

import libdat
from libdat import Comm, Context, GradSync, Model, ModelBuilder, Optimizer, Quantizer, Tensor


@pytest.fixture
def destroyed(monkeypatch):
    """The order in which C objects are destroyed: ('context' | 'tensor' | ..., raw)."""
    order = []
    for cls in (Context, Tensor, Model):
        real = cls._destroy

        def wrap(raw, real=real, what=cls._what):
            order.append(what)
            real(raw)
        monkeypatch.setattr(cls, "_destroy", staticmethod(wrap))
    return order


def test_garbage_cycle_destroys_the_context_last(destroyed):
    class Holder:
        pass
    gc.disable()  # collect the cycle below in one go, as a later gc.collect() would
    try:
        ctx = Context(num_threads=1)
        t = Tensor(ctx, (16,))
        h = Holder()
        h.ctx, h.t, h.self = ctx, t, h
        del ctx, t, h
        gc.collect()
    finally:
        gc.enable()
    assert destroyed == ["tensor", "context"]


def test_view_outlives_close_of_its_context(destroyed):
    ctx = Context(num_threads=1)
    m = Model(ctx, "mlp")
    w = m.params.view()
    before = w.copy()
    ctx.close()
    assert destroyed == []  # the view still reads the model's memory
    np.testing.assert_array_equal(w, before)
    with pytest.raises(ValueError, match="closed"):
        m.params
    part = w[:5]
    del w
    gc.collect()
    assert destroyed == []  # a view of the view keeps it
    del part
    gc.collect()
    assert destroyed == ["model", "context"]


def test_grad_sync_closes_with_its_quantizer():
    with Context(num_threads=1) as ctx:
        m = Model(ctx, "mlp")
        q = Quantizer(ctx, bits=8, bucket_size=512)
        with Comm.self(ctx) as comm:
            sync = GradSync(comm, m, bucket_elems=512 * 64, q=q)
            q.close()
            with pytest.raises(ValueError, match="synchronizer is closed"):
                sync.begin(0)


def test_optimizer_lives_in_its_models_context():
    with Context(num_threads=1) as a, Context(num_threads=1) as b:
        m = Model(a, "mlp")
        with pytest.raises(ValueError, match="model's context"):
            Optimizer(b, model=m)


def test_normalization_needs_one_value_per_channel():
    with Context(num_threads=1) as ctx:
        with pytest.raises(libdat.InvalidArgumentError, match="channel 1"):
            Model(ctx, "preact_resnet18", mean=[0.5], std=[0.25])  # 3 channels
        with pytest.raises(ValueError, match="2 mean and std values for a model of 1"):
            Model(ctx, "mlp", mean=[0.5, 0.5], std=[0.25, 0.25])
        with pytest.raises(ValueError, match="go together"):
            Model(ctx, "mlp", mean=[0.5], std=None)
        assert Model(ctx, "preact_resnet18", mean=[0.5] * 3, std=[0.25] * 3).shape[0] == 3
        b = ModelBuilder(ctx, 8, 4, 4)
        with pytest.raises(ValueError, match="for 8 input channels"):
            b.set_normalization([0.5] * 5, [0.25] * 5)


def test_encode_writes_only_into_writable_buffers():
    with Context(num_threads=1) as ctx:
        q = Quantizer(ctx, bits=8, bucket_size=512)
        x = Tensor.from_numpy(ctx, np.ones(1000, np.float32))
        size = q.encoded_size(1000)
        codes = bytes(size)
        with pytest.raises(TypeError, match="writable"):
            q.encode(x, 0, out=codes)
        assert codes == bytes(size)
        ro = np.zeros(size, np.uint8)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            q.encode(x, 0, out=ro)
        out = bytearray(size)
        q.encode(x, 0, out=np.frombuffer(out, np.uint8))
        assert any(out)


def test_dataset_counts_follow_the_lists(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 4, 4), np.uint8))
    np.save(tmp_path / "y.npy", np.arange(10, dtype=np.int32) % 5)
    with Context(num_threads=1) as ctx:
        for k in ("num_subset_classes", "num_extra_paths", "images_path"):
            with pytest.raises(TypeError, match=k):
                libdat.Dataset(ctx, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                               format=libdat.DatasetFormat.NPY, classes=[0, 1], **{k: 9})


def test_on_tensor_exception_reaches_the_caller(tmp_path):
    with Context(num_threads=1) as ctx:
        m = Model(ctx, "mlp")
        m.save(str(tmp_path / "m.safetensors"))
        calls = []

        def fail(name, loaded):
            calls.append(name)
            raise KeyError(name)
        with pytest.raises(KeyError):
            m.load(str(tmp_path / "m.safetensors"), on_tensor=fail)
        assert len(calls) == 1  # the first failure stops the callbacks


def test_errors_of_shapes_and_memory():
    with Context(num_threads=1) as ctx:
        with pytest.raises(libdat.InvalidArgumentError, match="ndim"):
            Tensor(ctx, (1,) * 9)
        if _overcommits():
            pytest.skip("vm.overcommit_memory = 1: a 2 TiB allocation would succeed")
        with pytest.raises(libdat.OutOfMemoryError) as e:
            Tensor(ctx, (1 << 20, 1 << 19))  # 2 TiB of float32
        assert isinstance(e.value, MemoryError)


def _overcommits() -> bool:
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def test_a_named_library_loads_or_fails():
    package = os.path.dirname(os.path.dirname(libdat.__file__))
    env = dict(os.environ, LIBDAT_LIBRARY="/nonexistent/libdat.so", PYTHONPATH=package)
    r = subprocess.run([sys.executable, "-c", "import libdat"], env=env, capture_output=True,
                       text=True)
    assert r.returncode != 0 and "/nonexistent/libdat.so" in r.stderr


@pytest.mark.skipif(libdat.cuda_device_count() == 0, reason="needs a CUDA device (or the "
                    "gpu_emulation build: LIBDAT_LIBRARY=build-emu/libdat.so)")
def test_step_graph_closes_before_what_it_recorded():
    with Context(device=libdat.Device.CUDA, num_threads=1) as c:
        m = Model(c, "mlp")
        opt = Optimizer(c, m)
        x = Tensor.from_numpy(c, np.random.default_rng(1).random((4, 1, 28, 28), np.float32))
        y = Tensor.from_numpy(c, np.array([0, 1, 2, 3], np.int32))

        def step():
            m.loss_backward(x, y, read_loss=False)
            opt.step_model(m)
        step()
        graph = c.record(step)
        graph.launch()
        opt.close()  # the graph's launches write the optimizer's step counter
        with pytest.raises(ValueError, match="step graph is closed"):
            graph.launch()
