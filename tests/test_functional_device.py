"""`convolve`, `correlate` and `upfirdn` on GPU inputs: computed there, results left there.

NumPy stands in for CuPy (the `gpu` fixture, :mod:`device_standin`).  Each call
must run the engine on an array of the input's device, return a C-contiguous
array of that device, and agree with the same call on numpy inputs and with SciPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from device_standin import DeviceArray, use_device
from golden import RTOL, assert_close

from fftconv.engine import Engine
from fftconv.functional import MODES, convolve, correlate, upfirdn

FUNCTIONS = {"convolve": convolve, "correlate": correlate}
DTYPES = (np.float64, np.float32)
RNG = np.random.default_rng(23)


@pytest.fixture
def seen(monkeypatch):
    """The signals the engine is called on, in order."""
    signals = []
    call = Engine.__call__

    def spy(self, x, *args, **kwargs):
        signals.append(x)
        return call(self, x, *args, **kwargs)

    monkeypatch.setattr(Engine, "__call__", spy)
    return signals


def put(gpu, a: np.ndarray, device: int):
    """`a` as an array of the stand-in's `device`."""
    with use_device(device):
        return gpu.xp.asarray(a)


def on_device(seen: list, device: int, function, *args, **kwargs) -> np.ndarray:
    """``function(*args, **kwargs)``, checked to compute on `device` and leave its result there.

    Returns the result copied to the host.
    """
    seen.clear()
    y = function(*args, **kwargs)
    assert seen and all(type(x) is DeviceArray and x.device.id == device for x in seen)
    assert type(y) is DeviceArray and y.device.id == device, (type(y), device)
    assert y.flags.c_contiguous
    return y.get()


def check(y: np.ndarray, host: np.ndarray, reference: np.ndarray, dtype) -> None:
    """`y` has `dtype` and equals the host call's result and SciPy's float64 `reference`."""
    assert y.dtype == dtype == host.dtype
    assert_close(y, host, RTOL[np.dtype(dtype)])
    assert_close(y, np.asarray(reference, np.float64), RTOL[np.dtype(dtype)])


def scipy_reference(name: str, in1: np.ndarray, in2: np.ndarray, mode: str, axis: int):
    """SciPy's float64 result along `axis`: a correlation convolves with `in2` reversed."""
    in1, in2 = in1.astype(np.float64), in2.astype(np.float64)
    if in1.ndim == 1:
        return getattr(scipy.signal, name)(in1, in2, mode)
    in2 = in2 if name == "convolve" else np.flip(in2, axis)
    return scipy.signal.oaconvolve(in1, in2, mode, axes=axis)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("n1", "m2"), [(41, 8), (8, 41)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("device", "method"), [(0, "direct"), (1, "fft")])
def test_1d_inputs_on_a_device(gpu, seen, name, mode, n1, m2, dtype, device, method):
    in1 = RNG.standard_normal(n1).astype(dtype)
    in2 = RNG.standard_normal(m2).astype(dtype)
    function = FUNCTIONS[name]
    y = on_device(seen, device, function, put(gpu, in1, device), put(gpu, in2, device), mode,
                  method=method)
    check(y, function(in1, in2, mode, method=method), scipy_reference(name, in1, in2, mode, 0),
          dtype)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape1", "shape2", "axis"), [
    ((2, 3, 50, 1), (1, 3, 9, 4), 2),  # batch, channels and filters around the axis
    ((60, 3), (7, 3), 0),  # time-major channels
    ((2, 9), (2, 70), -1),  # in2 the longer
])
@pytest.mark.parametrize(("dtype", "backend"), [(np.float64, "auto"), (np.float32, "cupy")])
def test_nd_inputs_on_a_device(gpu, seen, name, mode, shape1, shape2, axis, dtype, backend):
    in1 = RNG.standard_normal(shape1).astype(dtype)
    in2 = RNG.standard_normal(shape2).astype(dtype)
    function = FUNCTIONS[name]
    y = on_device(seen, 1, function, put(gpu, in1, 1), put(gpu, in2, 1), mode, axes=axis,
                  backend=backend)
    check(y, function(in1, in2, mode, axes=axis),
          scipy_reference(name, in1, in2, mode, axis % in1.ndim), dtype)


