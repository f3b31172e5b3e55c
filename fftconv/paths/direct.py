"""Direct path: ``corr_valid`` by sliding windows and one matmul per group."""

from __future__ import annotations

from typing import Any

import numpy as np

from fftconv.backends import Backend, get_backend

#: Size of the gathered window matrix per block (bytes); bounds the extra memory.
BLOCK_BYTES = 1 << 23


def corr_valid_direct(x: Any, w: Any, block_bytes: int = BLOCK_BYTES,
                      time_major: bool = False, backend: Backend | None = None) -> Any:
    """Grouped, stride-1, valid cross-correlation computed directly.

    ``y[b, g*Co + o, t] = sum_{i, k} w[g, o, i, k] * x[b, g*Ci + i, t + k]``

    Parameters
    ----------
    x : array of ``backend.xp``, shape (B, G*Ci, L)
    w : array of ``backend.xp``, shape (G, Co, Ci, Kp), same dtype as `x`, ``Kp <= L``
    block_bytes : int
        Budget for the gathered windows of one block of outputs; the extra
        memory is about this plus the output, whatever ``L``.
    time_major : bool
        Lay the result out channels last in memory (a transposed view).
    backend : Backend or None
        Where `x` and `w` live; None: the numpy backend.

    Returns
    -------
    array of ``backend.xp``, shape (B, G*Co, L - Kp + 1)
    """
    backend = backend or get_backend("numpy")
    xp = backend.xp
    b, _, length = x.shape
    groups, c_out, c_in, kp = w.shape
    t_total = length - kp + 1
    out = backend.empty_signal((b, groups, c_out, t_total), x.dtype, time_major)
    if out.size == 0:
        return out.reshape(b, groups * c_out, t_total)
    wm = w.reshape(groups, c_out, c_in * kp)
    # (B, G, Ci, T, Kp) view, no copy.
    windows = backend.windows(x.reshape(b, groups, c_in, length), kp, 1)
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
            # Gather the windows as (G, Ci*Kp, rows*tb): one GEMM per group.  Into a
            # buffer kept from call to call: a fresh one faults its pages in again.
            view = windows[b0:b1, :, :, t0:t1, :].transpose(1, 2, 4, 0, 3)
            gathered = backend.scratch("windows.gathered", view.shape, x.dtype)
            backend.assign(gathered, view)
            cols = gathered.reshape(groups, c_in * kp, (b1 - b0) * (t1 - t0))
            if rows_out is not None and groups == 1:  # a contiguous target: rows in place
                target = backend.reshape_view(rows_out[b0:b1, t0:t1], (-1, c_out))
                xp.matmul(cols[0].T, wm[0].T, out=target)
                continue
            # (G, Co, N) products of contiguous operands, then laid out: on
            # time-major data, (N, Ci*Kp) @ (Ci*Kp, Co) products of the transposed
            # windows took 1.6-3.4x longer (8 groups of 1 -> 3 channels, 1-5 taps).
            res = xp.matmul(wm, cols).reshape(groups, c_out, b1 - b0, t1 - t0)
            if rows_out is None:
                out[b0:b1, :, :, t0:t1] = res.transpose(2, 0, 1, 3)
            else:
                rows_out[b0:b1, t0:t1] = res.transpose(2, 3, 0, 1)
    return out.reshape(b, groups * c_out, t_total)


class WindowsPath:
    """The engine's ``'direct-windows'`` path: gathered windows on the phase inputs."""

    def prepare(self, w: np.ndarray, plan: Any, backend: Backend) -> Any:
        """The phase kernels ``(G, Co, Ci, Kp)`` on the device."""
        return backend.to_device(w)

    def run(self, x: Any, w: Any, plan: Any, job: Any) -> Any:
        """The layer output ``(B, C_out, n_out)``, without bias, for the input ``(B, C_in, W)``."""
        backend, poly = job.backend, job.poly
        xs = poly.phase_inputs(x, job.n_out, backend)
        y = corr_valid_direct(xs, w, job.memory.direct_bytes, job.time_major, backend)
        return poly.reassemble(y, job.n_out, x.shape[1], job.time_major, backend)
