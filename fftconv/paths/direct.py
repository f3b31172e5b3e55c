"""Direct path: ``corr_valid`` by sliding windows and one BLAS matmul per group."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fftconv._arrays import empty_signal

#: Size of the gathered window matrix per block (bytes); bounds the extra memory.
BLOCK_BYTES = 1 << 23


def corr_valid_direct(x: np.ndarray, w: np.ndarray, block_bytes: int = BLOCK_BYTES,
                      time_major: bool = False) -> np.ndarray:
    """Grouped, stride-1, valid cross-correlation computed directly.

    ``y[b, g*Co + o, t] = sum_{i, k} w[g, o, i, k] * x[b, g*Ci + i, t + k]``

    Parameters
    ----------
    x : ndarray, shape (B, G*Ci, L)
    w : ndarray, shape (G, Co, Ci, Kp), same dtype as `x`, ``Kp <= L``
    block_bytes : int
        Budget for the gathered windows of one block of outputs; the extra
        memory is about this plus the output, whatever ``L``.
    time_major : bool
        Lay the result out channels last in memory (a transposed view).

    Returns
    -------
    ndarray, shape (B, G*Co, L - Kp + 1)
    """
    b, _, length = x.shape
    groups, c_out, c_in, kp = w.shape
    t_total = length - kp + 1
    out = empty_signal((b, groups, c_out, t_total), np.result_type(x, w), time_major)
    if out.size == 0:
        return out.reshape(b, groups * c_out, t_total)
    wm = w.reshape(groups, c_out, c_in * kp)
    # (B, G, Ci, T, Kp) view, no copy.
    windows = sliding_window_view(x.reshape(b, groups, c_in, length), kp, axis=-1)
    # Blocks of whole rows (long contiguous runs to gather) when a row fits the budget.
    row_bytes = groups * c_in * kp * t_total * out.itemsize
    rows = max(1, block_bytes // row_bytes)
    step = t_total if rows > 1 or row_bytes <= block_bytes else max(
        1, block_bytes // (groups * c_in * kp * out.itemsize))
    # Time-major results: the GEMM yields rows of (g, o) per output, as they are stored.
    rows_out = out.transpose(0, 3, 1, 2) if time_major else None  # (B, T, G, Co) memory
    for b0 in range(0, b, rows):
        b1 = min(b0 + rows, b)
        for t0 in range(0, t_total, step):
            t1 = min(t0 + step, t_total)
            # Gather the windows as (G, Ci*Kp, rows*tb): one GEMM per group.
            cols = windows[b0:b1, :, :, t0:t1, :].transpose(1, 2, 4, 0, 3)
            cols = cols.reshape(groups, c_in * kp, (b1 - b0) * (t1 - t0))
            if rows_out is None:
                res = np.matmul(wm, cols).reshape(groups, c_out, b1 - b0, t1 - t0)
                out[b0:b1, :, :, t0:t1] = res.transpose(2, 0, 1, 3)
            elif groups == 1:  # whole rows or one batch item: a contiguous target
                target = np.reshape(rows_out[b0:b1, t0:t1], (-1, c_out), copy=False)
                np.matmul(cols[0].T, wm[0].T, out=target)
            else:
                res = np.matmul(cols.transpose(0, 2, 1), wm.transpose(0, 2, 1))
                rows_out[b0:b1, t0:t1] = res.reshape(groups, b1 - b0, t1 - t0,
                                                     c_out).transpose(1, 2, 0, 3)
    return out.reshape(b, groups * c_out, t_total)
