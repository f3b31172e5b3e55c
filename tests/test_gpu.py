"""What needs a real GPU: CuPy's memory pool, cuFFT's plan caches, cuBLAS, devices.

Marked ``gpu``; skipped, with the reason, without CuPy or a CUDA device.  The
golden and property tests run on the GPU too (their ``cupy`` parameters); the
backend's logic is tested everywhere by ``test_cupy_backend.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from devices import cupy_missing
from golden import RTOL, assert_close

import fftconv
from fftconv.backends import cupy_backend

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
    layer = _layer(method="fft")
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
