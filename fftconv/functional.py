"""SciPy-style functions on fftconv's engine: `convolve`, `correlate`, `upfirdn`.

Each function maps its problem onto one run of :class:`fftconv.engine.Engine`
for a :class:`~fftconv.spec.ConvSpec` geometry, so the planner chooses the
direct or the FFT path and the kernel's phase kernels and spectra are cached:

* the *signal* is the longer input along the axis (``in1`` on a tie), the
  *kernel* the other one, read as a correlation kernel (reversed for a
  convolution) by a channel-separable spec with ``corr=True``;
* every other axis is sorted by which input varies along it: only the signal
  (the batch: one kernel shared), both (the channels of the separable layer,
  each filtered by its own kernel), or only the kernel (the filters of each
  channel: one signal, several kernels).  A dense, mostly-zero kernel is never
  built and a signal is never copied per kernel;
* the window of the full result that the mode asks for is the engine's
  ``'valid'`` correlation of the signal zero-padded (or cropped) at its ends:
  ``'valid'`` passes the signal itself; ``'full'``, ``'same'`` and `upfirdn`
  copy it once into a per-thread buffer that is reused (see
  :mod:`fftconv._scratch`; it keeps the size of the largest recent call; on a
  GPU, a block of its memory pool).  The
  engine's ``'same_zeros'`` extension gives ``'same'`` too, but into a new
  array per call, about 2x slower for inputs of a few MB whose fresh pages
  fault in.  `upfirdn` uses ``strides_up`` / ``strides_down``, so the
  polyphase reduction skips the inserted zeros and the discarded outputs.

A GPU (CuPy) input is computed on its device and the result is an array of
that device: the signal stays there (a host signal with a GPU kernel is moved
there), the kernel is read on the host, where it is hashed and its phase
kernels are built.  Host inputs give numpy results, also with
``backend='cupy'``, which computes on the current GPU.

Engines are cached by geometry (at most :data:`CACHE_SIZE`, least recently
used dropped) and the kernel passed as its content hash, so calls with an equal
kernel reuse its spectra; alternating between two kernels of the same geometry
recomputes them.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from fftconv._arrays import as_real_array
from fftconv._scratch import scratch
from fftconv.backends import Backend, backend_for
from fftconv.backends.cupy_backend import modules_of
from fftconv.config import load_config
from fftconv.engine import Engine, backend_options, check_backend, check_method, check_planning
from fftconv.spec import ConvSpec

__all__ = ["convolve", "correlate", "upfirdn"]

MODES = ("full", "same", "valid")
#: Engines (geometry and kernel pairs) kept between calls.
CACHE_SIZE = 16


class _EngineCache:
    """A bounded, thread-safe, least-recently-used map from (geometry, kernel) to
    :class:`Engine`.

    Keyed by the kernel's content hash too, so that alternating kernels of one
    geometry (a filter bank applied row by row) each keep their spectra.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._engines: OrderedDict[tuple, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: ConvSpec, filters: int, dtype: np.dtype, method: str,
            backend: str, token: Hashable, planning: str | None = None) -> Engine:
        config = load_config(None)  # follows $FFTCONV_CONFIG between calls
        key = (spec, filters, dtype.str, method, backend, config, planning, token)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = Engine(spec, filters, method, backend, config, planning=planning)
                self._engines[key] = engine
                while len(self._engines) > self.size:
                    self._engines.popitem(last=False)
            else:
                self._engines.move_to_end(key)
            return engine

    def clear(self) -> None:
        with self._lock:
            self._engines.clear()

    def __len__(self) -> int:
        return len(self._engines)


_ENGINES = _EngineCache(CACHE_SIZE)


# -- public functions ------------------------------------------------------------


