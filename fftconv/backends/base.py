"""The device boundary: what a backend gives the paths, the reduction and the engine.

A :class:`Backend` is the only object that knows where arrays live.  It carries
the array module :attr:`Backend.xp` (numpy, or cupy on a GPU) and the few
primitives that the array API lacks or that differ between devices: signal
allocation in a given memory layout, overlapping block views, an accumulating
GEMM, scratch buffers, transfers, and real FFTs (one-off and reusable block
transforms).  Generic code calls ``backend.xp.*`` and these methods, never
``numpy.*`` on data arrays; cold host work (phase-kernel taps, configuration)
stays in numpy and moves to the device once with :meth:`Backend.to_device`.
"""

from __future__ import annotations

import operator
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from fftconv.backends.blocks import REAL_TO_COMPLEX, BlockFFT

#: Block shapes whose buffers and plans a backend keeps (least recently used dropped).
MAX_BLOCK_SHAPES = 8
_REAL_TO_COMPLEX = REAL_TO_COMPLEX
_COMPLEX_TO_REAL = {c: r for r, c in _REAL_TO_COMPLEX.items()}


@dataclass(frozen=True)
class DeviceTraits:
    """Thresholds between the forms of a path on one kind of device.

    Attributes
    ----------
    kind : {'cpu', 'cuda'}
    matmul_min_pairs : int
        Channel pairs (Ci * Co) from which the FFT path's per-bin product is a
        batched matmul rather than a broadcast multiply-accumulate.
    shifted_min_channels : int
        Smallest Ci and Co for which the direct path of an ungrouped layer runs
        as shifted GEMMs rather than on gathered windows.
    shifted_min_in_channels_time_major : int
        Smallest Ci for which it does so on time-major data (channels last in
        memory) from two output channels: windows gathered along time would
        read the input with a stride of Ci samples (see
        :func:`~fftconv.planner.direct_variant`).
    time_major_gather_factor : float
        Cost of gathering windows from such time-major data (at least
        ``shifted_min_in_channels_time_major`` input channels) per byte, over
        gathering them from channels-first data (:func:`~fftconv.planner.direct_cost`).
    gemm_min_columns : int
        Columns (``B`` times the blocks of a chunk) below which the per-bin
        product's batched matmul costs as much as with this many, from two
        columns on (one column is a matrix-vector product).
    compiles_at_first_use : bool
        Whether the device's kernels are compiled at their first use in a
        process (CuPy's element-wise kernels through NVRTC), so that a first
        call can take most of a second that no later call pays.
    """

    kind: str
    matmul_min_pairs: int
    shifted_min_channels: int
    shifted_min_in_channels_time_major: int
    time_major_gather_factor: float = 1.0
    gemm_min_columns: int = 1
    compiles_at_first_use: bool = False


