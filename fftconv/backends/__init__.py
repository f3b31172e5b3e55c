"""FFT backends: real forward and inverse transforms along one axis.

The engine uses only the :class:`Backend` interface (``name``, ``threads``, ``xp``,
``rfft``, ``irfft``, the reusable block transforms ``block_fft`` / ``chunk_fft``) and
obtains instances from :func:`get_backend`.
"""

from __future__ import annotations

import operator
import os
import threading
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from fftconv.backends.blocks import REAL_TO_COMPLEX, BlockFFT

BACKENDS = ("auto", "numpy", "pyfftw")
PLANNER_EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")
DEFAULT_PLANNER_EFFORT = "FFTW_ESTIMATE"
#: Seconds FFTW may spend planning one block transform when not given (0: no limit).
DEFAULT_PLANNING_TIMELIMIT = 0.0

#: Block shapes whose buffers and plans a backend keeps (least recently used dropped).
MAX_BLOCK_SHAPES = 8
_REAL_TO_COMPLEX = REAL_TO_COMPLEX
_COMPLEX_TO_REAL = {c: r for r, c in _REAL_TO_COMPLEX.items()}


class Backend(ABC):
    """Real FFTs along one axis, with numpy's conventions.

    Subclasses implement ``_rfft`` and ``_irfft``; the public methods validate their
    arguments first, so subclasses receive an ndarray of a supported dtype, ``n >= 1``
    and a non-negative `axis`.

    Attributes
    ----------
    name : str
        ``'numpy'`` or ``'pyfftw'``.
    threads : int
        Threads used by each transform.
    xp : module
        The array module of inputs and results (numpy).
    blocks_made : int
        :class:`BlockFFT` objects made so far (:meth:`block_fft`, :meth:`chunk_fft`);
        a cache hit makes none.
    """

    name: str
    xp = np

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._blocks: dict[tuple, BlockFFT] = {}
        self._blocks_lock = threading.Lock()
        self.blocks_made = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads})"

    def rfft(self, a: Any, n: int, axis: int = -1) -> np.ndarray:
        """Unnormalised real-to-complex transform of length `n` along `axis`.

        Parameters
        ----------
        a : ndarray, float32 or float64, any shape and strides
            Zero-padded or cropped to `n` along `axis`, like :func:`numpy.fft.rfft`.
            Left unchanged.
        n : int
            Transform length, ``>= 1``.
        axis : int

        Returns
        -------
        ndarray, complex64 (float32 input) or complex128 (float64 input)
            Shape of `a` with ``n // 2 + 1`` along `axis`; a new array.
        """
        a, n, axis = _check_args(a, n, axis, _REAL_TO_COMPLEX, "rfft")
        return self._rfft(a, n, axis)

    def irfft(self, a: Any, n: int, axis: int = -1) -> np.ndarray:
        """Inverse of :meth:`rfft`, normalised by ``1 / n``.

        Parameters
        ----------
        a : ndarray, complex64 or complex128, any shape and strides
            ``n // 2 + 1`` bins along `axis` (other lengths are zero-padded or
            cropped, like :func:`numpy.fft.irfft`).  Left unchanged.
        n : int
            Output length, ``>= 1``.
        axis : int

        Returns
        -------
        ndarray, float32 (complex64 input) or float64 (complex128 input)
            Shape of `a` with `n` along `axis`; a new array.
        """
        a, n, axis = _check_args(a, n, axis, _COMPLEX_TO_REAL, "irfft")
        return self._irfft(a, n, axis)

    def block_fft(self, rows_in: int, rows_out: int, n: int, dtype: Any) -> BlockFFT:
        """The shared transforms of exactly `rows_in` / `rows_out` blocks (see :class:`BlockFFT`).

        For callers that transform the same block counts over and over (a stream,
        the tuner): the transforms are planned at once with the backend's full effort.
        """
        return self._cached("block", rows_in, rows_out, n, dtype)

    def chunk_fft(self, rows_in: int, rows_out: int, n: int, dtype: Any) -> BlockFFT:
        """The shared transforms of up to `rows_in` / `rows_out` blocks per call.

        For callers whose block count varies from call to call (the overlap-save
        path on inputs of any width): a call transforms the first rows only, with
        :meth:`BlockFFT.forward` / :meth:`BlockFFT.inverse` given the row count, inside
        :meth:`BlockFFT.use`.  Backends with planned transforms plan them cheaply
        first and with their full effort once the transforms recur.
        """
        return self._cached("chunk", rows_in, rows_out, n, dtype)

    def has_chunk_fft(self, rows_in: int, rows_out: int, n: int, dtype: Any) -> bool:
        """Whether :meth:`chunk_fft` with these arguments would find its transforms made."""
        with self._blocks_lock:
            return ("chunk", rows_in, rows_out, n, np.dtype(dtype)) in self._blocks

    def _cached(self, kind: str, rows_in: int, rows_out: int, n: int, dtype: Any) -> BlockFFT:
        key = (kind, rows_in, rows_out, n, np.dtype(dtype))
        with self._blocks_lock:
            block = self._blocks.pop(key, None)
            if block is None:
                block = self._make_block_fft(*key)
                self.blocks_made += 1
                if len(self._blocks) >= MAX_BLOCK_SHAPES:
                    del self._blocks[next(iter(self._blocks))]  # least recently used
            self._blocks[key] = block
        return block

    def _make_block_fft(self, kind: str, rows_in: int, rows_out: int, n: int,
                        dtype: np.dtype) -> BlockFFT:
        """A new :class:`BlockFFT`; `kind` is ``'block'`` or ``'chunk'`` (see :meth:`chunk_fft`)."""
        return BlockFFT(rows_in, rows_out, n, dtype, self.threads)

    @abstractmethod
    def _rfft(self, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        """:meth:`rfft` on validated arguments (`axis` non-negative)."""

    @abstractmethod
    def _irfft(self, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        """:meth:`irfft` on validated arguments (`axis` non-negative)."""


def _check_args(a: Any, n: Any, axis: Any, dtypes: dict[np.dtype, np.dtype], method: str,
                ) -> tuple[np.ndarray, int, int]:
    """Validate the arguments of :meth:`Backend.rfft` / :meth:`Backend.irfft`.

    Returns `a` as an ndarray, `n` as an int and `axis` as a non-negative int.
    """
    a = np.asarray(a)
    if a.dtype not in dtypes:
        allowed = tuple(str(d) for d in dtypes)
        raise TypeError(f"{method}: `a` must have dtype in {allowed}, got {a.dtype}.")
    n = _check_int(n, "n", method)
    if n < 1:
        raise ValueError(f"{method}: `n` must be >= 1, got {n}.")
    axis = _check_int(axis, "axis", method)
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"{method}: `axis` must be in [{-a.ndim}, {a.ndim}) for an array "
                         f"of shape {a.shape}, got {axis}.")
    return a, n, axis % a.ndim


def _check_int(value: Any, arg: str, where: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{where}: `{arg}` must be an integer, got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{where}: `{arg}` must be an integer, got {value!r}.") from None


def check_backend(backend: object) -> str:
    """Validate a `backend` name."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    return str(backend)


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pyfftw_importable() -> bool:
    """Whether the pyFFTW backend can be used (``pyfftw`` is importable)."""
    try:
        import pyfftw  # noqa: F401
    except ImportError:
        return False
    return True


_instances: dict[tuple, Backend] = {}
_instances_lock = threading.Lock()


def get_backend(name: str = "auto", *, threads: int | None = None,
                planner_effort: str | None = None,
                planning_timelimit: float | None = None,
                save_wisdom: bool | None = None,
                measure_after_seconds: float | None = None) -> Backend:
    """The shared backend instance for these settings.

    Instances are cached per ``(name, threads, planner_effort, planning_timelimit,
    save_wisdom, measure_after_seconds)``, so every caller with the same settings
    shares one plan cache.

    Parameters
    ----------
    name : {'auto', 'numpy', 'pyfftw'}
        ``'auto'`` is ``'pyfftw'`` when pyFFTW is importable, else ``'numpy'``.
    threads : int or None
        Threads per transform, ``>= 1``; None uses every usable core.
    planner_effort : {'FFTW_ESTIMATE', 'FFTW_MEASURE', 'FFTW_PATIENT', \
'FFTW_EXHAUSTIVE'} or None
        FFTW planning effort (pyFFTW only; ignored by the numpy backend).  None means
        ``'FFTW_ESTIMATE'`` (pyFFTW's own default: plans in milliseconds).  It applies
        to the block transforms, which run many times per call; one-off transforms
        (kernel spectra) are always planned with ``'FFTW_ESTIMATE'``.
    planning_timelimit : float or None
        Seconds FFTW may spend planning one block transform, ``>= 0``; 0 or None
        means no limit (pyFFTW only).
    save_wisdom : bool or None
        False turns off the save of FFTW's wisdom at interpreter exit, for the whole
        process; None means True.  The ``FFTCONV_SAVE_WISDOM`` environment variable
        overrides it (pyFFTW only; see :mod:`fftconv.backends.pyfftw_backend`).
    measure_after_seconds : float or None
        Seconds an estimated plan of the overlap-save path's block transforms runs in
        the process before it is planned with `planner_effort`, ``>= 0`` (it is also
        not measured before the transforms' third use); None means 2.0 (pyFFTW only;
        see :data:`fftconv.backends.pyfftw_backend.MEASURE_AFTER_SECONDS`).

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        If `name` (the backend), `threads`, `planner_effort`, `planning_timelimit` or
        `measure_after_seconds` has a value not allowed.
    TypeError
        If `threads` is not an integer, `planning_timelimit` or
        `measure_after_seconds` not a real number or `save_wisdom` not a bool or None.
    ImportError
        If ``name='pyfftw'`` and pyFFTW cannot be imported.
    """
    if name not in BACKENDS:
        raise ValueError(f"get_backend: backend `name` must be one of {BACKENDS}, got {name!r}.")
    if threads is None:
        threads = _usable_cores()
    threads = _check_int(threads, "threads", "get_backend")
    if threads < 1:
        raise ValueError(f"get_backend: `threads` must be >= 1 or None, got {threads}.")
    if planner_effort is None:
        planner_effort = DEFAULT_PLANNER_EFFORT
    if planner_effort not in PLANNER_EFFORTS:
        raise ValueError(f"get_backend: `planner_effort` must be one of {PLANNER_EFFORTS} "
                         f"or None, got {planner_effort!r}.")
    timelimit = _check_seconds(planning_timelimit, "planning_timelimit", " (0: no limit)",
                               DEFAULT_PLANNING_TIMELIMIT)
    measure_after = _check_seconds(measure_after_seconds, "measure_after_seconds", "", None)
    if save_wisdom is None:
        save_wisdom = True
    if not isinstance(save_wisdom, (bool, np.bool_)):
        raise TypeError(f"get_backend: `save_wisdom` must be a bool or None, got {save_wisdom!r}.")
    save_wisdom = bool(save_wisdom)
    if name == "auto":
        name = "pyfftw" if _pyfftw_importable() else "numpy"
    options = ((planner_effort, timelimit, save_wisdom, measure_after) if name == "pyfftw"
               else (None,) * 4)
    key = (name, threads, *options)
    with _instances_lock:
        backend = _instances.get(key)
        if backend is None:
            backend = _instances[key] = _create(name, threads, planner_effort, timelimit,
                                                save_wisdom, measure_after)
    return backend


def _check_seconds(value: object, arg: str, meaning: str, default: float | None,
                   ) -> float | None:
    """A finite number of seconds ``>= 0``, or `default` for None."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"get_backend: `{arg}` must be a real number of seconds "
                        f"or None, got {value!r}.")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"get_backend: `{arg}` must be finite and >= 0{meaning}, "
                         f"got {value!r}.")
    return float(value)


def _create(name: str, threads: int, planner_effort: str, planning_timelimit: float,
            save_wisdom: bool, measure_after_seconds: float | None) -> Backend:
    if name == "numpy":
        from fftconv.backends.numpy_backend import NumpyBackend

        return NumpyBackend(threads)
    try:
        from fftconv.backends.pyfftw_backend import PyFFTWBackend
    except ImportError as err:
        raise ImportError("backend 'pyfftw' needs the pyFFTW package (`pip install pyfftw`); "
                          "use backend='numpy' or 'auto' without it.") from err
    return PyFFTWBackend(threads, planner_effort, planning_timelimit, save_wisdom,
                         measure_after_seconds)
