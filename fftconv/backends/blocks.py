"""Reusable block transforms for the overlap-save path.

A :class:`BlockFFT` owns the buffers of one block shape: ``rows_in`` real blocks
of length ``n`` are written into :attr:`BlockFFT.real_in` and transformed by
:meth:`~BlockFFT.forward`; ``rows_out`` spectra are written into
:attr:`BlockFFT.spectrum_in` and transformed back by :meth:`~BlockFFT.inverse`.
Reusing the buffers avoids an allocation and a copy per transform, which on
long signals cost about as much as the transforms themselves.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.fft

REAL_TO_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64),
                   np.dtype(np.float64): np.dtype(np.complex128)}


class BlockFFT:
    """Forward and inverse real FFTs of fixed block shapes through owned buffers.

    Parameters
    ----------
    rows_in, rows_out : int
        Blocks transformed forward / inverse per call.
    n : int
        Block length.
    dtype : float32 or float64
    threads : int

    Attributes
    ----------
    real_in : ndarray, shape (rows_in, n)
        Fill, then call :meth:`forward`.
    spectrum_in : ndarray, shape (rows_out, n // 2 + 1), complex
        Fill, then call :meth:`inverse` (its content is destroyed).
    lock : threading.Lock
        Hold while using the buffers: one user at a time.
    """

    def __init__(self, rows_in: int, rows_out: int, n: int, dtype: np.dtype,
                 threads: int) -> None:
        self.n = n
        self.threads = threads
        self.dtype = np.dtype(dtype)
        self.lock = threading.Lock()
        self.real_in = self._empty((rows_in, n), self.dtype)
        self.spectrum_in = self._empty((rows_out, n // 2 + 1), REAL_TO_COMPLEX[self.dtype])

    @staticmethod
    def _empty(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    def forward(self) -> np.ndarray:
        """Spectra of :attr:`real_in`, shape (rows_in, n // 2 + 1); valid until the next call."""
        return scipy.fft.rfft(self.real_in, axis=-1, workers=self.threads)

    def inverse(self) -> np.ndarray:
        """Unnormalised inverse of :attr:`spectrum_in`: ``n`` times numpy's irfft, (rows_out, n)."""
        return scipy.fft.irfft(self.spectrum_in, self.n, axis=-1, norm="forward",
                               workers=self.threads)
