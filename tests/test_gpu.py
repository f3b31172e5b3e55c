"""What needs a real GPU: CuPy's memory pool, cuFFT's plan caches, cuBLAS, devices.

Marked ``gpu``; skipped, with the reason, without CuPy or a CUDA device.  The
golden and property tests run on the GPU too (their ``cupy`` parameters); the
backend's logic is tested everywhere by ``test_cupy_backend.py``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.signal
from devices import cupy_missing
from golden import RTOL, assert_close
from reference import reference_signal_conv1d

import fftconv
from fftconv import tune_gpu
from fftconv.backends import cupy_backend, get_backend
from fftconv.config import load_config
from fftconv.paths.fir import FIR_KERNELS

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(cupy_missing() is not None,
                                 reason=f"no GPU backend here: {cupy_missing()}")]

RNG = np.random.default_rng(5)
F32 = RTOL[np.dtype("float32")]


@pytest.fixture(scope="module")
def cupy():
    return cupy_backend.load_cupy().xp


def _layer(**options):
    options.setdefault("kernel_parameter",
                       RNG.standard_normal((257, 4, 16)).astype(np.float32) / 32)
    return fftconv.SignalConv1D(16, 257, corr=True, padding="same_zeros", **options)


def _input(width=50_000, batch=4, channels=4):
    return RNG.standard_normal((batch, width, channels)).astype(np.float32)


def _synchronize(cupy):
    cupy.cuda.Device().synchronize()


@pytest.mark.parametrize("method", ["fft", "direct-windows", "direct-shifted"])
def test_repeated_calls_leave_the_pool_as_after_the_first(cupy, method):
    pool = cupy.get_default_memory_pool()
    layer = _layer(method=method)
    x = cupy.asarray(_input())
    y = layer(x)  # plans, spectra and operands are made here and kept
    del y
    _synchronize(cupy)
    used = pool.used_bytes()
    for _ in range(20):
        y = layer(x)
        del y
    _synchronize(cupy)
    assert pool.used_bytes() == used


def test_plan_caches_stay_bounded(cupy):
    config = load_config()  # few plans kept, whatever the device's memory
    layer = _layer(method="fft", config=dataclasses.replace(
        config, cupy=dataclasses.replace(config.cupy, max_plans=4)))
    backend = None
    for width in range(20_000, 20_000 + 60 * 3001, 3001):
        x = cupy.asarray(_input(width, batch=1))
        layer(x)
        backend = layer.engine.backend_for(x)
    assert backend.plans.made > len(backend.plans)  # some were dropped ...
    assert len(backend.plans) <= backend.plans.max_plans  # ... to stay within the bounds
    assert backend.plans.nbytes <= backend.plans.max_bytes or len(backend.plans) == 1
    cache = cupy.fft.config.get_plan_cache()
    assert cache.get_curr_size() <= cache.get_size()


def test_results_live_where_inputs_live(cupy):
    x = _input(5000)
    layer = _layer()
    want = layer(x)
    y = layer(cupy.asarray(x))
    assert isinstance(y, cupy.ndarray) and y.device.id == cupy.cuda.Device().id
    assert_close(cupy.asnumpy(y), want, F32)
    on_gpu = _layer(backend="cupy", kernel_parameter=layer.kernel)
    y = on_gpu(x)
    assert type(y) is np.ndarray
    assert_close(y, want, F32)
    assert on_gpu.engine.backend.name == "cupy"


def test_signal_conv1d_on_the_device(cupy):
    x, kernel = _input(8000, channels=3), RNG.standard_normal((33, 3, 8)).astype(np.float32)
    want = fftconv.signal_conv1d(x, kernel, strides_down=4, padding="same_reflect")
    y = fftconv.signal_conv1d(cupy.asarray(x), kernel, strides_down=4, padding="same_reflect")
    assert isinstance(y, cupy.ndarray) and y.dtype == np.float32
    assert_close(cupy.asnumpy(y), want, F32)


@pytest.mark.parametrize("activation", ["relu", "gelu", "sigmoid", "swish", "softplus"])
def test_bias_and_activation_on_the_device(cupy, activation):
    x = _input(3000)
    layer = _layer(use_bias=True, bias_parameter=RNG.standard_normal(16), activation=activation)
    y = layer(cupy.asarray(x))
    assert isinstance(y, cupy.ndarray)
    assert_close(cupy.asnumpy(y), layer(x), F32)


def test_float64_and_channels_first(cupy):
    x = RNG.standard_normal((2, 4, 20_000))
    layer = _layer(dtype="float64", data_format="channels_first", strides_up=3,
                   strides_down=2)
    y = layer(cupy.asarray(x))
    assert y.dtype == np.float64
    assert_close(cupy.asnumpy(y), layer(x), RTOL[np.dtype("float64")])


def test_second_device(cupy):
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("one GPU only")
    layer, x = _layer(), _input(5000)
    with cupy.cuda.Device(1):
        xd = cupy.asarray(x)
    y = layer(xd)
    assert y.device.id == 1
    assert_close(cupy.asnumpy(y), layer(x), F32)


# -- the pieces first built against the stand-in, on the real device -----------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("strides_down", "strides_up", "corr", "padding", "data_format"), [
    (1, 1, True, "same_zeros", "channels_last"), (2, 1, False, "valid", "channels_first"),
    (1, 3, True, "same_reflect", "channels_last"), (3, 2, False, "same_zeros", "channels_first")])
@pytest.mark.parametrize("k", [1, 8, 129])
def test_the_fir_kernel_matches_the_reference(cupy, dtype, strides_down, strides_up, corr,
                                              padding, data_format, k):
    c_in, filters = 2, 3
    x = RNG.standard_normal((2, 3000, c_in))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    kernel = RNG.standard_normal((k, c_in, filters)) / np.sqrt(k * c_in)
    geometry = dict(corr=corr, strides_down=strides_down, strides_up=strides_up,
                    padding=padding, data_format=data_format)
    layer = fftconv.SignalConv1D(filters, k, **geometry, method="direct", dtype=dtype,
                                 kernel_parameter=kernel, backend="cupy")
    y = layer(cupy.asarray(x.astype(dtype)))
    assert layer.plan_for(x.shape).variant == "direct-fir"
    assert isinstance(y, cupy.ndarray) and y.dtype == dtype
    assert_close(cupy.asnumpy(y), reference_signal_conv1d(x, kernel, **geometry),
                 RTOL[np.dtype(dtype)])
    # Kept per device over every case of this process: one kernel per dtype, whatever the taps.
    compiled = {name for _, name in layer.engine.backend._kernels}
    assert FIR_KERNELS[np.dtype(dtype)] in compiled
    assert len(layer.engine.backend._kernels) == len(compiled) <= len(FIR_KERNELS)


@pytest.mark.parametrize("name", ["convolve", "correlate"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_scipy_style_functions_on_the_device(cupy, name, mode):
    in1, in2 = RNG.standard_normal((3, 20_000)), RNG.standard_normal((1, 301))
    function = getattr(fftconv, name)
    y = function(cupy.asarray(in1), cupy.asarray(in2), mode, axes=-1)
    assert isinstance(y, cupy.ndarray) and y.dtype == np.float64
    reversed_in2 = in2 if name == "convolve" else in2[:, ::-1]
    assert_close(cupy.asnumpy(y), scipy.signal.oaconvolve(in1, reversed_in2, mode, axes=-1),
                 RTOL[np.dtype("float64")])


def test_upfirdn_on_the_device(cupy):
    h, x = RNG.standard_normal(64), RNG.standard_normal((2, 5000)).astype(np.float32)
    y = fftconv.upfirdn(cupy.asarray(h), cupy.asarray(x), up=3, down=2)
    assert isinstance(y, cupy.ndarray)
    assert_close(cupy.asnumpy(y), scipy.signal.upfirdn(h, x.astype(np.float64), 3, 2), F32)


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_a_stream_of_device_blocks_matches_one_shot(cupy, backend):
    kernel, x = RNG.standard_normal((300, 2, 3)) / 20, RNG.standard_normal((2, 5000, 2))
    geometry = dict(corr=True, strides_down=2, padding="same_zeros")
    stream = fftconv.StreamingConv1D(kernel, **geometry, partition=64, dtype="float64",
                                     backend=backend)
    blocks = np.split(x, [0, 777, 777, 3001], axis=1)
    outputs = [stream.process(cupy.asarray(b)) for b in blocks] + [stream.flush()]
    assert all(isinstance(y, cupy.ndarray) for y in outputs)
    y = np.concatenate([cupy.asnumpy(y) for y in outputs], axis=1)
    assert_close(y, fftconv.signal_conv1d(x, kernel, **geometry, dtype="float64"),
                 RTOL[np.dtype("float64")])


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_a_large_host_input_runs_by_overlapped_slices(cupy, method):
    x = _input(width=600_000, batch=4)  # 38 MB: batch slices through the pinned pool
    layer = _layer(method=method, backend="cupy", use_bias=True,
                   bias_parameter=RNG.standard_normal(16), activation="relu")
    y = layer(x)
    assert type(y) is np.ndarray
    assert layer.engine.backend.pinned.allocated >= 1
    cpu = _layer(method=method, kernel_parameter=layer.kernel, use_bias=True,
                 bias_parameter=layer.bias, activation="relu")
    assert_close(y, cpu(x), F32)
    assert_close(y, cupy.asnumpy(layer(cupy.asarray(x))), F32)


def test_tune_fits_the_cupy_constants_on_the_device():
    base = load_config()
    result = tune_gpu.tune_cupy(base, get_backend("cupy"), suite="tiny", repeat=1,
                                log=lambda line: None)
    assert result.backend == "cupy" and result.device.startswith("cuda:")
    assert result.timings > result.problems >= 1
    assert all(math.isfinite(stats.worst) for stats in result.regret.values())
    assert (result.config.fft, result.config.direct) == (base.fft, base.direct)  # [cupy] only