def convolve(in1: Any, in2: Any, mode: str = "full", axes: int | Sequence[int] | None = None,
             *, method: str = "auto", backend: str = "auto",
             planning: str | None = None) -> np.ndarray:
    """Convolve `in1` with `in2` along one axis, as ``scipy.signal.oaconvolve`` does.

    With ``N = in1.shape[axis]``, ``M = in2.shape[axis]`` and the full
    convolution ``z[k] = sum_j in1[k - j] * in2[j]`` (``0 <= k < N + M - 1``,
    samples outside the inputs are zeros), the result along the axis is:

    * ``'full'``: all of ``z``, ``N + M - 1`` samples;
    * ``'same'``: ``N`` samples (the size of `in1`), ``y[n] = z[n + (M - 1) // 2]``,
      centred as SciPy centres it;
    * ``'valid'``: ``|N - M| + 1`` samples, ``y[n] = z[n + min(N, M) - 1]``: the
      outputs that need no zero padding.  When `in2` is longer than `in1` the
      roles swap (convolution commutes), as in SciPy.

    The other axes broadcast: each must have equal lengths in `in1` and `in2`,
    or length 1 in one of them.  As in SciPy, ``'same'`` returns the shape of
    `in1` on every axis, so an axis where `in1` has length 1 and `in2` length
    ``n > 1`` keeps only the middle result, ``in2`` index ``(n - 1) // 2``.

    Centring differs from :class:`~fftconv.SignalConv1D` for even `M`: the
    layer's ``padding='same_zeros'`` with ``corr=False`` centres the kernel at
    ``M // 2`` (tfc's convention), ``y_layer[n] = z[n + M // 2]``, one sample
    ahead of ``convolve(..., 'same')``, ``y[n] = z[n + (M - 1) // 2]``.  For odd
    `M` both agree.

    Parameters
    ----------
    in1 : array_like, shape (..., N, ...)
        Real numbers.
    in2 : array_like, shape (..., M, ...)
        Real numbers, with as many dimensions as `in1`.
    mode : {'full', 'same', 'valid'}
    axes : int, sequence of one int, or None
        The axis to convolve along; None only for 1-D inputs.  (fftconv
        convolves along one axis; pass ``axes=k`` for N-d inputs.)
    method : {'auto', 'direct', 'fft'}
        Execution path; 'auto' lets the planner choose.
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        FFT backend.  With a CuPy input, 'auto' or 'cupy': its GPU.  With host
        inputs, 'auto' is pyFFTW when installed, and 'cupy' computes on the
        current GPU and copies the result back.
    planning : {'estimate', 'measure'} or None
        'measure' times the planner's best candidates on the first call of a
        problem size and keeps the fastest, remembered in the plan-wisdom file
        (see :class:`~fftconv.SignalConv1D`); None: the configuration's
        ``planner.planning``.

    Returns
    -------
    ndarray or cupy.ndarray, shape (..., n_out, ...)
        Where the inputs live: a CuPy array on their GPU when either input is
        one (a host input is moved there), else a numpy array.  `n_out` as
        above along the axis, the broadcast lengths (``'same'``: those of
        `in1`) on the others.  float32 when both inputs are float32, else
        float64 (bool, integer and other float inputs are computed in
        float64).  An output with a zero-length axis other than `axes` is an
        empty array of that shape.

    Raises
    ------
    TypeError
        If an input is not real numeric data (complex included), `axes` or
        `mode` is of the wrong type, or an input is a CuPy array and `backend`
        'numpy' or 'pyfftw'.
    ValueError
        On an unknown `mode`, `method`, `backend` or `planning`, 0-d inputs or
        inputs of different dimensions, `axes` out of range, None for N-d
        inputs or more than one axis, shapes that do not broadcast, an input
        with no sample along the axis, or CuPy inputs on two GPUs.

    Examples
    --------
    >>> convolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> convolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], mode="same")
    array([1. , 2.5, 4. ])
    """
    return _convolution(in1, in2, mode, axes, False, method, backend, planning)