class Backend(ABC):
    """Arrays on one device, and real FFTs along one axis with numpy's conventions.

    Subclasses implement ``_rfft`` and ``_irfft`` and the device primitives; the
    public transform methods validate their arguments first, so subclasses receive
    an array of a supported dtype, ``n >= 1`` and a non-negative `axis`.

    Attributes
    ----------
    name : str
        ``'numpy'``, ``'pyfftw'`` or ``'cupy'``.
    threads : int
        Threads used by each transform (1 on a GPU).
    xp : module
        The array module of inputs and results (numpy or cupy).
    device : str
        Where the arrays live: ``'cpu'``, or ``'cuda:<id>'``.  Caches of arrays
        derived from kernels are keyed by it.
    device_model : str or None
        The accelerator's model, e.g. ``'NVIDIA H200'``, which measured plans
        depend on (:func:`fftconv.plan_wisdom.wisdom_key`); None on the CPU,
        which the plan wisdom names itself.
    traits : DeviceTraits
    blocks_made : int
        :class:`BlockFFT` objects made so far (:meth:`block_fft`, :meth:`chunk_fft`);
        a cache hit makes none.
    """

    name: str
    xp: Any = np
    device: str = "cpu"
    device_model: str | None = None
    traits: DeviceTraits

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._blocks: dict[tuple, BlockFFT] = {}
        self._blocks_lock = threading.Lock()
        self.blocks_made = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads})"

    # -- arrays on the device ------------------------------------------------

    def empty_signal(self, shape: tuple[int, ...], dtype: Any, time_major: bool) -> Any:
        """An uninitialised array of `shape` ``(B, *channels, T)`` on the device.

        With `time_major`, its memory holds ``(B, T, *channels)`` (channels last) and
        the result is a transposed view; otherwise it is C-contiguous.
        """
        xp = self.xp
        if not time_major:
            return xp.empty(shape, dtype)
        memory = xp.empty((shape[0], shape[-1], *shape[1:-1]), dtype)
        return xp.moveaxis(memory, 1, -1)

    def windows(self, x: Any, length: int, step: int) -> Any:
        """Overlapping blocks of the last axis of `x` as a read-only view, no copy.

        Parameters
        ----------
        x : array, shape (..., L), L >= length
        length, step : int
            Block length and the distance between block starts, ``>= 1``.

        Returns
        -------
        array, shape (..., (L - length) // step + 1, length)
            Never to be written (its blocks overlap).
        """
        count = (x.shape[-1] - length) // step + 1
        stride = x.strides[-1]
        return self._as_strided(x, (*x.shape[:-1], count, length),
                                (*x.strides[:-1], step * stride, stride))

    @abstractmethod
    def _as_strided(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        """A read-only view of `x` with `shape` and byte `strides`."""

    @abstractmethod
    def reshape_view(self, a: Any, shape: tuple[int, ...]) -> Any:
        """`a` reshaped as a view; an error if that needs a copy (writes would be lost)."""

    @abstractmethod
    def gemm_accumulate(self, a: Any, b: Any, out: Any, beta: float) -> None:
        """``out[...] = a @ b + beta * out`` in place.

        Parameters
        ----------
        a : array, shape (M, K)
        b : array, shape (K, N)
        out : array, shape (M, N)
            All float32 or all float64 and C-contiguous (row windows of larger
            C-contiguous arrays are).  With ``beta = 0`` the old content of `out`
            is never read.
        beta : float
        """

    @abstractmethod
    def scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised C-contiguous temporary of a call, valid until `name` is asked again."""

    def assign(self, dst: Any, src: Any) -> None:
        """``dst[...] = src`` for signals ``(B, C, ...)``."""
        dst[...] = src

    @abstractmethod
    def owns(self, x: Any) -> bool:
        """Whether `x` is an array in this backend's memory (on its device)."""

    def to_device(self, x: Any) -> Any:
        """`x` (host data or an array of this device) as an array of this device."""
        return self.xp.asarray(x)

    def to_device_async(self, x: Any) -> tuple[Any, Any]:
        """Start moving `x` (host data or an array of this device) to this device.

        Returns
        -------
        array : array of this device, the shape of `x`
            To be read by work queued after :meth:`wait_event` of `event` only.
        event : object or None
            Completes with the copy; None: the array is ready (the default, which
            copies at once).
        """
        return self.to_device(x), None

    def wait_event(self, event: Any) -> None:  # noqa: B027 - nothing to wait for on the CPU
        """Make the work queued on the device from now on wait for `event` (None: none)."""

    @abstractmethod
    def to_host(self, x: Any) -> np.ndarray:
        """`x`, an array of this device, as a numpy array (a copy from a GPU)."""

    def to_host_async(self, y: Any, out: np.ndarray) -> Any:
        """Start copying `y`, an array of this device, into the host array `out`.

        Parameters
        ----------
        y : array of this device
        out : ndarray, the shape and dtype of `y`
            Dense (C-contiguous with its axes in some order); the order of its
            axes in memory is kept.

        Returns
        -------
        object or None
            An event: `out` holds `y` once its ``synchronize()`` returned.  None:
            it does already (the default, which copies at once).
        """
        out[...] = self.to_host(y)
        return None

    def total_memory(self) -> int | None:
        """Bytes of memory of the device; None for the host (its physical memory)."""
        return None

    def synchronize(self) -> None:  # noqa: B027 - nothing to wait for on the CPU
        """Wait until the work queued on the device is done (for timing)."""

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make this backend's device the current one for the calls inside."""
        yield

    # -- transforms ------------------------------------------------------------

    def rfft(self, a: Any, n: int, axis: int = -1) -> Any:
        """Unnormalised real-to-complex transform of length `n` along `axis`.

        Parameters
        ----------
        a : array, float32 or float64, any shape and strides
            Zero-padded or cropped to `n` along `axis`, like :func:`numpy.fft.rfft`.
            Left unchanged.
        n : int
            Transform length, ``>= 1``.
        axis : int

        Returns
        -------
        array, complex64 (float32 input) or complex128 (float64 input)
            Shape of `a` with ``n // 2 + 1`` along `axis`; a new array.
        """
        a, n, axis = _check_args(self.xp, a, n, axis, _REAL_TO_COMPLEX, "rfft")
        return self._rfft(a, n, axis)

    def irfft(self, a: Any, n: int, axis: int = -1) -> Any:
        """Inverse of :meth:`rfft`, normalised by ``1 / n``.

        Parameters
        ----------
        a : array, complex64 or complex128, any shape and strides
            ``n // 2 + 1`` bins along `axis` (other lengths are zero-padded or
            cropped, like :func:`numpy.fft.irfft`).  Left unchanged.
        n : int
            Output length, ``>= 1``.
        axis : int

        Returns
        -------
        array, float32 (complex64 input) or float64 (complex128 input)
            Shape of `a` with `n` along `axis`; a new array.
        """
        a, n, axis = _check_args(self.xp, a, n, axis, _COMPLEX_TO_REAL, "irfft")
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
    def _rfft(self, a: Any, n: int, axis: int) -> Any:
        """:meth:`rfft` on validated arguments (`axis` non-negative)."""

    @abstractmethod
    def _irfft(self, a: Any, n: int, axis: int) -> Any:
        """:meth:`irfft` on validated arguments (`axis` non-negative)."""


def _check_args(xp: Any, a: Any, n: Any, axis: Any, dtypes: dict[np.dtype, np.dtype],
                method: str) -> tuple[Any, int, int]:
    """Validate the arguments of :meth:`Backend.rfft` / :meth:`Backend.irfft`.

    Returns `a` as an array of `xp`, `n` as an int and `axis` as a non-negative int.
    """
    a = xp.asarray(a)
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
