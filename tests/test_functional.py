"""`fftconv.functional`: convolve, correlate and upfirdn against SciPy, on the engine."""

from __future__ import annotations

import doctest
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.signal
from golden import RTOL, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import fftconv.engine
import fftconv.paths.fft
from fftconv import functional, signal_conv1d
from fftconv.functional import convolve, correlate, upfirdn
from fftconv.reduction import Polyphase

FUNCTIONS = {"convolve": convolve, "correlate": correlate}
METHODS = ("direct", "fft", "auto")
BACKENDS = ("numpy", "pyfftw")
DTYPES = (np.float64, np.float32)


def check(actual: np.ndarray, expected: np.ndarray, dtype) -> None:
    """`actual` has `dtype` and matches the float64 `expected` to that dtype's tolerance."""
    assert actual.dtype == dtype
    assert actual.flags.c_contiguous
    assert_close(actual, np.asarray(expected, dtype=np.float64), RTOL[np.dtype(dtype)])


def scipy_correlate_nd(in1, in2, mode, axis):
    """SciPy's correlation along one axis: a convolution with `in2` reversed there."""
    return scipy.signal.oaconvolve(in1, np.flip(in2, axis), mode, axes=axis)


def layout(a: np.ndarray, how: str) -> np.ndarray:
    """`a` with the same values in another memory layout."""
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "reversed":  # negative strides on every axis
        return np.flip(np.flip(a).copy())
    return a


# -- property tests against SciPy ------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(name=st.sampled_from(sorted(FUNCTIONS)), mode=st.sampled_from(functional.MODES),
       n1=st.one_of(st.integers(1, 12), st.integers(13, 200)),
       m2=st.one_of(st.integers(1, 12), st.integers(13, 200)),
       dtype=st.sampled_from(DTYPES), method=st.sampled_from(METHODS),
       backend=st.sampled_from(BACKENDS), seed=st.integers(0, 2**32 - 1))
def test_1d_matches_scipy(name, mode, n1, m2, dtype, method, backend, seed):
    rng = np.random.default_rng(seed)
    in1 = rng.standard_normal(n1).astype(dtype)
    in2 = rng.standard_normal(m2).astype(dtype)
    y = FUNCTIONS[name](in1, in2, mode, method=method, backend=backend)
    reference = getattr(scipy.signal, name)
    check(y, reference(in1.astype(np.float64), in2.astype(np.float64), mode), dtype)


@st.composite
def nd_cases(draw):
    """Two arrays of equal rank that broadcast on every axis but a random one."""
    ndim = draw(st.integers(1, 4))
    axis = draw(st.integers(0, ndim - 1))
    shape1, shape2 = [], []
    for i in range(ndim):
        if i == axis:
            shape1.append(draw(st.one_of(st.integers(1, 10), st.integers(11, 80))))
            shape2.append(draw(st.one_of(st.integers(1, 10), st.integers(11, 80))))
        else:
            n = draw(st.integers(2, 3))
            # Both vary (channels), only in1 (batch), only in2 (filters), neither.
            a, b = draw(st.sampled_from([(n, n), (n, 1), (1, n), (1, 1)]))
            shape1.append(a)
            shape2.append(b)
    spelling = draw(st.sampled_from(["int", "negative", "list", "tuple", "array"]))
    axes = {"int": axis, "negative": axis - ndim, "list": [axis], "tuple": (axis,),
            "array": np.array([axis])}[spelling]
    return tuple(shape1), tuple(shape2), axis, axes


@settings(max_examples=120, deadline=None)
@given(case=nd_cases(), name=st.sampled_from(sorted(FUNCTIONS)),
       mode=st.sampled_from(functional.MODES), dtype=st.sampled_from(DTYPES),
       method=st.sampled_from(METHODS), backend=st.sampled_from(BACKENDS),
       how=st.sampled_from(["C", "fortran", "reversed"]), seed=st.integers(0, 2**32 - 1))
def test_nd_matches_oaconvolve(case, name, mode, dtype, method, backend, how, seed):
    shape1, shape2, axis, axes = case
    rng = np.random.default_rng(seed)
    in1 = rng.standard_normal(shape1).astype(dtype)
    in2 = rng.standard_normal(shape2).astype(dtype)
    y = FUNCTIONS[name](layout(in1, how), layout(in2, how), mode, axes, method=method,
                        backend=backend)
    reference = scipy.signal.oaconvolve if name == "convolve" else scipy_correlate_nd
    check(y, reference(in1.astype(np.float64), in2.astype(np.float64), mode, axis), dtype)


