"""FFT path: ``corr_valid`` by overlap-save block convolution with real transforms.

Overlap-save rather than overlap-add: each block of ``N`` input samples gives
``M = N - Kp + 1`` finished outputs that are written once, with no accumulation
across blocks, so blocks are independent (they can be batched into one FFT call,
and a stream needs no output state).  Input blocks overlap by ``Kp - 1`` samples,
which are read, never written.

In the frequency domain every bin is one small complex matrix product
``(Co, Ci) @ (Ci, blocks)`` per group, so input channels and input phases are
summed *before* the inverse transform: one inverse FFT per output channel-phase.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fftconv.backends import Backend, get_backend


def kernel_spectra(w: np.ndarray, n_fft: int, backend: Backend) -> Any:
    """Spectra of the phase kernels, laid out for the per-bin product, on the device.

    Parameters
    ----------
    w : ndarray, shape (G, Co, Ci, Kp), float32 or float64
        Host or device array.
    n_fft : int
        FFT length, ``>= Kp``.
    backend : Backend

    Returns
    -------
    array of ``backend.xp``, shape (G, n_fft // 2 + 1, Co, Ci), complex64 or complex128
        Conjugated (correlation) and scaled by ``1 / n_fft`` (so the block
        inverse transforms need no normalisation pass).  Contiguous for the
        batched GEMMs of many channel pairs; with fewer than
        ``backend.traits.matmul_min_pairs`` pairs a view whose bins lie
        contiguous in memory for each pair, as the broadcast product reads them
        (reading them with a stride of ``Co * Ci`` numbers took 1.5-4x longer).
    """
    xp = backend.xp
    spectra = backend.rfft(backend.to_device(w), n_fft, axis=-1)
    scaled = xp.conj(spectra) * np.dtype(spectra.real.dtype).type(1.0 / n_fft)
    by_bin = scaled.transpose(0, 3, 1, 2)
    if w.shape[1] * w.shape[2] < backend.traits.matmul_min_pairs:
        return by_bin
    return xp.ascontiguousarray(by_bin)


def block_bytes(batch: int, in_channels: int, out_channels: int, n_fft: int,
                itemsize: int) -> int:
    """Peak working memory of one block of ``n_fft`` samples, in bytes.

    Input segments (real), their spectra and the output spectra and blocks:
    about ``3 * batch * (in_channels + out_channels) * n_fft * itemsize``.
    """
    return 3 * batch * (in_channels + out_channels) * n_fft * itemsize


def chunk_blocks(batch: int, in_channels: int, out_channels: int, n_fft: int, itemsize: int,
                 max_bytes: int) -> int:
    """Blocks transformed together: as many as `max_bytes` holds, at least one.

    It depends on the block length and the channel layout, not on the signal
    length, so inputs of every width share one set of block transforms.
    """
    per_block = block_bytes(batch, in_channels, out_channels, n_fft, itemsize)
    return max(1, max_bytes // max(per_block, 1))


def corr_valid_fft(x: Any, spectra: Any, kp: int, n_fft: int, backend: Backend,
                   max_bytes: int = 1 << 26, time_major: bool = False,
                   keep: list | None = None) -> Any:
    """Grouped, stride-1, valid cross-correlation by overlap-save.

    ``y[b, g*Co + o, t] = sum_{i, k} w[g, o, i, k] * x[b, g*Ci + i, t + k]``

    Parameters
    ----------
    x : array of ``backend.xp``, shape (B, G*Ci, L), float32 or float64
    spectra : array of ``backend.xp``, shape (G, n_fft // 2 + 1, Co, Ci)
        From :func:`kernel_spectra` of ``w`` with shape (G, Co, Ci, Kp).
    kp : int
        Phase kernel length ``Kp <= L``.
    n_fft : int
        Block FFT length, ``>= Kp``.
    backend : Backend
    max_bytes : int
        Working-memory budget.  Blocks are transformed in chunks of
        :func:`chunk_blocks` blocks (the last chunk fewer), so peak extra memory
        is ``max(max_bytes, block_bytes(...))`` plus the output, whatever ``L``.
        The chunk's buffers and transforms (:meth:`Backend.chunk_fft`) depend on
        ``n_fft``, the channel layout and `max_bytes` only: calls on inputs of
        any width reuse them (a few layouts at most stay with the backend, see
        ``backends.MAX_BLOCK_SHAPES``).
    time_major : bool
        Lay the result out channels last in memory (a transposed view).
    keep : list or None
        If given, the spectra of `x`'s blocks are appended to it, copied out of
        the chunk buffers: per chunk of ``count`` blocks an array ``(Ci, G, B,
        count, n_fft // 2 + 1)``, complex, the layout of the kernel gradient
        (:func:`corr_valid_spectra` of the blocks, input channels as its batch).

    Returns
    -------
    array of ``backend.xp``, shape (B, G*Co, L - kp + 1)
    """
    b, gci, length = x.shape
    groups, _, c_out, c_in = spectra.shape
    t_total = length - kp + 1
    step = n_fft - kp + 1
    n_blocks = -(-t_total // step)
    out = backend.empty_signal((b, groups * c_out, t_total), x.dtype, time_major)
    if out.size == 0:
        return out
    chunk, fft = _chunk_fft(b, gci, groups * c_out, n_fft, x.dtype, max_bytes, backend)
    with fft.use():
        for first in range(0, n_blocks, chunk):
            count = min(chunk, n_blocks - first)
            rows_in = b * gci * count
            split = _splitter(backend, b, count)
            _gather_blocks(x, first, step, split(fft.real_in[:rows_in], gci), backend)
            spec_in = split(fft.forward(rows_in), gci).reshape(b, groups, c_in, count, -1)
            if keep is not None:  # copied: the transform's result lasts until its next call
                keep.append(spec_in.transpose(2, 1, 0, 3, 4).copy())
            _scatter_blocks(_output_blocks(spec_in, spectra, fft, backend), first * step, step,
                            out, backend)
    return out


def corr_valid_spectra(x_spectra: Any, spectra: Any, n_out: int, n_fft: int,
                       backend: Backend, max_bytes: int = 1 << 26) -> Any:
    """:func:`corr_valid_fft` of inputs of one block each, from the spectra of the blocks.

    The same per-bin product and inverse transforms, on spectra computed before
    (kept by ``corr_valid_fft(..., keep=...)``) instead of transforming blocks.

    Parameters
    ----------
    x_spectra : array of ``backend.xp``, shape (B, G, Ci, n_fft // 2 + 1), complex
        Unnormalised real transforms of input rows of ``L <= n_fft`` samples,
        zero-padded to `n_fft`.
    spectra : array of ``backend.xp``, shape (G, n_fft // 2 + 1, Co, Ci)
        From :func:`kernel_spectra` of ``w`` with shape (G, Co, Ci, Kp).
    n_out : int
        Outputs per row, ``L - Kp + 1``.
    n_fft : int
    backend : Backend
    max_bytes : int
        As for :func:`corr_valid_fft`, whose chunk transforms are shared.

    Returns
    -------
    array of ``backend.xp``, shape (B, G*Co, n_out), float32 or float64
    """
    b, groups, c_in, _ = x_spectra.shape
    c_out = spectra.shape[2]
    dtype = np.dtype(x_spectra.real.dtype)
    out = backend.empty_signal((b, groups * c_out, n_out), dtype, False)
    _, fft = _chunk_fft(b, groups * c_in, groups * c_out, n_fft, dtype, max_bytes, backend)
    with fft.use():
        blocks = _output_blocks(x_spectra[:, :, :, None], spectra, fft, backend)
        backend.assign(out, blocks[:, :, 0, :n_out])
    return out


def _chunk_fft(b: int, gci: int, gco: int, n_fft: int, dtype: Any, max_bytes: int,
               backend: Backend) -> tuple[int, Any]:
    """Blocks per chunk (:func:`chunk_blocks`) and the chunk transforms of a call's layout."""
    chunk = chunk_blocks(b, gci, gco, n_fft, np.dtype(dtype).itemsize, max_bytes)
    return chunk, backend.chunk_fft(b * gci * chunk, b * gco * chunk, n_fft, dtype)


def _output_blocks(spec_in: Any, spectra: Any, fft: Any, backend: Backend) -> Any:
    """Output blocks ``(B, G*Co, N, n_fft)`` from input block spectra ``(B, G, Ci, N, F)``.

    The per-bin product into ``fft.spectrum_in`` and its inverse transforms; the
    result lies in `fft`'s buffers, valid until their next use.
    """
    b, groups, _, count, _ = spec_in.shape
    c_out = spectra.shape[2]
    rows_out = b * groups * c_out * count
    split = _splitter(backend, b, count)
    _per_bin_product(spec_in, spectra, split(fft.spectrum_in[:rows_out], groups * c_out).reshape(
        b, groups, c_out, count, -1), backend)
    return split(fft.inverse(rows_out), groups * c_out)


def _splitter(backend: Backend, b: int, count: int) -> Any:
    """``split(rows, c)``: rows ``(B*c*count, m)`` as a ``(B, c, count, m)`` view, no copy."""
    return lambda rows, c: backend.reshape_view(rows, (b, c, count, rows.shape[-1]))


def _scatter_blocks(blocks: Any, start: int, step: int, out: Any, backend: Backend) -> None:
    """Write the first `step` samples of each block to ``out[..., start:]`` (clipped).

    blocks : (B, C, count, n_fft); out : (B, C, T).
    """
    count = blocks.shape[2]
    stop = min(out.shape[-1], start + count * step)
    full = (stop - start) // step
    if full:
        target = backend.reshape_view(out[:, :, start:start + full * step],
                                      out.shape[:2] + (full, step))
        backend.assign(target, blocks[:, :, :full, :step])
    rest = stop - start - full * step
    if rest:
        backend.assign(out[:, :, stop - rest:stop], blocks[:, :, full, :rest])


def _gather_blocks(x: Any, first: int, step: int, seg: Any, backend: Backend) -> None:
    """Copy blocks ``first ..`` of ``n_fft`` samples, ``step`` apart, into `seg`.

    seg : ndarray, shape (B, C, count, n_fft); samples past the end of `x` are zeros.
    """
    length = x.shape[-1]
    count, n_fft = seg.shape[2], seg.shape[3]
    inside = 0 if length < n_fft else min(count, max(0, (length - n_fft) // step + 1 - first))
    if inside:
        # The blocks as a (B, C, inside, n_fft) view of x (as sliding_window_view
        # would give, without its per-call checks: 0.15 ms a chunk on long signals).
        stop = (first + inside - 1) * step + n_fft
        backend.assign(seg[:, :, :inside], backend.windows(x[:, :, first * step:stop], n_fft,
                                                           step))
    # The last few blocks run past the end of the signal.
    for k in range(inside, count):
        start = (first + k) * step
        avail = max(0, min(n_fft, length - start))
        seg[:, :, k, :avail] = x[:, :, start:start + avail]
        seg[:, :, k, avail:] = 0


def _per_bin_product(spec_in: Any, spectra: Any, out: Any, backend: Backend | None = None,
                     ) -> None:
    """``out[b, g, o, n, f] = sum_i S[g, f, o, i] * X[b, g, i, n, f]``.

    spec_in : (B, G, Ci, N, F); spectra : (G, F, Co, Ci); out : (B, G, Co, N, F);
    arrays of ``backend.xp`` (None: the numpy backend).
    """
    backend = backend or get_backend("numpy")
    xp = backend.xp
    b, groups, c_in, count, bins = spec_in.shape
    c_out = spectra.shape[2]
    if c_in * c_out < backend.traits.matmul_min_pairs:
        # Few channel pairs: broadcast multiply-accumulate over input channels.
        s = spectra.transpose(0, 2, 3, 1)[None, :, :, :, None, :]  # (1, G, Co, Ci, 1, F)
        xp.multiply(spec_in[:, :, None, 0], s[:, :, :, 0], out=out)
        for i in range(1, c_in):
            out += spec_in[:, :, None, i] * s[:, :, :, i]
        return
    # Many pairs: one batched complex GEMM per (group, bin).
    cols = spec_in.transpose(1, 4, 2, 0, 3).reshape(groups, bins, c_in, b * count)
    res = xp.matmul(spectra, cols)  # (G, F, Co, B*N)
    out[...] = res.reshape(groups, bins, c_out, b, count).transpose(3, 0, 2, 4, 1)


class FFTPath:
    """The engine's ``'fft'`` path: overlap-save on the phase inputs, then reassembly."""

    def prepare(self, w: np.ndarray, plan: Any, backend: Backend) -> Any:
        """The phase kernels' spectra at ``plan.n_fft`` on the device (:func:`kernel_spectra`)."""
        return kernel_spectra(w, plan.n_fft, backend)

    def run(self, x: Any, spectra: Any, plan: Any, job: Any) -> Any:
        """The layer output ``(B, C_out, n_out)``, without bias, for the input ``(B, C_in, W)``.

        With ``job.keep``, the spectra of the phase inputs' blocks go into
        ``job.keep[plan.n_fft]`` (see :func:`corr_valid_fft`).
        """
        backend, poly = job.backend, job.poly
        xs = poly.phase_inputs(x, job.n_out, backend)
        keep = None if job.keep is None else job.keep.setdefault(plan.n_fft, [])
        y = corr_valid_fft(xs, spectra, plan.problem.kernel_length, plan.n_fft, backend,
                           job.memory.fft_bytes, job.time_major, keep)
        return poly.reassemble(y, job.n_out, x.shape[1], job.time_major, backend)
