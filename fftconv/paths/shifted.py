"""Direct path by shifted GEMMs on time-major rows, for channel-mixing layers.

Lay the boundary-extended input out time-major, one row per phase-input sample
``m`` holding its ``Ci = S*C_in`` input-phase channels ``(phi, c)`` (a
contiguous run of the extended signal, so the polyphase split is free).  Then
the rows of the output, each holding the ``Co = P*filters`` output-phase
channels ``(q, f)`` of one phase output ``t`` (a contiguous run of the
time-major layer output, so the phase interleave is free too), are::

    Y[t] = sum_k X[t + k] @ W_k,        W_k = w[0, :, :, k].T  (Ci, Co)

``Kp`` GEMMs over row windows of ``X`` that lie where they are, accumulated in
place by BLAS (:func:`~fftconv.paths.blas.gemm_accumulate`): no window
gathering, no phase split, no interleave.  Batches are stacked row-wise; the
``Kp - 1`` rows where a window straddles two batch items are computed and
dropped.  Rows are processed in blocks whose operands fit the working-memory
budget, so each output block stays in cache across its ``Kp`` products.

Used for ungrouped layers with enough channels (:func:`use_shifted`): with few
channels the GEMMs are too thin and gathering windows (``paths.direct``) wins.
"""

from __future__ import annotations

import numpy as np

from fftconv._scratch import scratch
from fftconv.paths.blas import gemm_accumulate
from fftconv.reduction import Polyphase, extended_phases

#: Smallest ``Ci`` and ``Co`` for which the shifted-GEMM direct path is used.
SHIFTED_MIN_CHANNELS = 16


def use_shifted(groups: int, in_channels: int, out_channels: int) -> bool:
    """Whether the direct path runs as shifted GEMMs (else by gathered windows)."""
    return groups == 1 and min(in_channels, out_channels) >= SHIFTED_MIN_CHANNELS


def shifted_weights(w: np.ndarray) -> np.ndarray:
    """Phase kernels ``(1, Co, Ci, Kp)`` as the GEMM operands ``(Kp, Ci, Co)``, contiguous."""
    return np.ascontiguousarray(w[0].transpose(2, 1, 0))


def layer_direct_shifted(x: np.ndarray, poly: Polyphase, weights: np.ndarray, n_out: int,
                         block_bytes: int, time_major: bool = False) -> np.ndarray:
    """The layer output, without bias, by shifted GEMMs.

    Parameters
    ----------
    x : ndarray, shape (B, C_in, W), any strides
    poly : Polyphase
        Of an ungrouped layer.
    weights : ndarray, shape (Kp, S*C_in, P*filters)
        From :func:`shifted_weights`, same dtype as `x`.
    n_out : int
        Layer outputs.
    block_bytes : int
        Budget for one block of input and output rows.
    time_major : bool
        Lay the result out channels last in memory (a transposed view).

    Returns
    -------
    ndarray, shape (B, filters, n_out)
        Newly allocated.  The extended input and the output rows are per-thread
        scratch buffers (:mod:`fftconv._scratch`) of about the size of the input
        and the output.
    """
    b, c_in, _ = x.shape
    kp, ci, co = weights.shape
    p, s = poly.out_phases, poly.in_phases
    t = poly.phase_outputs(n_out)
    rows = t + kp - 1  # phase-input samples per batch item
    xe = scratch("shifted.input", (b, rows, s, c_in), x.dtype)
    extended_phases(x, poly.spec, s * poly.first_block, xe.transpose(0, 3, 2, 1))
    y = scratch("shifted.output", (b, rows, p, co // p), x.dtype)
    x_rows = xe.reshape(b * rows, ci)
    y_rows = y.reshape(b * rows, co)
    total = b * rows - kp + 1  # the last kp - 1 rows are never a full window
    step = max(1, block_bytes // ((ci + co) * x.itemsize))
    for r0 in range(0, total, step):
        r1 = min(total, r0 + step)
        for k in range(kp):
            gemm_accumulate(x_rows[r0 + k:r1 + k], weights[k], y_rows[r0:r1],
                            beta=1.0 if k else 0.0)
    result = y.reshape(b, rows * p, co // p)[:, :n_out]
    if time_major:
        return result.copy().transpose(0, 2, 1)
    return np.ascontiguousarray(result.transpose(0, 2, 1))