@st.composite
def upfirdn_cases(draw):
    """A signal of rank 1-3, a 1-D filter or one filter per channel, and the factors."""
    ndim = draw(st.integers(1, 3))
    axis = draw(st.integers(0, ndim - 1))
    x_shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    x_shape[axis] = draw(st.one_of(st.integers(1, 20), st.integers(21, 300)))
    taps = draw(st.one_of(st.integers(1, 12), st.integers(13, 120)))
    if draw(st.booleans()):
        h_shape = [taps]
    else:  # per channel: each other axis of h has x's length or 1 (or x has 1)
        h_shape = [taps if i == axis else draw(st.sampled_from([n, 1] if n > 1 else [1, 2]))
                   for i, n in enumerate(x_shape)]
    up = draw(st.one_of(st.integers(1, 4), st.integers(5, 12)))
    down = draw(st.one_of(st.integers(1, 4), st.integers(5, 12)))
    spelling = draw(st.booleans())
    return tuple(h_shape), tuple(x_shape), up, down, axis, axis - ndim if spelling else axis


def upfirdn_reference(h, x, up, down, axis):
    """``scipy.signal.upfirdn`` for a 1-D `h`; slice by slice for one filter per channel."""
    if h.ndim == 1:
        return scipy.signal.upfirdn(h, x, up, down, axis=axis)
    hm, xm = np.moveaxis(h, axis, -1), np.moveaxis(x, axis, -1)
    lead = np.broadcast_shapes(hm.shape[:-1], xm.shape[:-1])
    hb = np.broadcast_to(hm, lead + hm.shape[-1:])
    xb = np.broadcast_to(xm, lead + xm.shape[-1:])
    out = np.stack([scipy.signal.upfirdn(hb[i], xb[i], up, down) for i in np.ndindex(lead)])
    return np.moveaxis(out.reshape(lead + out.shape[-1:]), -1, axis)


@settings(max_examples=120, deadline=None)
@given(case=upfirdn_cases(), dtype=st.sampled_from(DTYPES), method=st.sampled_from(METHODS),
       backend=st.sampled_from(BACKENDS), seed=st.integers(0, 2**32 - 1))
def test_upfirdn_matches_scipy(case, dtype, method, backend, seed):
    h_shape, x_shape, up, down, axis, spelling = case
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(h_shape).astype(dtype)
    x = rng.standard_normal(x_shape).astype(dtype)
    y = upfirdn(h, x, up, down, spelling, method=method, backend=backend)
    n, k = x_shape[axis], h_shape[-1 if len(h_shape) == 1 else axis]
    assert y.shape[axis] == ((n - 1) * up + k - 1) // down + 1
    check(y, upfirdn_reference(h.astype(np.float64), x.astype(np.float64), up, down, axis),
          dtype)


# -- semantics ------------------------------------------------------------------------------


def test_docstring_examples():
    result = doctest.testmod(functional, raise_on_error=False)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize("k", [4, 5, 6])