@pytest.mark.parametrize(("up", "down"), [(1, 1), (3, 1), (1, 4), (3, 2)])
@pytest.mark.parametrize(("shape", "axis"), [((3, 50), -1), ((50, 3), 0)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_upfirdn_on_a_device(gpu, seen, up, down, shape, axis, dtype):
    h = RNG.standard_normal(12).astype(dtype)
    x = RNG.standard_normal(shape).astype(dtype)
    y = on_device(seen, 1, upfirdn, put(gpu, h, 1), put(gpu, x, 1), up, down, axis)
    check(y, upfirdn(h, x, up, down, axis),
          scipy.signal.upfirdn(h.astype(np.float64), x.astype(np.float64), up, down, axis),
          dtype)


@pytest.mark.parametrize("on_gpu", ["in1", "in2"])
@pytest.mark.parametrize(("n1", "m2"), [(60, 9), (9, 60)])
def test_a_host_input_joins_the_device_input(gpu, seen, on_gpu, n1, m2):
    inputs = {"in1": RNG.standard_normal(n1), "in2": RNG.standard_normal(m2)}
    placed = inputs | {on_gpu: put(gpu, inputs[on_gpu], 1)}
    for name, function in FUNCTIONS.items():
        for mode in MODES:
            y = on_device(seen, 1, function, placed["in1"], placed["in2"], mode)
            check(y, function(inputs["in1"], inputs["in2"], mode),
                  scipy_reference(name, inputs["in1"], inputs["in2"], mode, 0), np.float64)


@pytest.mark.parametrize("on_gpu", ["h", "x"])
def test_upfirdn_with_one_input_on_the_device(gpu, seen, on_gpu):
    inputs = {"h": RNG.standard_normal(10), "x": RNG.standard_normal((2, 80))}
    placed = inputs | {on_gpu: put(gpu, inputs[on_gpu], 1)}
    y = on_device(seen, 1, upfirdn, placed["h"], placed["x"], 2, 3)
    check(y, upfirdn(inputs["h"], inputs["x"], 2, 3),
          scipy.signal.upfirdn(inputs["h"], inputs["x"], 2, 3), np.float64)


def test_empty_results_are_device_arrays(gpu):
    x = put(gpu, np.ones((0, 5), np.float32), 1)
    for y, shape in ((convolve(x, put(gpu, np.ones((1, 3), np.float32), 1), axes=1), (0, 7)),
                     (correlate(x, np.ones((1, 3)), "same", axes=1), (0, 5)),
                     (upfirdn(np.ones(2), x, 2), (0, 10))):
        assert type(y) is DeviceArray and y.device.id == 1
        assert y.shape == shape
    assert convolve(x, put(gpu, np.ones((1, 3), np.float32), 1), axes=1).dtype == np.float32


@pytest.mark.parametrize("function", [convolve, correlate, upfirdn])
@pytest.mark.parametrize("backend", ["numpy", "pyfftw"])
def test_a_cpu_backend_refuses_a_device_input(gpu, function, backend):
    argument = "x" if function is upfirdn else "in2"
    with pytest.raises(TypeError, match=rf"`{argument}` is an array on a GPU.*"
                                        rf"backend='{backend}'.*'auto' or 'cupy'"):
        function(np.ones(3), put(gpu, np.ones(20), 0), backend=backend)


@pytest.mark.parametrize("function", [convolve, correlate, upfirdn])
def test_inputs_on_two_devices_are_refused(gpu, function):
    with pytest.raises(ValueError, match=r"`(in1|h)` is on GPU cuda:0 and `(in2|x)` on GPU "
                                         r"cuda:1"):
        function(put(gpu, np.ones(3), 0), put(gpu, np.ones(20), 1))
