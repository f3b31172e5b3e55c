"""Host inputs of a GPU backend run by batch slices, their transfers overlapped with compute.

NumPy stands in for CuPy (the `gpu` fixture, :mod:`device_standin`): its log
says in which order the copies were queued and the computations ran, and its
queued copies run only once waited for, so a slice read before its upload or a
download copied out too early shows as wrong numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from device_standin import DeviceArray
from golden import RTOL, assert_close

import fftconv
from fftconv import engine as engine_module
from fftconv.backends import cupy_backend
from fftconv.backends.cupy_backend import CupyBackend
from fftconv.engine import Engine
from fftconv.spec import ConvSpec

RNG = np.random.default_rng(29)
DTYPES = (np.float64, np.float32)
#: Staging thresholds: pieces of 4 KiB through a pool of 3 buffers.
MIN_BYTES, BUFFER_BYTES, POOL_BYTES = 1 << 10, 4 << 10, 12 << 10
BATCH, WIDTH, C_IN, FILTERS, TAPS = 5, 600, 2, 3, 9


@pytest.fixture
def small_pool(monkeypatch):
    """Staging thresholds small enough for arrays of some kB (for backends made after)."""
    monkeypatch.setattr(cupy_backend, "PINNED_MIN_BYTES", MIN_BYTES)
    monkeypatch.setattr(cupy_backend, "PINNED_BUFFER_BYTES", BUFFER_BYTES)
    monkeypatch.setattr(cupy_backend, "PINNED_POOL_BYTES", POOL_BYTES)


def three_slices(monkeypatch, x: np.ndarray) -> list[slice]:
    """Make engine inputs of the size of `x` run by three batch slices; those slices."""
    monkeypatch.setattr(engine_module, "PIPELINE_MIN_BYTES", x.nbytes)
    monkeypatch.setattr(engine_module, "PIPELINE_SLICE_BYTES", x.nbytes // 3 + 1)
    return [slice(0, 1), slice(1, 3), slice(3, 5)]  # BATCH = 5 rows, not divisible by 3


def phases(log: list[tuple[str, object]]) -> list[tuple[str, int]]:
    """The stand-in's log as runs of one kind, with the bytes each run copied."""
    runs: list[tuple[str, int]] = []
    for kind, what in log:
        nbytes = what if kind != "compute" else 0
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + nbytes)
        else:
            runs.append((kind, nbytes))
    return runs


def pipelined(uploads: list[int], downloads: list[int]) -> list[tuple[str, int]]:
    """The runs of a call by slices: the next slice's upload queued before each
    slice's computation, each slice's download queued right after it."""
    runs = [("upload", uploads[0] + uploads[1])]
    for i, down in enumerate(downloads):
        if 0 < i < len(uploads) - 1:
            runs.append(("upload", uploads[i + 1]))
        runs += [("compute", 0), ("download", down)]
    return runs


def _layer(dtype, data_format: str, **options) -> fftconv.SignalConv1D:
    """A layer with bias and activation; random weights unless given."""
    options.setdefault("kernel_parameter",
                       RNG.standard_normal((TAPS, C_IN, FILTERS)).astype(dtype))
    options.setdefault("bias_parameter", RNG.standard_normal(FILTERS).astype(dtype))
    return fftconv.SignalConv1D(FILTERS, TAPS, corr=True, padding="same_zeros", method="fft",
                                use_bias=True, activation="relu", data_format=data_format,
                                dtype=dtype, **options)


def _input(dtype, data_format: str) -> np.ndarray:
    shape = (BATCH, WIDTH, C_IN) if data_format == "channels_last" else (BATCH, C_IN, WIDTH)
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_layer_overlaps_slice_transfers_with_compute(gpu, small_pool, monkeypatch, dtype,
                                                       data_format):
    layer, x = _layer(dtype, data_format, backend="cupy"), _input(dtype, data_format)
    want = _layer(dtype, data_format, kernel_parameter=layer.kernel,
                  bias_parameter=layer.bias, backend="numpy")(x)
    whole = gpu.to_host(layer(gpu.xp.asarray(x)))  # a device input: one call, unsliced
    slices = three_slices(monkeypatch, x)
    gpu.log.clear()
    y = layer(x)
    assert type(y) is np.ndarray and y.flags.c_contiguous and y.dtype == dtype
    assert_close(y, want, RTOL[np.dtype(dtype)])
    assert_close(y, whole, RTOL[np.dtype(dtype)])
    assert phases(gpu.log) == pipelined([x[s].nbytes for s in slices],
                                        [y[s].nbytes for s in slices])


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_inputs_take_one_transfer_each_way(gpu, small_pool, dtype):
    layer, x = _layer(dtype, "channels_last", backend="cupy"), _input(dtype, "channels_last")
    gpu.log.clear()
    y = layer(x)  # under PIPELINE_MIN_BYTES
    assert phases(gpu.log) == [("upload", x.nbytes), ("compute", 0), ("download", y.nbytes)]
    assert_close(y, _layer(dtype, "channels_last", kernel_parameter=layer.kernel,
                           bias_parameter=layer.bias, backend="numpy")(x),
                 RTOL[np.dtype(dtype)])