def test_same_centring_against_the_layer(k):
    rng = np.random.default_rng(k)
    x, h = rng.standard_normal(40), rng.standard_normal(k)
    layer_conv = signal_conv1d(x[None, :, None], h[:, None, None], padding="same_zeros",
                               dtype="float64")[0, :, 0]
    layer_corr = signal_conv1d(x[None, :, None], h[:, None, None], corr=True,
                               padding="same_zeros", dtype="float64")[0, :, 0]
    z = np.convolve(x, h)
    np.testing.assert_allclose(convolve(x, h, "same"), z[(k - 1) // 2:][:40], atol=1e-12)
    np.testing.assert_allclose(layer_conv, z[k // 2:][:40], atol=1e-12)  # tfc: K // 2
    if k % 2 == 0:  # one sample ahead of SciPy's centre
        np.testing.assert_allclose(layer_conv[:-1], convolve(x, h, "same")[1:], atol=1e-12)
    else:
        np.testing.assert_allclose(layer_conv, convolve(x, h, "same"), atol=1e-12)
    np.testing.assert_allclose(layer_corr, correlate(x, h, "same"), atol=1e-12)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_valid_with_the_longer_in2(name):
    rng = np.random.default_rng(3)
    short, long = rng.standard_normal(5), rng.standard_normal(17)
    y = FUNCTIONS[name](short, long, "valid")
    assert y.shape == (13,)
    check(y, getattr(scipy.signal, name)(short, long, "valid"), np.float64)
    if name == "correlate":  # the swapped correlation, reversed
        np.testing.assert_allclose(y, correlate(long, short, "valid")[::-1], atol=1e-12)
    else:
        np.testing.assert_allclose(y, convolve(long, short, "valid"), atol=1e-12)


def test_same_keeps_the_shape_of_in1_on_broadcast_axes():
    rng = np.random.default_rng(4)
    in1, in2 = rng.standard_normal((1, 30)), rng.standard_normal((5, 6))
    y = convolve(in1, in2, "same", axes=1)
    assert y.shape == (1, 30)  # SciPy keeps the middle row, in2[2]
    check(y, scipy.signal.oaconvolve(in1, in2, "same", axes=1), np.float64)
    check(y, convolve(in1, in2[2:3], "same", axes=1), np.float64)
    assert convolve(in1, in2, "full", axes=1).shape == (5, 35)


def test_length_one_axes_behave_as_convolutions():
    rng = np.random.default_rng(5)
    x, h = rng.standard_normal((3, 1)), rng.standard_normal((3, 4))
    for mode in functional.MODES:
        check(convolve(x, h, mode, axes=1), scipy.signal.oaconvolve(x, h, mode, axes=1),
              np.float64)


@pytest.mark.parametrize(("in1", "in2", "expected"), [
    (np.float32, np.float32, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.int16, np.float32, np.float64),
    (np.int64, np.int64, np.float64),
    (np.bool_, np.float32, np.float64),
    (np.float16, np.float16, np.float64),
    (np.dtype(">f4"), np.float32, np.float32),
])
def test_dtype_rules(in1, in2, expected):
    a = np.arange(1, 9).astype(in1)
    b = np.array([1, 0, 1]).astype(in2)
    for y in (convolve(a, b), correlate(a, b, "same"), upfirdn(b, a, 2, 3)):
        assert y.dtype == expected
    np.testing.assert_allclose(convolve(a, b), np.convolve(a.astype(float), b.astype(float)),
                               atol=1e-5)
    assert convolve([1, 2], [3]).dtype == np.float64  # lists of ints


def test_upfirdn_one_filter_per_row():
    rng = np.random.default_rng(6)
    x, h = rng.standard_normal((3, 50)), rng.standard_normal((3, 7))
    y = upfirdn(h, x, 3, 2)
    for c in range(3):
        np.testing.assert_allclose(y[c], scipy.signal.upfirdn(h[c], x[c], 3, 2), atol=1e-12)
    # Channels along axis 1 of a (batch, channels, time) signal; time on axis 0 of (time, C).
    xb = rng.standard_normal((2, 3, 50))
    check(upfirdn(h[None], xb, 3, 2), np.stack([upfirdn(h, xi, 3, 2) for xi in xb]),
          np.float64)
    check(upfirdn(h.T, x.T, 3, 2, axis=0), y.T, np.float64)


def test_empty_batch_axes_give_empty_results():
    assert convolve(np.ones((0, 5)), np.ones((1, 3)), axes=1).shape == (0, 7)
    assert correlate(np.ones((4, 0, 5)), np.ones((1, 1, 3)), "valid", axes=-1).shape == (4, 0, 3)
    assert convolve(np.ones((0, 5)), np.ones((1, 3)), "same", axes=1).dtype == np.float64
    assert upfirdn([1.0, 2.0], np.ones((0, 5), np.float32), 2).shape == (0, 10)
    assert upfirdn([1.0, 2.0], np.ones((0, 5), np.float32), 2).dtype == np.float64


def test_threads_share_engines():
    rng = np.random.default_rng(7)
    x = rng.standard_normal(3000)
    kernels = [rng.standard_normal(33) for _ in range(6)]

    def run(i):
        return convolve(x, kernels[i % 6], "same", method="fft")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(24)))
    for i, y in enumerate(results):
        check(y, scipy.signal.convolve(x, kernels[i % 6], "same"), np.float64)


# -- mapping onto the engine ---------------------------------------------------------------


@pytest.fixture
def counts(monkeypatch):
    """Count kernel transforms: phase kernels (both paths) and their FFT spectra."""
    functional._ENGINES.clear()
    counted = {"phase": 0, "spectra": 0}
    phase_kernels, kernel_spectra = Polyphase.phase_kernels, fftconv.paths.fft.kernel_spectra

    def counting_phase_kernels(self, kernel):
        counted["phase"] += 1
        return phase_kernels(self, kernel)

    def counting_spectra(*args, **kwargs):
        counted["spectra"] += 1
        return kernel_spectra(*args, **kwargs)

    monkeypatch.setattr(Polyphase, "phase_kernels", counting_phase_kernels)
    monkeypatch.setattr(fftconv.paths.fft, "kernel_spectra", counting_spectra)
    yield counted
    functional._ENGINES.clear()


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_equal_kernels_reuse_their_spectra(counts, method):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 2000))
    h = rng.standard_normal((1, 65))
    first = convolve(x, h, "same", axes=1, method=method)
    after_first = dict(counts)
    assert after_first["phase"] == 1
    assert after_first["spectra"] == (method == "fft")
    # An equal kernel in another object (a list): no new transform.
    again = convolve(x, h.tolist(), "same", axes=1, method=method)
    assert counts == after_first
    np.testing.assert_array_equal(first, again)
    # A new input length needs a new plan, maybe a new FFT length, but no new phase kernels.
    convolve(x[:, :1500], h, "same", axes=1, method=method)
    assert counts["phase"] == 1
    # Another kernel of the same geometry is transformed, and both stay cached.
    convolve(x, h * 2, "same", axes=1, method=method)
    assert counts["phase"] == 2
    convolve(x, h, "same", axes=1, method=method)
    convolve(x, h * 2, "same", axes=1, method=method)
    assert counts["phase"] == 2
    first_engine, second_engine = functional._ENGINES._engines.values()
    assert first_engine.plans_made == 2  # one per input shape
    assert second_engine.plans_made == 1


