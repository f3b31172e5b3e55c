"""Rational resampling through fftconv's own polyphase path.

:func:`resample_poly` is ``scipy.signal.resample_poly`` done with
:func:`fftconv.signal_conv1d`: upsample by `up` (zero insertion), low-pass with a
Kaiser-windowed sinc, downsample by `down`, all in one strided convolution
(``strides_up=up``, ``strides_down=down``) that the engine reduces to its
polyphase components.  The kernel has an odd length and is centred, so with
``same_zeros`` padding the output is not delayed: output sample ``n`` is at time
``n * down / up`` input samples.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from fftconv._arrays import as_real_array
from fftconv.layer import signal_conv1d
from fftconv.spec import positive_int

#: Kaiser window shape parameter of the default filter (as in SciPy's resample_poly).
DEFAULT_BETA = 5.0
#: Sinc zero crossings on each side of the centre, in units of the lower rate.
DEFAULT_ZERO_CROSSINGS = 10


def resample_filter(up: int, down: int, *, beta: float = DEFAULT_BETA,
                    zero_crossings: int = DEFAULT_ZERO_CROSSINGS,
                    dtype: Any = "float64") -> np.ndarray:
    """Design the low-pass kernel :func:`resample_poly` uses for `up` / `down`.

    A windowed sinc (``scipy.signal.firwin`` with a Kaiser window) with its
    cut-off at the lower of the two Nyquist frequencies and a gain of `up`, so
    that the zero-stuffed signal keeps its amplitude.  `up` and `down` are used
    as given (reduce them first).

    Parameters
    ----------
    up, down : int
        Upsampling and downsampling factors (>= 1).
    beta : float
        Kaiser window shape: larger means more stop-band attenuation and a wider
        transition band (5.0 gives about 55 dB, 8.6 about 86 dB).
    zero_crossings : int
        Half-length of the kernel in zero crossings of the sinc; the kernel has
        ``2 * zero_crossings * max(up, down) + 1`` taps.
    dtype : {'float32', 'float64'}

    Returns
    -------
    ndarray, shape (2 * zero_crossings * max(up, down) + 1,)
        Symmetric, odd length, centred on its middle tap; ``[1.0]`` for
        ``up == down == 1``.
    """
    up = positive_int(up, "up")
    down = positive_int(down, "down")
    beta = _finite_float(beta, "beta", minimum=0.0)
    zero_crossings = positive_int(zero_crossings, "zero_crossings")
    rate = max(up, down)
    if rate == 1:  # nothing to suppress: the identity
        return np.ones(1, dtype=dtype)
    # Imported here: scipy.signal takes longer to import than the rest of fftconv.
    from scipy.signal import firwin

    taps = firwin(2 * zero_crossings * rate + 1, 1.0 / rate,
                               window=("kaiser", beta))
    return (taps * up).astype(dtype)


def resample_poly(x: Any, up: int, down: int, *, axis: int = 0,
                  beta: float = DEFAULT_BETA, zero_crossings: int = DEFAULT_ZERO_CROSSINGS,
                  dtype: Any = None, method: str = "auto", backend: str = "auto") -> np.ndarray:
    """Resample `x` by the rational factor ``up / down`` along `axis`.

    The polyphase filter runs on fftconv's engine (a ``SignalConv1D`` with
    ``strides_up=up``, ``strides_down=down``, ``padding='same_zeros'`` and
    the kernel of :func:`resample_filter`); every other axis is an independent
    channel.  `up` and `down` are first divided by their greatest common
    divisor.  With the default filter the result matches
    ``scipy.signal.resample_poly(x, up, down, axis=axis)`` to rounding error;
    other `beta` / `zero_crossings` values change the filter only.

    Parameters
    ----------
    x : array_like, shape (..., n, ...)
        Real samples, `n` (>= 1) along `axis`.
    up, down : int
        Positive resampling factors.
    axis : int
        Time axis of `x`.
    beta, zero_crossings
        Filter design; see :func:`resample_filter`.
    dtype : {None, 'float32', 'float64'}
        Computation and output dtype; None means float32 for float32 input and
        float64 otherwise.
    method : {'auto', 'direct', 'fft'}
    backend : {'auto', 'numpy', 'pyfftw'}
        Engine options, as for :class:`fftconv.SignalConv1D`.

    Returns
    -------
    ndarray, shape (..., ceil(n * up / down), ...)
        The resampled signal, with `axis` in its place.  Output sample ``m`` is
        at input time ``m * down / up`` (no delay).

    Raises
    ------
    TypeError
        If `x` is not real numeric data, or `up`, `down`, `axis` are not integers.
    ValueError
        If `up` or `down` < 1, `axis` is out of range, `x` is empty along
        `axis`, or `dtype` is not float32 or float64.
    """
    array = np.asarray(x)
    if dtype is None:
        dtype = np.float32 if array.dtype == np.float32 else np.float64
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must be None, 'float32' or 'float64', got {dtype!r}.") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"`dtype` must be None, 'float32' or 'float64', got {dtype!r}.")
    array = as_real_array(array, "x", dtype)
    up = positive_int(up, "up")
    down = positive_int(down, "down")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an integer, got {axis!r}.")
    if array.ndim == 0 or not -array.ndim <= axis < array.ndim:
        raise ValueError(f"`axis` must be in [-{array.ndim}, {array.ndim}) for `x` of shape "
                         f"{array.shape}, got {axis}.")
    if array.shape[axis] == 0:
        raise ValueError(f"`x` must have at least one sample along axis {axis}, "
                         f"got shape {array.shape}.")
    divisor = math.gcd(up, down)
    up, down = up // divisor, down // divisor
    kernel = resample_filter(up, down, beta=beta, zero_crossings=zero_crossings, dtype=dtype)
    if up == down == 1:  # the filter is a unit impulse
        return array.copy()
    moved = np.moveaxis(array, axis, -1)
    lead = moved.shape[:-1]
    channels = math.prod(lead)
    if channels == 0:
        width = -(-moved.shape[-1] * up // down)
        return np.moveaxis(np.zeros((*lead, width), dtype=dtype), -1, axis)
    # (width, channels) as one batch, channels last: one separable filter per channel.
    x3 = moved.reshape(channels, moved.shape[-1]).T[None]
    taps = np.broadcast_to(kernel[:, None, None], (kernel.size, channels, 1))
    y = signal_conv1d(
        x3, taps, strides_up=up, strides_down=down, padding="same_zeros", extra_pad_end=True,
        channel_separable=True, dtype=dtype.name, method=method, backend=backend)
    out = y[0].T.reshape(*lead, y.shape[1])
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def _finite_float(value: Any, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "finite" if minimum is None else f"finite and >= {minimum}"
        raise ValueError(f"`{name}` must be {bound}, got {value!r}.")
    return value