def test_a_custom_activation_sees_the_whole_batch(gpu, small_pool, monkeypatch):
    seen = []

    def activation(y):
        seen.append(y.shape[0])
        return y / abs(y).max()  # not row by row: slices would change the result

    layer = _layer(np.float64, "channels_first", backend="cupy")
    layer.activation = activation
    x = _input(np.float64, "channels_first")
    three_slices(monkeypatch, x)
    y = layer(x)
    assert seen == [BATCH] and type(y) is np.ndarray
    bias = layer.bias.reshape(-1, 1)
    layer.activation, layer.use_bias = None, False
    plain = layer(x)
    assert_close(y, (plain + bias) / abs(plain + bias).max(), RTOL[np.dtype(np.float64)])


@pytest.mark.parametrize("backend", ["numpy", "cupy"])
@pytest.mark.parametrize("to_host", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
def test_the_engine_keeps_the_layout_by_slices(gpu, small_pool, monkeypatch, backend, to_host,
                                               time_major):
    spec = ConvSpec(kernel_support=TAPS, corr=True)
    kernel = RNG.standard_normal((TAPS, C_IN, FILTERS))
    x = RNG.standard_normal((BATCH, C_IN, WIDTH))
    want = Engine(spec, FILTERS, method="fft", backend="numpy")(x, lambda: kernel, None)
    three_slices(monkeypatch, x)
    finished = []

    def finish(y):
        finished.append(y.shape[0])
        return y * 2

    y = Engine(spec, FILTERS, method="fft", backend=backend)(
        x, lambda: kernel, None, time_major=time_major, to_host=to_host, finish=finish)
    sliced = backend == "cupy"
    assert finished == ([1, 2, 2] if sliced else [BATCH])
    assert type(y) is (DeviceArray if sliced and not to_host else np.ndarray)
    memory = y.transpose(0, 2, 1) if time_major else y
    assert memory.flags.c_contiguous
    assert_close(gpu.to_host(y) if type(y) is DeviceArray else y, 2 * want,
                 RTOL[np.dtype(np.float64)])


def test_convolve_on_host_data_runs_by_slices(gpu, small_pool, monkeypatch):
    x, h = RNG.standard_normal((BATCH, 3000)), RNG.standard_normal((1, 65))
    want = fftconv.convolve(x, h, "valid", axes=1)
    slices = three_slices(monkeypatch, x)  # 'valid': the engine's input is `x`
    gpu.log.clear()
    y = fftconv.convolve(x, h, "valid", axes=1, backend="cupy", method="fft")
    assert type(y) is np.ndarray
    assert_close(y, want, RTOL[np.dtype(np.float64)])
    assert phases(gpu.log) == pipelined([x[s].nbytes for s in slices],
                                        [y[s].nbytes for s in slices])


def _backend(gpu) -> CupyBackend:
    return CupyBackend(gpu, 0, max_plans=4, max_plan_bytes=1 << 20)


def test_an_async_upload_is_there_after_its_event_only(gpu, small_pool):
    backend, x = _backend(gpu), RNG.standard_normal((2, 500))  # 2 pieces: no buffer reused
    want = x.copy()
    array, event = backend.to_device_async(x)
    x[...] = 0  # staged at once: the upload holds the call's data
    assert not np.array_equal(gpu.to_host(array), want)  # queued, not run yet
    backend.wait_event(event)
    np.testing.assert_array_equal(gpu.to_host(array), want)
    assert backend.to_device_async(RNG.standard_normal(3))[1] is None  # plain path: ready


def test_async_downloads_share_the_pool_and_keep_the_layout(gpu, small_pool):
    backend = _backend(gpu)
    a, b = RNG.standard_normal((3, 2000)), RNG.standard_normal((3, 1500, 2))
    out_a = np.empty_like(a)
    out_b = np.empty((3, 2, 1500)).transpose(0, 2, 1)  # dense, another memory order
    events = [backend.to_host_async(gpu.xp.asarray(a), out_a),
              backend.to_host_async(gpu.xp.asarray(b), out_b)]  # 24 pieces, 3 buffers
    for event in events:
        event.synchronize()
    np.testing.assert_array_equal(out_a, a)
    np.testing.assert_array_equal(out_b, b)
    assert backend.pinned.nbytes == POOL_BYTES