def test_upfirdn_and_correlate_reuse_spectra(counts):
    rng = np.random.default_rng(9)
    x, h = rng.standard_normal(5000), rng.standard_normal(101)
    for _ in range(3):
        upfirdn(h, x, 3, 2, method="fft")
        correlate(x, h, "full", method="fft")
    assert counts == {"phase": 2, "spectra": 2}
    assert len(functional._ENGINES) == 2


def test_engine_cache_is_bounded_and_least_recently_used():
    functional._ENGINES.clear()
    x = np.ones(50)
    convolve(x, np.ones(1))
    for k in range(2, functional.CACHE_SIZE + 5):
        convolve(x, np.ones(k))
        convolve(x, np.ones(1))  # keep the first geometry in use
    assert len(functional._ENGINES) == functional.CACHE_SIZE
    kept = {spec.kernel_support for spec, *_ in functional._ENGINES._engines}
    assert 1 in kept and 2 not in kept
    functional._ENGINES.clear()


@pytest.mark.parametrize(("x_shape", "h_shape", "expected"), [
    # (batch, groups, Ci, Co) of the corr_valid problem.
    ((6, 200), (1, 9), (6, 1, 1, 1)),  # kernel shared: batch
    ((6, 200), (6, 9), (1, 6, 1, 1)),  # one kernel per row: separable channels
    ((1, 200), (6, 9), (1, 1, 1, 6)),  # one signal, six kernels: filters
    ((2, 3, 200, 1), (1, 3, 9, 4), (2, 3, 1, 4)),
])
def test_axes_map_to_batch_channels_and_filters(x_shape, h_shape, expected):
    functional._ENGINES.clear()
    axis = x_shape.index(200)
    convolve(np.ones(x_shape), np.ones(h_shape), "full", axes=axis)
    (engine,) = functional._ENGINES._engines.values()
    (plan,) = engine._plans.values()
    p = plan.problem
    assert engine.spec.channel_separable and engine.spec.corr
    assert (p.batch, p.groups, p.in_channels, p.out_channels) == expected
    functional._ENGINES.clear()


@pytest.mark.parametrize(("mode", "copied"), [("valid", False), ("same", True), ("full", True)])
def test_valid_runs_on_the_input_itself(monkeypatch, mode, copied):
    seen = []
    call = fftconv.engine.Engine.__call__

    def spy(self, x, *args, **kwargs):
        seen.append((self.spec, x))
        return call(self, x, *args, **kwargs)

    monkeypatch.setattr(fftconv.engine.Engine, "__call__", spy)
    signal = np.ones((3, 100))
    convolve(signal, np.ones((1, 8)), mode, axes=1)
    ((spec, x),) = seen
    assert spec.padding == "valid" and spec.corr and spec.channel_separable
    assert np.shares_memory(x, signal) != copied


