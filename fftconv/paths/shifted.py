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

Used for ungrouped layers with enough channels (the planner's
:func:`~fftconv.planner.direct_variant`): with few channels the GEMMs are too thin
and gathering windows (``paths.direct``) wins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fftconv.backends import Backend, get_backend
from fftconv.reduction import Polyphase, extended_phases


def shifted_weights(w: np.ndarray) -> np.ndarray:
    """Phase kernels ``(1, Co, Ci, Kp)`` as the GEMM operands ``(Kp, Ci, Co)``, contiguous."""
    return np.ascontiguousarray(w[0].transpose(2, 1, 0))


def layer_direct_shifted(x: Any, poly: Polyphase, weights: Any, n_out: int,
                         block_bytes: int, time_major: bool = False,
                         backend: Backend | None = None) -> Any:
    """The layer output, without bias, by shifted GEMMs.

    Parameters
    ----------
    x : array of ``backend.xp``, shape (B, C_in, W), any strides
    poly : Polyphase
        Of an ungrouped layer.
    weights : array of ``backend.xp``, shape (Kp, S*C_in, P*filters)
        From :func:`shifted_weights`, same dtype as `x`.
    n_out : int
        Layer outputs.
    block_bytes : int
        Budget for one block of input and output rows.
    time_major : bool
        Lay the result out channels last in memory (a transposed view).
    backend : Backend or None
        Where the arrays live; None: the numpy backend.

    Returns
    -------
    array of ``backend.xp``, shape (B, filters, n_out)
        Newly allocated.  The extended input and the output rows are scratch
        buffers (:meth:`Backend.scratch`) of about the size of the input and the
        output.
    """
    backend = backend or get_backend("numpy")
    b, c_in, _ = x.shape
    kp, ci, co = weights.shape
    p, s = poly.out_phases, poly.in_phases
    t = poly.phase_outputs(n_out)
    rows = t + kp - 1  # phase-input samples per batch item
    xe = backend.scratch("shifted.input", (b, rows, s, c_in), x.dtype)
    extended_phases(x, poly.spec, s * poly.first_block, xe.transpose(0, 3, 2, 1), backend.xp)
    y = backend.scratch("shifted.output", (b, rows, p, co // p), x.dtype)
    x_rows = xe.reshape(b * rows, ci)
    y_rows = y.reshape(b * rows, co)
    total = b * rows - kp + 1  # the last kp - 1 rows are never a full window
    step = max(1, block_bytes // ((ci + co) * x.itemsize))
    for r0 in range(0, total, step):
        r1 = min(total, r0 + step)
        for k in range(kp):
            backend.gemm_accumulate(x_rows[r0 + k:r1 + k], weights[k], y_rows[r0:r1],
                                    beta=1.0 if k else 0.0)
    result = y.reshape(b, rows * p, co // p)[:, :n_out]
    # Copies, never views of the scratch rows (which the next call overwrites):
    # `ascontiguousarray` would return a view when there is one output channel.
    if time_major:
        return result.copy().transpose(0, 2, 1)
    return result.transpose(0, 2, 1).copy()


class ShiftedPath:
    """The engine's ``'direct-shifted'`` path (ungrouped layers)."""

    def prepare(self, w: np.ndarray, plan: Any, backend: Backend) -> Any:
        """The GEMM operands ``(Kp, Ci, Co)`` on the device (:func:`shifted_weights`)."""
        return backend.to_device(shifted_weights(w))

    def run(self, x: Any, weights: Any, plan: Any, job: Any) -> Any:
        """The layer output ``(B, C_out, n_out)``, without bias, for the input ``(B, C_in, W)``."""
        return layer_direct_shifted(x, job.poly, weights, job.n_out, job.memory.direct_bytes,
                                    job.time_major, job.backend)
