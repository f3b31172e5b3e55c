"""Run a layer geometry on an input: reduction -> ``corr_valid`` path -> reassembly."""

from __future__ import annotations

import numpy as np

from fftconv.paths.direct import corr_valid_direct
from fftconv.reduction import Polyphase
from fftconv.spec import ConvSpec

METHODS = ("auto", "direct", "fft")
BACKENDS = ("auto", "numpy")


def check_method(method: object) -> str:
    """Validate the `method` engine option."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    return str(method)


def check_backend(backend: object) -> str:
    """Validate the `backend` engine option."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    return str(backend)


def convolve(spec: ConvSpec, x: np.ndarray, kernel: np.ndarray, method: str = "auto") -> np.ndarray:
    """Filter `x` with `kernel` following `spec`, without bias or activation.

    Parameters
    ----------
    spec : ConvSpec
    x : ndarray, shape (B, C_in, W)
        Channels first; ``W >= spec.min_input_width()``.
    kernel : ndarray, shape (K, C_in, filters), same dtype as `x`
    method : {'auto', 'direct', 'fft'}

    Returns
    -------
    ndarray, shape (B, C_out, spec.output_width(W))
    """
    if method == "fft":
        raise NotImplementedError("method='fft' is not available yet; use 'direct' or 'auto'.")
    poly = Polyphase(spec)
    n_out = spec.output_width(x.shape[-1])
    y = corr_valid_direct(poly.phase_inputs(x, n_out), poly.phase_kernels(kernel))
    return poly.reassemble(y, n_out, x.shape[1])
