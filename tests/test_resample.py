"""`fftconv.resample`: rational resampling on the layer's polyphase path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from fftconv import resample_poly
from fftconv.resample import resample_filter

#: Relative tolerance (to max |y|) against SciPy with the same filter, per dtype.
RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def assert_close(actual, expected, dtype=np.float64):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL[dtype] * scale)


@settings(max_examples=40, deadline=None)
@given(up=st.integers(1, 12), down=st.integers(1, 12), n=st.integers(1, 300),
       channels=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_matches_scipy_resample_poly(up, down, n, channels, seed):
    x = np.random.default_rng(seed).standard_normal((n, channels))
    y = resample_poly(x, up, down)
    assert_close(y, scipy.signal.resample_poly(x, up, down, axis=0))
    assert y.shape == (math.ceil(n * up / down), channels)


@pytest.mark.parametrize(("up", "down"), [(160, 147), (147, 160), (1, 3), (2, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_audio_rates_and_axis(up, down, dtype):
    x = np.random.default_rng(1).standard_normal((3, 2000)).astype(dtype)
    y = resample_poly(x, up, down, axis=-1)
    assert y.dtype == dtype
    assert_close(y, scipy.signal.resample_poly(x.astype(np.float64), up, down, axis=-1), dtype)


def test_other_filter_is_close_to_scipy_on_a_band_limited_signal():
    t = np.arange(4800) / 48000
    x = np.sin(2 * np.pi * 1000 * t) + 0.5 * np.sin(2 * np.pi * 5000 * t)
    y = resample_poly(x, 147, 160, beta=8.6, zero_crossings=16)
    expected = scipy.signal.resample_poly(x, 147, 160)
    assert not np.allclose(y, expected, rtol=0, atol=1e-10)  # a different filter...
    np.testing.assert_allclose(y[50:-50], expected[50:-50], atol=2e-3)  # ...same signal


def test_sine_keeps_frequency_and_amplitude_without_delay():
    rate_in, rate_out, f = 48000, 44100, 997.0
    x = np.sin(2 * np.pi * f * np.arange(48000) / rate_in)
    y = resample_poly(x, rate_out, rate_in)
    assert y.shape == (44100,)
    t = np.arange(y.size) / rate_out
    interior = slice(1000, -1000)  # away from the zero-padded ends
    np.testing.assert_allclose(y[interior], np.sin(2 * np.pi * f * t)[interior], atol=2e-3)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(np.argmax(spectrum) * rate_out / y.size - f) <= 1.0
    assert abs(np.max(np.abs(y[interior])) - 1.0) < 2e-3


def test_factors_are_reduced_by_their_gcd():
    x = np.random.default_rng(2).standard_normal(500)
    np.testing.assert_array_equal(resample_poly(x, 4, 6), resample_poly(x, 2, 3))
    np.testing.assert_array_equal(resample_poly(x, 7, 7), x)
    assert resample_poly(x, 7, 7) is not x


def test_filter_shape_and_gain():
    h = resample_filter(3, 2)
    assert h.shape == (2 * 10 * 3 + 1,)
    np.testing.assert_allclose(h, h[::-1])
    assert np.argmax(h) == h.size // 2
    assert abs(h.sum() - 3) < 1e-2  # gain `up` at DC


def test_empty_channels_and_integer_input():
    assert resample_poly(np.zeros((10, 0)), 3, 2).shape == (15, 0)
    y = resample_poly(np.arange(20), 1, 2)
    assert y.dtype == np.float64 and y.shape == (10,)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"up": 0}, ValueError, "`up`"),
    ({"down": -2}, ValueError, "`down`"),
    ({"up": 1.5}, TypeError, "`up`"),
    ({"axis": 2}, ValueError, "`axis`"),
    ({"axis": "0"}, TypeError, "`axis`"),
    ({"dtype": "int32"}, ValueError, "`dtype`"),
    ({"beta": -1.0}, ValueError, "`beta`"),
    ({"zero_crossings": 0}, ValueError, "`zero_crossings`"),
    ({"method": "magic"}, ValueError, "`method`"),
    ({"x": np.zeros((0, 2))}, ValueError, "at least one sample"),
    ({"x": np.ones(4, dtype=complex)}, TypeError, "`x`"),
])
def test_errors_name_the_argument(kwargs, error, message):
    arguments = {"x": np.ones((8, 2)), "up": 3, "down": 2} | kwargs
    x, up, down = arguments.pop("x"), arguments.pop("up"), arguments.pop("down")
    with pytest.raises(error, match=message):
        resample_poly(x, up, down, **arguments)