def test_upfirdn_runs_strided():
    functional._ENGINES.clear()
    upfirdn(np.ones(30), np.ones(100), 3, 4)
    (engine,) = functional._ENGINES._engines.values()
    assert (engine.spec.strides_up, engine.spec.strides_down) == (3, 4)
    functional._ENGINES.clear()


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"mode": "circular"}, ValueError, "`mode`"),
    ({"mode": None}, TypeError, "`mode`"),
    ({"mode": "Full"}, ValueError, "`mode`"),
    ({"in1": np.ones((3, 8))}, ValueError, "same number of dimensions"),
    ({"in1": np.ones((3, 8)), "in2": np.ones((3, 2))}, ValueError, "`axes` must be given"),
    ({"axes": (0, 1)}, ValueError, "exactly one axis"),
    ({"axes": []}, ValueError, "exactly one axis"),
    ({"axes": 1}, ValueError, "`axes`"),
    ({"axes": -2}, ValueError, "`axes`"),
    ({"axes": 0.0}, TypeError, "`axes`"),
    ({"axes": "0"}, TypeError, "`axes`"),
    ({"axes": True}, TypeError, "`axes`"),
    ({"in1": np.float64(1.0), "in2": np.float64(2.0)}, ValueError, "at least one dimension"),
    ({"in1": np.ones((3, 8)), "in2": np.ones((2, 3)), "axes": 1}, ValueError, "axis 0"),
    ({"in1": np.ones(0)}, ValueError, "at least one sample"),
    ({"in2": np.ones(0)}, ValueError, "at least one sample"),
    ({"in1": np.ones(4, dtype=complex)}, TypeError, "`in1`"),
    ({"in2": np.ones(4, dtype=complex)}, TypeError, "`in2`"),
    ({"in1": ["a", "b"]}, TypeError, "`in1`"),
    ({"in2": [[1.0], [1.0, 2.0]]}, TypeError, "`in2`"),
    ({"method": "fast"}, ValueError, "`method`"),
    ({"backend": "cufft"}, ValueError, "`backend`"),
])
def test_convolution_errors_name_the_argument(name, kwargs, error, message):
    arguments = {"in1": np.ones(8), "in2": np.ones(3)} | kwargs
    with pytest.raises(error, match=message):
        FUNCTIONS[name](**arguments)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"up": 0}, ValueError, "`up`"),
    ({"down": -1}, ValueError, "`down`"),
    ({"up": 1.5}, TypeError, "`up`"),
    ({"down": 2.0}, TypeError, "`down`"),
    ({"up": True}, TypeError, "`up`"),
    ({"axis": 2}, ValueError, "`axis`"),
    ({"axis": None}, TypeError, "`axis`"),
    ({"h": []}, ValueError, "at least one tap"),
    ({"h": np.ones((2, 1, 3))}, ValueError, "`h` must be 1-D"),
    ({"h": np.ones((3, 4))}, ValueError, "axis 0"),
    ({"x": np.ones((2, 0))}, ValueError, "at least one sample"),
    ({"x": np.float64(1.0)}, ValueError, "at least one dimension"),
    ({"x": np.ones(4, dtype=complex)}, TypeError, "`x`"),
    ({"h": np.ones(4, dtype=complex)}, TypeError, "`h`"),
    ({"method": "fast"}, ValueError, "`method`"),
    ({"backend": "cufft"}, ValueError, "`backend`"),
])
def test_upfirdn_errors_name_the_argument(kwargs, error, message):
    arguments = {"h": np.ones(3), "x": np.ones((2, 10))} | kwargs
    with pytest.raises(error, match=message):
        upfirdn(**arguments)


def test_error_messages_give_the_allowed_values():
    with pytest.raises(ValueError, match=r"\('full', 'same', 'valid'\)"):
        convolve([1.0], [1.0], mode="circular")
    with pytest.raises(ValueError, match=r"pass axes=k"):
        correlate(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r">= 1, got 0"):
        upfirdn([1.0], [1.0], down=0)
