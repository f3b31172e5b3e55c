"""Backend on :mod:`scipy.fft` (pocketfft), multithreaded through ``workers``."""

from __future__ import annotations

import numpy as np
import scipy.fft

from fftconv.backends.cpu import CPUBackend


class NumpyBackend(CPUBackend):
    """Real FFTs with :func:`scipy.fft.rfft` / :func:`scipy.fft.irfft`.

    Thread safety: :mod:`scipy.fft` keeps no state that a call mutates, so calls from
    several Python threads need no lock.  Results are new arrays and inputs are never
    overwritten (``overwrite_x=False``).  float32 stays single precision.

    Parameters
    ----------
    threads : int
        ``workers`` of each transform.
    """

    name = "numpy"

    def _rfft(self, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        return scipy.fft.rfft(a, n=n, axis=axis, workers=self.threads)

    def _irfft(self, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        return scipy.fft.irfft(a, n=n, axis=axis, workers=self.threads)
