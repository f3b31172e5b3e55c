"""The GPU backend's transfers and the GPU model in the plan-wisdom key.

Host<->device copies of large arrays go through a bounded pool of page-locked
buffers on a stream of the backend's own (see :mod:`fftconv.backends.cupy_backend`);
the stand-in (``device_standin``) queues copies on a stream until an event is
waited for, so a buffer reused too early or an upload not waited for shows as
wrong data.  Measured plans are kept per GPU model.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from device_standin import use_device
from devices import backend_params, on_device

import fftconv
from fftconv import _files, plan_wisdom
from fftconv.backends import cupy_backend, get_backend
from fftconv.backends.cupy_backend import CupyBackend
from fftconv.config import load_config
from fftconv.planner import Problem

RNG = np.random.default_rng(17)
#: Staging thresholds of :func:`small_pool`: pieces of 4 KiB through 3 buffers.
MIN_BYTES, BUFFER_BYTES, POOL_BYTES = 1 << 10, 4 << 10, 12 << 10


@pytest.fixture
def small_pool(monkeypatch):
    """Staging thresholds small enough for arrays of some kB (for backends made after)."""
    monkeypatch.setattr(cupy_backend, "PINNED_MIN_BYTES", MIN_BYTES)
    monkeypatch.setattr(cupy_backend, "PINNED_BUFFER_BYTES", BUFFER_BYTES)
    monkeypatch.setattr(cupy_backend, "PINNED_POOL_BYTES", POOL_BYTES)


@pytest.fixture
def wisdom_dir(tmp_path, monkeypatch):
    """A fresh cache directory for the plan wisdom."""
    monkeypatch.setenv("FFTCONV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FFTCONV_SAVE_WISDOM", raising=False)
    monkeypatch.setattr(_files, "_warned", set())
    return tmp_path / "cache"


def _backend(modules: cupy_backend.DeviceModules) -> CupyBackend:
    """A new backend of device 0 (with the staging thresholds in force now)."""
    return CupyBackend(modules, 0, max_plans=4, max_plan_bytes=1 << 20)


def _layouts() -> list[np.ndarray]:
    """Host arrays of 20 to 80 kB, each with memory of its own: float64 and float32, C
    and transposed order, with gaps, big-endian."""
    def a():
        return RNG.standard_normal((3, 700, 5))

    return [a(), a().astype(np.float32), a().transpose(0, 2, 1), a()[:, ::2],
            a().astype(">f8")]


@pytest.mark.parametrize("name", backend_params("cupy-standin", "cupy"))
def test_staged_transfers_are_exact_and_owned_by_the_caller(name, small_pool):
    with on_device(name):
        backend = _backend(cupy_backend.device_modules())
        for x in _layouts():
            want = x.astype(x.dtype.newbyteorder("="))  # in the memory order of `x`
            uploaded = backend.to_device(x)
            x[...] = 0  # the upload holds the data of the call
            assert uploaded.strides == want.strides
            doubled = backend.to_host(uploaded * 2)  # computed after the upload
            np.testing.assert_array_equal(doubled, want * 2)
            back = backend.to_host(uploaded)
            np.testing.assert_array_equal(back, want)
            doubled[...] = 0  # results share no memory with each other or the pool
            np.testing.assert_array_equal(back, want)
        assert backend.pinned.nbytes <= POOL_BYTES


def test_large_transfers_go_through_the_bounded_pool_on_the_transfer_stream(gpu, small_pool):
    backend, x = _backend(gpu), RNG.standard_normal(10_000)  # 80 kB: 20 pieces
    uploaded = backend.to_device(x)
    (stream,) = gpu.new_stream.made
    compute = gpu.current_stream()
    assert stream.waited_for == [compute] and compute.waited_for == [stream]
    pieces = -(-x.nbytes // BUFFER_BYTES)
    assert [(kind, pinned) for kind, _, pinned in stream.copies] == [("upload", True)] * pieces
    assert sum(nbytes for _, nbytes, _ in stream.copies) == x.nbytes
    assert len(gpu.pinned_empty.buffers) == POOL_BYTES // BUFFER_BYTES == backend.pinned.allocated

    y = backend.to_host(uploaded)
    downloads = stream.copies[pieces:]
    assert [(kind, pinned) for kind, _, pinned in downloads] == [("download", True)] * pieces
    assert len(gpu.pinned_empty.buffers) == 3 and backend.pinned.nbytes == POOL_BYTES
    np.testing.assert_array_equal(y, x)
    assert not any(np.shares_memory(y, buffer) for buffer in gpu.pinned_empty.buffers)

    later = RNG.standard_normal(10_000)
    z = backend.to_host(backend.to_device(later))
    np.testing.assert_array_equal(z, later)
    np.testing.assert_array_equal(y, x)  # an earlier result is not a pooled buffer
    np.testing.assert_array_equal(gpu.to_host(uploaded), x)
    assert len(gpu.new_stream.made) == 1 and len(gpu.pinned_empty.buffers) == 3


def test_small_arrays_take_the_plain_path(gpu):
    backend = _backend(gpu)  # the module's thresholds
    small = RNG.standard_normal(cupy_backend.PINNED_MIN_BYTES // 8 - 1)
    np.testing.assert_array_equal(backend.to_host(backend.to_device(small)), small)
    assert gpu.new_stream.made == [] and gpu.pinned_empty.buffers == []
    large = RNG.standard_normal(cupy_backend.PINNED_MIN_BYTES // 8)
    np.testing.assert_array_equal(backend.to_host(backend.to_device(large)), large)
    (stream,) = gpu.new_stream.made
    assert [kind for kind, _, _ in stream.copies] == ["upload", "download"]
    # One piece each way; the upload's buffer was still in use (its event not waited for).
    assert backend.pinned.nbytes == 2 * cupy_backend.PINNED_BUFFER_BYTES


def test_modules_without_pinned_memory_take_the_plain_path(gpu, small_pool):
    backend = _backend(dataclasses.replace(gpu, pinned_empty=None))
    x = RNG.standard_normal(10_000)
    np.testing.assert_array_equal(backend.to_host(backend.to_device(x)), x)
    assert backend.pinned is None and gpu.new_stream.made == []


def test_the_standin_shows_a_buffer_written_before_its_copy_ran(gpu):
    stream, buffer = gpu.new_stream(), gpu.pinned_empty(8).view(np.float64)
    target = gpu.xp.zeros(1)
    buffer[0] = 1.0
    target.set(buffer, stream=stream)
    buffer[0] = 2.0  # too early: the queued copy reads this
    event = stream.record()
    assert gpu.to_host(target)[0] == 0.0  # nobody waited for the copy yet
    gpu.current_stream().wait_event(event)
    assert gpu.to_host(target)[0] == 2.0


def test_convolve_with_backend_cupy_stages_its_transfers(gpu, small_pool):
    x, h = RNG.standard_normal((4, 3000)), RNG.standard_normal((1, 65))
    y = fftconv.convolve(x, h, "same", axes=1, backend="cupy", method="fft")
    np.testing.assert_allclose(y, fftconv.convolve(x, h, "same", axes=1), rtol=0,
                               atol=1e-10 * np.abs(y).max())
    (stream,) = gpu.new_stream.made
    kinds = {kind for kind, _, pinned in stream.copies if pinned}
    assert kinds == {"upload", "download"}


# -- the GPU model in the plan-wisdom key ---------------------------------------

PROBLEM = Problem(batch=2, groups=1, in_channels=3, out_channels=4, kernel_length=9,
                  outputs=100, itemsize=8)


def test_the_wisdom_key_names_the_gpu_model_and_keeps_the_cpu_key():
    cpu = plan_wisdom.wisdom_key(PROBLEM, "numpy", 1, "auto", "direct-windows")
    assert cpu == (f"numpy|threads=1|float64|{plan_wisdom.machine_id()}|auto|"
                   f"B=2 G=1 Ci=3 Co=4 Kp=9 T=100 itemsize=8|windows")
    h200, h100 = (plan_wisdom.wisdom_key(PROBLEM, "cupy", 1, "auto", device_model=model)
                  for model in ("NVIDIA H200", "NVIDIA H100 80GB HBM3"))
    assert h200 != h100 and "|gpu=NVIDIA H200|" in h200
    assert get_backend("numpy").device_model is None


def test_the_engine_keys_gpu_plans_by_the_gpu_model_of_the_call(gpu):
    layer = fftconv.SignalConv1D(4, 33, corr=True, backend="cupy")
    model = layer.engine.plan_for((2, 3, 500), np.float64)
    keys = []
    for device in (0, 1):
        with use_device(device):
            backend = get_backend("cupy")
            keys.append(layer.engine._wisdom_key(model, backend))
            assert backend.device_model == f"Stand-in GPU {device}"
    assert "|gpu=Stand-in GPU 0|" in keys[0] and "|gpu=Stand-in GPU 1|" in keys[1]
    assert "|gpu=none|" in layer.engine._wisdom_key(model, None)  # planned without a GPU
    cpu = fftconv.SignalConv1D(4, 33, corr=True, backend="numpy")
    cpu_model = cpu.engine.plan_for((2, 3, 500), np.float64)
    assert cpu.engine._wisdom_key(cpu_model, cpu.engine.backend) == plan_wisdom.wisdom_key(
        cpu_model.problem, "numpy", cpu_model.threads, "auto", cpu_model.direct_variant)


MEASURE = dataclasses.replace(load_config(), planner=dataclasses.replace(
    load_config().planner, planning="measure", measure_seconds=600.0))


def _measurements(modules, device: int, x: np.ndarray, kernel: np.ndarray) -> int:
    """Candidates a new layer times on its first call on `device`."""
    layer = fftconv.SignalConv1D(3, 33, corr=True, strides_down=2, padding="same_zeros",
                                 kernel_parameter=kernel, dtype="float64", config=MEASURE)
    with use_device(device):
        layer(modules.xp.asarray(x))
    return layer.engine.measurements


@pytest.mark.parametrize("same_model", [False, True])
def test_a_measured_gpu_winner_is_reused_on_the_same_gpu_model_only(gpu, wisdom_dir,
                                                                    same_model):
    modules = dataclasses.replace(gpu, device_name=lambda device: "One model") \
        if same_model else gpu
    cupy_backend.install(modules)
    x, kernel = RNG.standard_normal((2, 1000, 2)), RNG.standard_normal((33, 2, 3))
    assert _measurements(modules, 0, x, kernel) > 1
    assert _measurements(modules, 0, x, kernel) == 0  # remembered for this model
    again = _measurements(modules, 1, x, kernel)
    assert again == 0 if same_model else again > 1


@pytest.mark.parametrize("method", ["fft", "direct", "direct-shifted", "direct-windows"])
@pytest.mark.parametrize(("padding", "strides_down", "strides_up"), [
    ("same_zeros", 1, 1), ("same_reflect", 3, 1), ("same_zeros", 2, 3), ("valid", 4, 1)])
def test_a_device_input_uploads_nothing_once_the_kernel_is_there(gpu, monkeypatch, method,
                                                                 padding, strides_down,
                                                                 strides_up):
    # An upload from pageable host memory is synchronous on a GPU: index arrays made on
    # the host (the edges of a padded input, say) would stall every call.
    uploads = []
    module = type(gpu.xp)
    getattr_ = module.__getattr__

    def counted(self, name):
        function = getattr_(self, name)
        if name not in ("asarray", "array", "ascontiguousarray"):
            return function

        def upload(a, *args, **kwargs):
            if type(a) is not type(gpu.xp.zeros(0)):
                uploads.append((name, np.shape(a)))
            return function(a, *args, **kwargs)

        return upload

    monkeypatch.setattr(module, "__getattr__", counted)
    layer = fftconv.SignalConv1D(6, 31, corr=True, padding=padding, strides_down=strides_down,
                                 strides_up=strides_up, method=method, dtype="float64",
                                 kernel_parameter=RNG.standard_normal((31, 5, 6)))
    x = gpu.xp.asarray(RNG.standard_normal((2, 400, 5)))
    want = layer(gpu.to_host(x))
    layer(x)  # the kernel's operands go to the device once
    uploads.clear()
    y = layer(x)
    assert uploads == []
    np.testing.assert_allclose(gpu.to_host(y), want, rtol=1e-10, atol=1e-12)