def correlate(in1: Any, in2: Any, mode: str = "full", axes: int | Sequence[int] | None = None,
              *, method: str = "auto", backend: str = "auto",
              planning: str | None = None) -> np.ndarray:
    """Cross-correlate `in1` with `in2` along one axis, as ``scipy.signal.correlate`` does.

    The result is ``convolve(in1, in2 reversed along the axis, mode, axes)``:
    with ``N = in1.shape[axis]`` and ``M = in2.shape[axis]``, the full
    correlation is ``z[k] = sum_i in1[i] * in2[i + M - 1 - k]``
    (``0 <= k < N + M - 1``; lag ``k - (M - 1)``), and

    * ``'full'``: all of ``z``;
    * ``'same'``: ``N`` samples, ``y[n] = z[n + (M - 1) // 2]``, that is
      ``y[n] = sum_j in2[j] * in1[n + j - M // 2]``;
    * ``'valid'``: ``|N - M| + 1`` samples, ``y[n] = z[n + min(N, M) - 1]``.
      When `in2` is longer than `in1` this is ``correlate(in2, in1, 'valid')``
      reversed, as SciPy returns it.

    For 1-D inputs this is ``scipy.signal.correlate(in1, in2, mode)``; for N-d
    inputs it is ``scipy.signal.oaconvolve(in1, numpy.flip(in2, axis), mode,
    axes=axis)``, which equals ``scipy.signal.correlate`` when `in2` has
    length 1 on every other axis.  Broadcasting and the ``'same'`` shape are
    those of :func:`convolve`.  Here ``'same'`` agrees with
    :class:`~fftconv.SignalConv1D` (``corr=True``, ``padding='same_zeros'``),
    whose kernel centre ``M // 2`` is the same sample.

    Parameters
    ----------
    in1 : array_like, shape (..., N, ...)
    in2 : array_like, shape (..., M, ...)
    mode : {'full', 'same', 'valid'}
    axes : int, sequence of one int, or None
    method : {'auto', 'direct', 'fft'}
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
    planning : {'estimate', 'measure'} or None
        As for :func:`convolve`.

    Returns
    -------
    ndarray or cupy.ndarray, shape (..., n_out, ...)
        Where the inputs live; shapes and dtypes as for :func:`convolve`.

    Raises
    ------
    TypeError, ValueError
        As for :func:`convolve`.

    Examples
    --------
    >>> correlate([1.0, 2.0, 3.0], [0.0, 1.0, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    """
    return _convolution(in1, in2, mode, axes, True, method, backend, planning)


