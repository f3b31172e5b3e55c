"""Reusable block transforms for the overlap-save path and for streams.

A :class:`BlockFFT` owns the buffers of one block shape: up to ``rows_in`` real
blocks of length ``n`` are written into :attr:`BlockFFT.real_in` and transformed
by :meth:`~BlockFFT.forward`; up to ``rows_out`` spectra are written into
:attr:`BlockFFT.spectrum_in` and transformed back by :meth:`~BlockFFT.inverse`.
Reusing the buffers avoids an allocation and a copy per transform, which on
long signals cost about as much as the transforms themselves.

The row counts are capacities: a call may transform only the first ``rows``
rows, so callers whose number of blocks varies from call to call (the
overlap-save path on inputs of any width) share one object, and so one set of
FFT plans, per block length and channel layout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.fft

#: Transform calls per direction that a chunk transform makes for one chunk of rows, at
#: most: more wastes fewer padding rows, fewer makes fewer calls (each one synchronises
#: FFTW's threads, or launches a GPU kernel).
MAX_PIECES = 3

REAL_TO_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64),
                   np.dtype(np.float64): np.dtype(np.complex128)}

# Per thread: how many :func:`plans_held` blocks are open.
_held = threading.local()


@contextmanager
def plans_held() -> Iterator[None]:
    """Within it, the calling thread's uses of block transforms keep their plans.

    A backend that plans a transform again with more effort once it recurs (the
    pyFFTW backend) does not do so in a use inside this block; a later use
    does.  For timing candidates against each other (measured planning): one
    candidate's run that stops for seconds of FFT planning would be charged
    for it and leave the time of the others to it.  Nests.
    """
    _held.depth = getattr(_held, "depth", 0) + 1
    try:
        yield
    finally:
        _held.depth -= 1


class BlockFFT:
    """Forward and inverse real FFTs of blocks through owned buffers.

    Parameters
    ----------
    rows_in, rows_out : int
        Most blocks transformed forward / inverse per call.
    n : int
        Block length.
    dtype : float32 or float64
    threads : int

    Attributes
    ----------
    real_in : ndarray, shape (rows_in, n)
        Fill (the first rows), then call :meth:`forward`.
    spectrum_in : ndarray, shape (rows_out, n // 2 + 1), complex
        Fill (the first rows), then call :meth:`inverse` (its content is destroyed).
    lock : threading.Lock
        Hold while using the buffers: one user at a time (:meth:`use` takes it).
    uses : int
        Number of :meth:`use` blocks entered so far.
    """

    def __init__(self, rows_in: int, rows_out: int, n: int, dtype: np.dtype,
                 threads: int) -> None:
        self.n = n
        self.threads = threads
        self.dtype = np.dtype(dtype)
        self.lock = threading.Lock()
        self.uses = 0
        self.real_in = self._empty((rows_in, n), self.dtype)
        self.spectrum_in = self._empty((rows_out, n // 2 + 1), REAL_TO_COMPLEX[self.dtype])

    def _empty(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    @contextmanager
    def use(self) -> Iterator[BlockFFT]:
        """Hold :attr:`lock` for one call of the caller (which may run several chunks).

        Counts the use; a backend may replace its transforms by faster ones here,
        before the buffers are filled (see the pyFFTW backend), unless the
        calling thread is inside :func:`plans_held`.
        """
        with self.lock:
            self.uses += 1
            if not getattr(_held, "depth", 0):
                self._on_use()
            yield self

    def _on_use(self) -> None:
        """Called by :meth:`use` with :attr:`lock` held, after counting the use."""

    def forward(self, rows: int | None = None) -> np.ndarray:
        """Spectra of the first `rows` rows of :attr:`real_in` (None: all).

        Returns
        -------
        ndarray, shape (rows, n // 2 + 1), complex
            Valid until the next call.
        """
        data = self.real_in if rows is None else self.real_in[:rows]
        return scipy.fft.rfft(data, axis=-1, workers=self.threads)

    def inverse(self, rows: int | None = None) -> np.ndarray:
        """Unnormalised inverse of the first `rows` rows of :attr:`spectrum_in` (None: all).

        Returns
        -------
        ndarray, shape (rows, n)
            ``n`` times numpy's irfft; valid until the next call.
        """
        data = self.spectrum_in if rows is None else self.spectrum_in[:rows]
        return scipy.fft.irfft(data, self.n, axis=-1, norm="forward", workers=self.threads)


def pieces(rows: int, capacity: int) -> list[int]:
    """Sizes of the row pieces that transform the first `rows` of `capacity` rows.

    Powers of two, largest first, at most :data:`MAX_PIECES` (the last one rounded
    up, so some rows past `rows` may be transformed too), or ``[capacity]`` when
    `rows` fills the capacity or the rounding would run past it.
    """
    if rows >= capacity:
        return [capacity]
    sizes: list[int] = []
    left = rows
    while left > 0:
        last = len(sizes) == MAX_PIECES - 1
        size = 1 << ((left - 1).bit_length() if last else left.bit_length() - 1)
        sizes.append(size)
        left -= size
    return sizes if sum(sizes) <= capacity else [capacity]