def upfirdn(h: Any, x: Any, up: int = 1, down: int = 1, axis: int = -1, *,
            method: str = "auto", backend: str = "auto",
            planning: str | None = None) -> np.ndarray:
    """Upsample, FIR filter and downsample, as ``scipy.signal.upfirdn`` does.

    Insert ``up - 1`` zeros after each sample of `x` (``xu[i * up] = x[i]``,
    ``(N - 1) * up + 1`` samples), convolve with `h` (``'full'``), keep every
    `down`-th sample from the first::

        y[n] = sum_j h[j] * xu[n * down - j],   0 <= n < ((N - 1) * up + K - 1) // down + 1

    with ``N = x.shape[axis]`` and ``K`` taps.  The engine's polyphase path
    never multiplies the inserted zeros nor computes discarded outputs.

    Parameters
    ----------
    h : array_like, shape (K,) or (..., K, ...)
        One filter for every 1-D slice of `x` along `axis`; or (an extension
        of SciPy's 1-D filter) an array with as many dimensions as `x`, taps
        along `axis`, and on every other axis length 1 or the length of `x`
        there: one filter per channel, where a channel is one index on those
        other axes.  ``x`` of shape ``(C, N)`` with ``h`` of shape ``(C, K)``
        filters row ``c`` with ``h[c]``; ``h`` of shape ``(1, C, K)`` does the
        same for every item of ``x`` of shape ``(B, C, N)``.  Lengths broadcast
        both ways (``x`` of length 1 where ``h`` has ``n`` gives ``n``
        outputs), as in :func:`convolve`.
    x : array_like, shape (..., N, ...)
        Real numbers, ``N >= 1``.
    up, down : int
        Upsampling and downsampling factors, integers >= 1.
    axis : int
        The axis of `x` (and of an N-d `h`) to filter along.
    method : {'auto', 'direct', 'fft'}
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
    planning : {'estimate', 'measure'} or None
        As for :func:`convolve`.

    Returns
    -------
    ndarray or cupy.ndarray, shape (..., ((N - 1) * up + K - 1) // down + 1, ...)
        Where the inputs live, as for :func:`convolve`.  The broadcast shape
        of `x` and `h` on the other axes.  float32 when `h` and `x` are
        float32, else float64.

    Raises
    ------
    TypeError
        If `h` or `x` is not real numeric data, `up`, `down` or `axis` is not
        an integer, or an input is a CuPy array and `backend` 'numpy' or
        'pyfftw'.
    ValueError
        If `up` or `down` < 1, `axis` is out of range, `h` has no tap or the
        wrong number of dimensions, `x` is 0-d or has no sample along `axis`,
        shapes do not broadcast, `method`, `backend` or `planning` is unknown,
        or `h` and `x` are CuPy arrays on two GPUs.

    Examples
    --------
    >>> upfirdn([1.0, 1.0], [1.0, 2.0, 3.0], up=2)
    array([1., 1., 2., 2., 3., 3.])
    """
    up = _factor(up, "up")
    down = _factor(down, "down")
    method, backend = check_method(method), check_backend(backend)
    planning = check_planning(planning)
    taps, signal, dtype, device = _real_inputs(backend, (h, "h"), (x, "x"))
    if signal.ndim == 0:
        raise ValueError("`x` must have at least one dimension, got a 0-d array.")
    axis = _check_axis(axis, signal.ndim, "axis")
    if taps.ndim == 1:
        taps = taps.reshape(tuple(-1 if i == axis else 1 for i in range(signal.ndim)))
    elif taps.ndim != signal.ndim:
        raise ValueError(f"`h` must be 1-D, or have as many dimensions as `x` "
                         f"({signal.ndim}); got shape {taps.shape}.")
    _check_broadcast(signal.shape, taps.shape, axis, "x", "h")
    k, n = taps.shape[axis], signal.shape[axis]
    if k == 0:
        raise ValueError(f"`h` must have at least one tap along axis {axis}, "
                         f"got shape {taps.shape}.")
    if n == 0:
        raise ValueError(f"`x` must have at least one sample along axis {axis}, "
                         f"got shape {signal.shape}.")
    n_out = ((n - 1) * up + k - 1) // down + 1
    # Engine 'valid' on x padded by `start` zeros, correlating with the reversed
    # taps after `lead` zero taps, gives y_e[m] = y[m - drop]: pick the padding
    # so that drop = (start*up - (k - 1) - lead) / down is a whole number.  That
    # needs gcd(up, down) | k - 1 + lead, so lead < gcd(up, down) (usually 0);
    # the `drop` outputs computed before y[0] are fewer than up / gcd + 1.
    lead = -(k - 1) % math.gcd(up, down)
    first = -(-(k - 1 + lead) // up)
    # start*up runs through the multiples of gcd(up, down) modulo down within down starts.
    start = next(s for s in range(first, first + down) if (s * up - (k - 1) - lead) % down == 0)
    drop = (start * up - (k - 1) - lead) // down
    end, extra_pad_end = _end_padding(n + start, k + lead, up, down, drop + n_out)
    return _filter(signal, taps, axis, dtype, device, reverse=True, pads=(start, end),
                   lead=lead, up=up, down=down, extra_pad_end=extra_pad_end, start=drop,
                   length=n_out, method=method, backend=backend, planning=planning)


# -- argument checks ---------------------------------------------------------------


def _real_inputs(backend: str, *pairs: tuple[Any, str]) -> tuple[Any, ...]:
    """The arrays (values named by arguments) in the computation dtype, that dtype, the GPU.

    float32 when every input is float32 (any byte order), else float64.  GPU
    arrays stay arrays of their device, host data becomes numpy arrays; the
    GPU is the backend of the GPU arrays' device (None: there are none).
    """
    device = _device_of(backend, pairs)
    raw = []
    for value, argument in pairs:
        if modules_of(value) is not None:
            raw.append((value, device.xp))
            continue
        try:
            raw.append((np.asarray(value), np))
        except (TypeError, ValueError):
            as_real_array(value, argument, np.float64)  # raises, naming the argument
            raise
    single = all(a.dtype.kind == "f" and a.dtype.itemsize == 4 for a, _ in raw)
    dtype = np.dtype(np.float32 if single else np.float64)
    with _current(device):
        arrays = [as_real_array(a, argument, dtype, xp=xp)
                  for (a, xp), (_, argument) in zip(raw, pairs, strict=True)]
    return (*arrays, dtype, device)


def _device_of(backend: str, pairs: tuple[tuple[Any, str], ...]) -> Backend | None:
    """The backend of the GPU that the GPU arrays among the values live on, or None.

    Raises
    ------
    TypeError
        If `backend` runs on the CPU (see :func:`fftconv.backends.backend_for`).
    ValueError
        If they live on two GPUs.
    """
    found = [(value, argument) for value, argument in pairs if modules_of(value) is not None]
    if not found:
        return None
    (first, name), *others = found
    device = backend_for(first, backend, argument=name,
                         **backend_options(load_config(None)))
    for value, argument in others:
        if not device.owns(value):
            raise ValueError(f"`{name}` is on GPU {device.device} and `{argument}` on GPU "
                             f"cuda:{modules_of(value).device_of(value)}: inputs must be on "
                             f"one device; copy one of them to the other's.")
    return device


def _current(device: Backend | None) -> AbstractContextManager:
    """A context in which `device` is the current GPU (nothing for None: the host)."""
    return nullcontext() if device is None else device.activate()


def _check_mode(mode: object) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"`mode` must be one of {MODES}, got {mode!r}.")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    return mode


def _check_axis(axis: object, ndim: int, argument: str) -> int:
    """`axis` as a non-negative int below `ndim`."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`{argument}` must be an integer, got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"`{argument}` must be in [-{ndim}, {ndim}) for {ndim}-d inputs, "
                         f"got {axis}.")
    return int(axis) % ndim


def _check_axes(axes: object, ndim: int) -> int:
    """The one axis named by `axes` (an int, a one-element sequence, or None for 1-D)."""
    if axes is None:
        if ndim != 1:
            raise ValueError(f"`axes` must be given for {ndim}-d inputs: fftconv convolves "
                             f"along one axis; pass axes=k (an int or a one-element "
                             f"sequence).")
        return 0
    if isinstance(axes, np.ndarray):
        axes = axes.tolist()
    if isinstance(axes, Sequence) and not isinstance(axes, str):
        if len(axes) != 1:
            raise ValueError(f"`axes` must name exactly one axis (fftconv convolves along "
                             f"one axis), got {axes!r}.")
        axes = axes[0]
    return _check_axis(axes, ndim, "axes")


def _check_broadcast(shape1: tuple[int, ...], shape2: tuple[int, ...], axis: int,
                     name1: str, name2: str) -> None:
    for i, (a, b) in enumerate(zip(shape1, shape2, strict=True)):
        if i != axis and a != b and a != 1 and b != 1:
            raise ValueError(f"`{name1}` of shape {shape1} and `{name2}` of shape {shape2} "
                             f"must have equal lengths, or length 1 in one of them, on "
                             f"every axis but {axis}; they differ on axis {i}.")


def _factor(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{argument}` must be an integer >= 1, got {value!r}.")
    if value < 1:
        raise ValueError(f"`{argument}` must be an integer >= 1, got {value}.")
    return int(value)


# -- mapping onto the engine ---------------------------------------------------------


def _convolution(in1: Any, in2: Any, mode: object, axes: object, corr: bool, method: str,
                 backend: str, planning: str | None) -> np.ndarray:
    """`convolve` (``corr=False``) or `correlate` (``corr=True``)."""
    mode = _check_mode(mode)
    method, backend = check_method(method), check_backend(backend)
    planning = check_planning(planning)
    a1, a2, dtype, device = _real_inputs(backend, (in1, "in1"), (in2, "in2"))
    if a1.ndim == 0 or a2.ndim == 0:
        raise ValueError(f"`in1` and `in2` must have at least one dimension, got shapes "
                         f"{a1.shape} and {a2.shape}.")
    if a1.ndim != a2.ndim:
        raise ValueError(f"`in1` and `in2` must have the same number of dimensions, got "
                         f"shapes {a1.shape} and {a2.shape}.")
    axis = _check_axes(axes, a1.ndim)
    _check_broadcast(a1.shape, a2.shape, axis, "in1", "in2")
    n1, m2 = a1.shape[axis], a2.shape[axis]
    if n1 == 0 or m2 == 0:
        raise ValueError(f"`in1` and `in2` must have at least one sample along axis {axis}, "
                         f"got shapes {a1.shape} and {a2.shape}.")
    if mode == "same":
        # SciPy crops the broadcast result to in1's shape, keeping the middle.
        a2 = a2[tuple(slice((b - 1) // 2, (b - 1) // 2 + 1) if i != axis and a == 1 else
                      slice(None) for i, (a, b) in enumerate(zip(a1.shape, a2.shape,
                                                                  strict=True)))]
    full = n1 + m2 - 1
    start, length = {"full": (0, full), "same": ((m2 - 1) // 2, n1),
                     "valid": (min(n1, m2) - 1, abs(n1 - m2) + 1)}[mode]
    signal, kernel, flip = a1, a2, False
    if m2 > n1:
        # The longer input is the signal.  A convolution commutes; a correlation
        # with the roles swapped is the reversed one, so take the mirrored window.
        signal, kernel, flip = a2, a1, corr
        if corr:
            start = full - start - length
    # Correlating the signal with g (the kernel, reversed for a convolution)
    # gives r[k] = z[k]; engine 'valid' on the signal padded by (k - 1 - start,
    # start + length - w) zeros (negative: cropped) gives exactly r[start:start+length].
    k, w = kernel.shape[axis], signal.shape[axis]
    return _filter(signal, kernel, axis, dtype, device, reverse=not corr,
                   pads=(k - 1 - start, start + length - w), length=length, flip=flip,
                   method=method, backend=backend, planning=planning)


def _end_padding(width: int, k: int, up: int, down: int, need: int) -> tuple[int, bool]:
    """Fewest zeros after the signal (and `extra_pad_end`) for `need` engine outputs.

    A `valid` spec of `k` taps on ``width + pad`` samples has ``need`` outputs or
    more when its upsampled length ``(width + pad - 1) * up + 1`` (``extra_pad_end``:
    ``(width + pad) * up``) is at least ``(need - 1) * down + k``.
    """
    last = (need - 1) * down + k - 1  # upsampled index of the last sample read
    pad = max(0, -(-last // up) + 1 - width)
    pad_extra = max(0, -(-(last + 1) // up) - width)  # the up - 1 free zeros help
    return (pad, False) if pad <= pad_extra else (pad_extra, True)


def _digest(kernel: np.ndarray) -> tuple[str, tuple[int, ...], bytes]:
    """A content hash of `kernel` (C-contiguous): the spectrum-cache token."""
    return (kernel.dtype.str, kernel.shape,
            hashlib.blake2b(kernel.data, digest_size=20).digest())


def _filter(x: Any, h: Any, axis: int, dtype: np.dtype, device: Backend | None, *,
            reverse: bool, pads: tuple[int, int], length: int, lead: int = 0, up: int = 1,
            down: int = 1, extra_pad_end: bool = False, start: int = 0, flip: bool = False,
            method: str, backend: str, planning: str | None = None) -> Any:
    """Run one separable correlation on the engine and lay the result out like `x`.

    Parameters
    ----------
    x : ndarray or array of `device`, shape (..., W, ...)
        The signal, `dtype`; moved to `device` if it is on the host.
    h : ndarray or array of `device`, shape (..., K, ...)
        The kernel, `dtype`, as many dimensions as `x`, broadcast-compatible
        on the axes other than `axis`; read on the host.
    axis : int
    dtype : float32 or float64
    device : Backend or None
        The GPU of the inputs; None: they are numpy arrays.
    reverse : bool
        Correlate with `h` reversed along `axis` (a convolution) or as it is.
    pads : (int, int)
        Zeros added to `x` before and after along `axis` (negative: samples
        removed) before the engine's ``'valid'`` correlation.
    length : int
        Outputs kept along `axis`, from engine output `start` on.
    lead : int
        Zero taps before the correlation kernel.
    up, down : int
        ``strides_up`` and ``strides_down``.
    extra_pad_end : bool
    start : int
    flip : bool
        Reverse the result along `axis`.
    method, backend : str
    planning : str or None

    Returns
    -------
    array of ``device.xp`` (numpy for None), shape (..., length, ...)
        C-contiguous; the broadcast shape on the other axes.
    """
    xp = np if device is None else device.xp
    nd, k, w = x.ndim, h.shape[axis], x.shape[axis]
    roles = {}  # axis -> 'batch' (signal varies), 'chan' (both), 'filt' (kernel), 'one'
    for i in range(nd):
        if i != axis:
            a, b = x.shape[i], h.shape[i]
            roles[i] = ("one" if a == b == 1 else "chan" if a == b else
                        "batch" if b == 1 else "filt")
    out_shape = tuple(length if i == axis else max(x.shape[i], h.shape[i])
                      if 0 not in (x.shape[i], h.shape[i]) else 0 for i in range(nd))
    with _current(device):
        if math.prod(out_shape) == 0:
            return xp.zeros(out_shape, dtype)
        groups = {r: [i for i in range(nd) if roles.get(i) == r]
                  for r in ("batch", "chan", "filt", "one")}
        b_shape = tuple(x.shape[i] for i in groups["batch"])
        c_shape = tuple(x.shape[i] for i in groups["chan"])
        f_shape = tuple(h.shape[i] for i in groups["filt"])
        batch, channels, filters = math.prod(b_shape), math.prod(c_shape), math.prod(f_shape)

        if device is not None:
            x = device.to_device(x)
            if device.owns(h):
                h = device.to_host(h)  # hashed, and its phase kernels built, on the host
        taps = np.transpose(h, [axis, *groups["chan"], *groups["filt"], *groups["batch"],
                                *groups["one"]]).reshape(k, channels, filters)
        kernel = np.zeros((lead + k, channels, filters), dtype)
        kernel[lead:] = taps[::-1] if reverse else taps
        token = _digest(kernel)

        xt = x.transpose([*groups["batch"], *groups["chan"], *groups["filt"], *groups["one"],
                          axis]).reshape(*b_shape, *c_shape, w)
        ps, pe = pads
        kept = xt[..., max(0, -ps):w - max(0, -pe)]
        ps, pe = max(0, ps), max(0, pe)
        if ps or pe:
            n = kept.shape[-1]
            # A temporary of the call: reused, so its pages are not faulted in anew.
            buffer = scratch if device is None else device.scratch
            padded = buffer("functional.padded", (*b_shape, *c_shape, ps + n + pe), dtype)
            padded[..., :ps] = 0
            padded[..., ps:ps + n] = kept
            padded[..., ps + n:] = 0
            x3 = padded.reshape(batch, channels, -1)
        else:
            x3 = kept.reshape(batch, channels, kept.shape[-1])  # a view when the layout allows
        spec = ConvSpec(kernel_support=lead + k, corr=True, strides_up=up, strides_down=down,
                        padding="valid", extra_pad_end=extra_pad_end, channel_separable=True)
        engine = _ENGINES.get(spec, filters, dtype, method, backend, token, planning)
        order = [roles.get(i, "time") for i in range(nd) if roles.get(i) != "one"]
        time_major = (not _ordered(order, ("batch", "chan", "filt", "time"))
                      and _ordered(order, ("batch", "time", "chan", "filt")))
        # Host inputs: a GPU backend's result comes back (by slices, overlapped).
        y = engine(x3, lambda: kernel, token, time_major=time_major, to_host=device is None)
        assert y.shape[-1] >= start + length, (y.shape, start, length)
        y = y[:, :, start:start + length].reshape(*b_shape, *c_shape, *f_shape, length,
                                                 *(1,) * len(groups["one"]))
        placed = [*groups["batch"], *groups["chan"], *groups["filt"], axis, *groups["one"]]
        y = y.transpose(sorted(range(nd), key=placed.__getitem__))
        if flip:
            y = xp.flip(y, axis)
        return xp.ascontiguousarray(y)


def _ordered(roles: list[str], order: tuple[str, ...]) -> bool:
    """Whether `roles` come in the sequence `order` (each role a contiguous run)."""
    ranks = [order.index(r) for r in roles]
    return ranks == sorted(ranks)
