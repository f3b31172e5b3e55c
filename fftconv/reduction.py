"""Reduce any `SignalConv1D` configuration to one grouped, stride-1 valid correlation.

With the correlation kernel ``g`` (the kernel, flipped for convolution), the
zero-inserted upsampling ``xu`` of the boundary-extended input ``xe``
(``xu[i*U] = xe[i]``) and the offset ``a = pad_start*U - c`` (0 for `valid`),
every output of the layer is::

    y[n] = sum_j g[j] * xu[n*D + a + j]

Write ``n = q + P*t`` with ``P = U/gcd(U, D)`` output phases and ``S = D/gcd(U, D)``.
Tap ``j`` of output phase ``q`` meets a nonzero of ``xu`` only when
``q*D + a + j = U*i``; then it reads ``xe[i + S*t]``.  Splitting ``i = phi + S*k``
by input phase ``phi`` turns phase ``q`` into a sum of stride-1 correlations of
the input polyphase components ``xe[phi::S]`` with short phase kernels.  So the
layer is one call of::

    corr_valid(x: (B, G*Ci, Lp), w: (G, Co, Ci, Kp)) -> (B, G*Co, Lp - Kp + 1)

with ``Ci = S*C_in`` input-phase channels and ``Co = P*filters`` output-phase
channels (``G = 1``), or, when channel separable, ``G = C_in`` groups of
``Ci = S`` and ``Co = P*filters``.  No output that ``strides_down`` discards is
computed and no zero that ``strides_up`` inserts is multiplied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from math import gcd
from typing import Any, NamedTuple

import numpy as np

from fftconv.backends import Backend, get_backend
from fftconv.spec import ConvSpec


class _TapMap(NamedTuple):
    """Every kernel tap that meets a nonzero of the upsampled input."""

    q: np.ndarray  # output phase
    phi: np.ndarray  # input phase
    k: np.ndarray  # position in the phase kernel
    j: np.ndarray  # tap of the correlation kernel
    first: int  # phase-input sample read by k = 0 of output 0


@dataclass(frozen=True)
class Polyphase:
    """Phase bookkeeping of a spec; independent of the input width and channels.

    Attributes
    ----------
    spec : ConvSpec
    out_phases : int
        ``P``, output phases interleaved in the result.
    in_phases : int
        ``S``, polyphase components of the extended input.
    """

    spec: ConvSpec

    @property
    def out_phases(self) -> int:
        s = self.spec
        return s.strides_up // gcd(s.strides_up, s.strides_down)

    @property
    def in_phases(self) -> int:
        s = self.spec
        return s.strides_down // gcd(s.strides_up, s.strides_down)

    @property
    def offset(self) -> int:
        """``a``: position in ``xu`` (extended) read by tap 0 of output 0."""
        s = self.spec
        return s.input_pads[0] * s.strides_up - (s.centre if s.padding != "valid" else 0)

    @cached_property
    def _taps(self) -> _TapMap:
        # Tap j of output phase q reads xu[q*D + a + j], a nonzero only when U divides it.
        # With g = gcd(U, D) that needs g | (a + j), and then q*S = -(a + j)/g (mod P)
        # has exactly one solution q < P: each tap serves one phase, so this costs O(K)
        # whatever the strides.
        s = self.spec
        g = gcd(s.strides_up, s.strides_down)
        p, sp = self.out_phases, self.in_phases
        j = np.arange(s.kernel_support, dtype=np.int64)
        shifted = self.offset + j
        j, r = j[shifted % g == 0], shifted[shifted % g == 0] // g
        q = (-r * pow(sp, -1, p)) % p if p > 1 else np.zeros_like(r)
        i0 = (q * sp + r) // p  # (q*D + a + j) / U, exact
        k = i0 // sp
        first = int(k.min())
        return _TapMap(q, i0 % sp, k - first, j, first)

    @property
    def first_block(self) -> int:
        """``e``: index of the first phase-input sample read by output 0."""
        return self._taps.first

    @property
    def phase_kernel_length(self) -> int:
        """``Kp``: length of the phase kernels (about ``K / (U*S)``)."""
        return int(self._taps.k.max()) + 1

    def phase_kernels(self, kernel: np.ndarray) -> np.ndarray:
        """Rearrange a tfc kernel into the phase kernels of `corr_valid`.

        Parameters
        ----------
        kernel : ndarray, shape (K, C_in, filters)

        Returns
        -------
        ndarray, shape (G, Co, Ci, Kp)
            ``(1, P*filters, S*C_in, Kp)``, or ``(C_in, P*filters, S, Kp)`` when
            channel separable; channel orders ``(q, f)`` and ``(phi, c)``.
        """
        s = self.spec
        g = kernel if s.corr else kernel[::-1]
        _, c_in, filters = kernel.shape
        p, sp, kp = self.out_phases, self.in_phases, self.phase_kernel_length
        t = self._taps
        w = np.zeros((p, sp, kp, c_in, filters), dtype=kernel.dtype)
        w[t.q, t.phi, t.k] = g[t.j]
        if s.channel_separable:
            return w.transpose(3, 0, 4, 1, 2).reshape(c_in, p * filters, sp, kp)
        return w.transpose(0, 4, 1, 3, 2).reshape(1, p * filters, sp * c_in, kp)

    def phase_kernels_adjoint(self, dw: np.ndarray, c_in: int) -> np.ndarray:
        """Adjoint of :meth:`phase_kernels`: map phase-kernel gradients back to the kernel.

        Parameters
        ----------
        dw : ndarray, shape (G, Co, Ci, Kp)
            Laid out as :meth:`phase_kernels` returns.
        c_in : int

        Returns
        -------
        ndarray, shape (K, C_in, filters)
            Taps that meet only the zeros inserted by upsampling get 0.
        """
        s = self.spec
        p, sp, kp = self.out_phases, self.in_phases, self.phase_kernel_length
        filters = dw.shape[1] // p
        if s.channel_separable:
            w = dw.reshape(c_in, p, filters, sp, kp).transpose(1, 3, 4, 0, 2)
        else:
            w = dw.reshape(p, filters, sp, c_in, kp).transpose(0, 2, 4, 3, 1)
        t = self._taps
        g = np.zeros((s.kernel_support, c_in, filters), dtype=dw.dtype)
        g[t.j] = w[t.q, t.phi, t.k]  # each tap serves one phase kernel entry
        return g if s.corr else g[::-1].copy()

    def phase_outputs(self, n_out: int) -> int:
        """``T``: outputs computed per output phase for `n_out` layer outputs."""
        return -(-n_out // self.out_phases)

    def phase_inputs(self, x: Any, n_out: int, backend: Backend | None = None) -> Any:
        """Extend `x` at its boundaries and split it into input-phase channels.

        Parameters
        ----------
        x : array of ``backend.xp``, shape (B, C_in, W)
        n_out : int
            Layer outputs wanted.
        backend : Backend or None
            Where `x` lives; None: the numpy backend.

        Returns
        -------
        array of ``backend.xp``, shape (B, G*Ci, T + Kp - 1)
            Channel order ``(phi, c)``, or ``(c, phi)`` when channel separable;
            a view of `x` when there is one input phase and no extension.
        """
        s = self.spec
        b, c_in, _ = x.shape
        sp = self.in_phases
        length = self.phase_outputs(n_out) + self.phase_kernel_length - 1
        if sp == 1 and s.input_pads == (0, 0) and self.first_block == 0 and length <= x.shape[-1]:
            return x[:, :, :length]  # one phase, no extension: the input itself, no copy
        xp = (backend or get_backend("numpy")).xp
        if s.channel_separable:
            out = xp.empty((b, c_in, sp, length), dtype=x.dtype)
            by_channel = out
        else:
            out = xp.empty((b, sp, c_in, length), dtype=x.dtype)
            by_channel = out.transpose(0, 2, 1, 3)
        extended_phases(x, s, sp * self.first_block, by_channel, xp)
        return out.reshape(b, c_in * sp, length)

    def phase_inputs_adjoint(self, dxs: Any, width: int, time_major: bool = False,
                             backend: Backend | None = None) -> Any:
        """Adjoint of :meth:`phase_inputs`: gather phase-input gradients onto the input.

        Parameters
        ----------
        dxs : array of ``backend.xp``, shape (B, G*Ci, T + Kp - 1), any strides
            Channel order as :meth:`phase_inputs` returns.
        width : int
            ``W``, the width of the input (several widths give one output width
            when downsampling, so it is not implied by `dxs`).
        time_major : bool
            Lay the result out channels last in memory (a transposed view).
        backend : Backend or None
            Where `dxs` lives; None: the numpy backend.

        Returns
        -------
        array of ``backend.xp``, shape (B, C_in, W)
            See :func:`extended_phases_adjoint`.
        """
        b, channels, length = dxs.shape
        sp = self.in_phases
        c_in = channels // sp
        if self.spec.channel_separable:
            by_channel = dxs.reshape(b, c_in, sp, length)
        else:
            by_channel = dxs.reshape(b, sp, c_in, length).transpose(0, 2, 1, 3)
        xp = (backend or get_backend("numpy")).xp
        return extended_phases_adjoint(by_channel, self.spec, sp * self.first_block, width,
                                       time_major, xp)

    def reassemble_adjoint(self, g: Any, c_in: int, pad: int = 0, time_major: bool = False,
                           backend: Backend | None = None) -> Any:
        """Adjoint of :meth:`reassemble`: split a layer-output cotangent into output phases.

        Parameters
        ----------
        g : array of ``backend.xp``, shape (B, C_out, n_out), any strides
        c_in : int
        pad : int
            Zero phase samples added at both ends (``Kp - 1`` makes the adjoint
            of ``corr_valid``, a full correlation, a valid one).
        time_major : bool
            Lay the result out with time before the phase channels in memory,
            ``(B, G, T + 2*pad, P, filters)`` (a transposed view).
        backend : Backend or None
            Where `g` lives; None: the numpy backend.

        Returns
        -------
        array of ``backend.xp``, shape (B, G, P, filters, T + 2*pad)
            ``out[b, g, q, f, pad + t] = g[b, g*filters + f, q + P*t]``, zeros
            past ``n_out``: the phase channels ``(q, f)`` that :meth:`reassemble`
            interleaves.  New.
        """
        xp = (backend or get_backend("numpy")).xp
        b, c_out, n_out = g.shape
        p = self.out_phases
        groups = c_in if self.spec.channel_separable else 1
        filters = c_out // groups
        length = self.phase_outputs(n_out) + 2 * pad
        if time_major:
            out = xp.zeros((b, groups, length, p, filters), g.dtype).transpose(0, 1, 3, 4, 2)
        else:
            out = xp.zeros((b, groups, p, filters, length), g.dtype)
        signal = g.reshape(b, groups, filters, n_out)
        whole = n_out // p  # phase outputs that every phase has
        out[..., pad:pad + whole] = signal[..., :whole * p].reshape(
            b, groups, filters, whole, p).transpose(0, 1, 4, 2, 3)
        rest = n_out - whole * p
        if rest:
            out[:, :, :rest, :, pad + whole] = signal[..., whole * p:].transpose(0, 1, 3, 2)
        return out

    def reassemble(self, y: Any, n_out: int, c_in: int, time_major: bool = False,
                   backend: Backend | None = None) -> Any:
        """Interleave output phases back into the layer output.

        Parameters
        ----------
        y : array of ``backend.xp``, shape (B, G*P*filters, T)
        n_out : int
        c_in : int
        time_major : bool
            Lay a new result out channels last in memory (a transposed view).
        backend : Backend or None
            Where `y` lives; None: the numpy backend.

        Returns
        -------
        array of ``backend.xp``, shape (B, C_out, n_out)
            ``C_out = filters`` or ``C_in*filters`` (channel ``c*filters + f``).
        """
        b, _, t = y.shape
        p = self.out_phases
        groups = c_in if self.spec.channel_separable else 1
        filters = y.shape[1] // (groups * p)
        if p == 1:
            return y[:, :, :n_out]
        if time_major and groups == 1 and y.transpose(0, 2, 1).flags.c_contiguous:
            # Rows of y hold (q, f) for one phase output t, rows of the layer output
            # f for one output t*P + q: the same memory, so interleaving is a reshape.
            rows = y.transpose(0, 2, 1).reshape(b, t * p, filters)
            return rows.transpose(0, 2, 1)[:, :, :n_out]
        backend = backend or get_backend("numpy")
        phases = y.reshape(b, groups, p, filters, t)
        out = backend.empty_signal((b, groups, filters, t * p), y.dtype, time_major)
        if p <= FEW_PHASES:  # a strided write per phase beats a 5-d transpose
            for q in range(p):
                out[..., q::p] = phases[:, :, q]
        else:
            backend.reshape_view(out, (b, groups, filters, t, p))[...] = phases.transpose(
                0, 1, 3, 4, 2)
        return out.reshape(b, groups * filters, t * p)[:, :, :n_out]


def check_fits(spec: ConvSpec, input_shape: tuple[int, int, int], filters: int,
               itemsize: int, memory: int | None = None) -> None:
    """Refuse at once a call whose arrays could not fit in memory.

    Counts the output, the phase kernels ``(P, S, Kp, C_in, filters)`` and the
    phase inputs ``(B, S*C_in, T + Kp - 1)`` (about the input, or less).

    Parameters
    ----------
    spec : ConvSpec
    input_shape : tuple of int
        ``(B, C_in, W)``, with ``spec.output_width(W) >= 1``.
    filters : int
    itemsize : int
        Bytes per sample (4 or 8).
    memory : int or None
        Bytes available; None means this machine's physical memory (no check
        where the platform does not report it).

    Raises
    ------
    ValueError
        Naming the strides and the input width, and the size needed.
    """
    memory = physical_memory() if memory is None else memory
    if memory is None:
        return
    width = input_shape[2]
    for size, what in _array_sizes(spec, input_shape, filters, itemsize):
        if size > memory:
            raise ValueError(
                f"strides_up={spec.strides_up}, strides_down={spec.strides_down} and "
                f"kernel_support={spec.kernel_support} on an input of width {width}: {what} "
                f"would need {_gib(size)}, more than this machine's memory ({_gib(memory)}).")


def _array_sizes(spec: ConvSpec, input_shape: tuple[int, int, int], filters: int,
                 itemsize: int) -> Iterator[tuple[int, str]]:
    """Bytes of the large arrays of a call, and what they are, cheapest to compute first."""
    b, c_in, width = input_shape
    poly = polyphase(spec)
    p, sp = poly.out_phases, poly.in_phases
    n_out = spec.output_width(width)
    c_out = c_in * filters if spec.channel_separable else filters
    yield (b * c_out * n_out * itemsize,
           f"the output, shape (batch, channels, width) = {(b, c_out, n_out)},")
    # A lower bound (Kp >= 1) first, so that huge phase counts never reach the tap arithmetic.
    yield p * sp * c_in * filters * itemsize, f"the phase kernels ({p} x {sp} phases)"
    kp = poly.phase_kernel_length
    yield (p * sp * kp * c_in * filters * itemsize,
           f"the phase kernels ({p} x {sp} phases of {kp} taps)")
    length = poly.phase_outputs(n_out) + kp - 1
    yield b * sp * c_in * length * itemsize, f"the phase inputs ({sp} phases of {length} samples)"


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where it is not reported."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:.3g} GiB"


#: Output phases up to which :meth:`Polyphase.reassemble` writes phase by phase.
FEW_PHASES = 16


@cache
def polyphase(spec: ConvSpec) -> Polyphase:
    """The (shared, cached) phase bookkeeping of `spec`."""
    return Polyphase(spec)


def extended_phases(x: Any, spec: ConvSpec, start: int, out: Any, xp: Any = np) -> None:
    """Polyphase components of the boundary-extended input, from sample `start` on.

    ``out[b, c, phi, t] = xe[b, c, start + phi + S*t]`` where ``xe`` is `x`
    extended by ``spec.input_pads`` (zeros, or reflection with
    ``numpy.pad(mode='reflect')`` semantics, which keep reflecting past the
    input's length); samples beyond the extension are zeros.  The interior is
    read in one pass for all phases, whatever the layout of `x`.

    Parameters
    ----------
    x : array of `xp`, shape (B, C, W), any strides
    spec : ConvSpec
    start : int
    out : array of `xp`, shape (B, C, S, L), any strides; every sample is written
    xp : module
        The array module of `x` and `out` (numpy or cupy).
    """
    pad_start, pad_end = spec.input_pads
    if spec.padding == "same_reflect":
        xe = xp.pad(x, ((0, 0), (0, 0), (pad_start, pad_end)), mode="reflect")
    else:
        xe, start = x, start - pad_start
    sp, length = out.shape[2], out.shape[3]
    size = xe.shape[-1]
    # Samples t whose every phase lies inside xe: one reading pass for all phases.
    inner_lo = min(length, max(0, -(start // sp)))
    inner_hi = max(inner_lo, min(length, (size - start) // sp))
    if inner_hi > inner_lo:
        begin = start + sp * inner_lo
        block = xe[:, :, begin:begin + sp * (inner_hi - inner_lo)]
        out[:, :, :, inner_lo:inner_hi] = block.reshape(
            block.shape[:2] + (inner_hi - inner_lo, sp)).transpose(0, 1, 3, 2)
    # The edge samples (at most a kernel's length of them per phase), all phases at once.
    # Their indices are made by `xp`, where the data is: on a GPU a host-made index
    # array would be a synchronous upload per call (0.5-1.5 ms on an H200).
    if inner_lo or inner_hi < length:
        edge = xp.concatenate((xp.arange(inner_lo), xp.arange(inner_hi, length)))
        where = start + xp.arange(sp)[:, None] + sp * edge  # (S, edges) indices into xe
        inside = (where >= 0) & (where < size)
        taken = xe[:, :, xp.clip(where, 0, size - 1)]
        out[:, :, :, edge] = xp.where(inside, taken, xp.zeros((), xe.dtype))


def extended_phases_adjoint(d: Any, spec: ConvSpec, start: int, width: int,
                            time_major: bool = False, xp: Any = np) -> Any:
    """Adjoint of :func:`extended_phases`: the gradient of `x` from that of its phases.

    Parameters
    ----------
    d : array of `xp`, shape (B, C, S, L), any strides
        Gradient of ``out`` of :func:`extended_phases`.
    spec : ConvSpec
    start : int
    width : int
        ``W``, the width of ``x``.
    time_major : bool
        Lay the result out channels last in memory (a transposed view).
    xp : module
        The array module of `d` (numpy or cupy).

    Returns
    -------
    array of `xp`, shape (B, C, W)
        New.  The gradients of zeros (padding, and samples beyond the
        extension) are dropped; with ``same_reflect`` that of every reflected
        sample is added to the sample it copies.
    """
    b, c, sp, length = d.shape
    pad_start, pad_end = spec.input_pads
    # Flat sample m = phi + S*t is d[..., phi, t]: input sample offset + m.
    total, offset = length * sp, start - pad_start

    def flat(first: int, stop: int) -> Any:
        """Flat samples ``first .. stop-1``, shape (B, C, stop - first)."""
        t0, t1 = first // sp, -(-stop // sp)
        run = d[..., t0:t1].transpose(0, 1, 3, 2).reshape(b, c, (t1 - t0) * sp)
        return run[..., first - sp * t0:stop - sp * t0]

    lo = min(total, max(0, -offset))
    hi = max(lo, min(total, width - offset))
    if time_major:
        dx = xp.zeros((b, width, c), dtype=d.dtype).transpose(0, 2, 1)
    else:
        dx = xp.zeros((b, c, width), dtype=d.dtype)
    if sp <= FEW_PHASES:  # a strided write per phase beats interleaving first
        for phi in range(sp):
            t0, t1 = max(0, -(-(lo - phi) // sp)), -(-(hi - phi) // sp)
            if t1 > t0:
                begin = offset + phi + sp * t0
                dx[:, :, begin:begin + sp * (t1 - t0 - 1) + 1:sp] = d[:, :, phi, t0:t1]
    elif hi > lo:
        dx[:, :, offset + lo:offset + hi] = flat(lo, hi)
    if spec.padding == "same_reflect":
        before = max(0, -pad_start - offset)
        after = max(hi, min(total, width + pad_end - offset))
        for first, stop in ((before, lo), (hi, after)):
            if stop > first:
                _fold_reflections(flat(first, stop), offset + first, dx, xp)
    return dx


def _fold_reflections(v: Any, i0: int, dx: Any, xp: Any) -> None:
    """Add the gradients `v` (B, C, n) of reflected samples ``i0 .. i0+n-1`` to `dx` (B, C, W).

    ``numpy.pad(mode='reflect')`` copies sample ``i`` (outside ``[0, W)``) from
    ``r = i mod 2(W-1)`` when ``r < W`` and from ``2(W-1) - r`` otherwise (a
    width-1 input from 0).  Pads longer than a period are summed period by
    period first, so every remaining piece lands on a contiguous slice.
    """
    width = dx.shape[-1]
    if width == 1:
        dx[..., 0] += v.sum(axis=-1)
        return
    period = 2 * (width - 1)
    first, n = i0 % period, v.shape[-1]
    if first + n > period:
        periods = -(-(first + n) // period)
        aligned = xp.zeros(v.shape[:-1] + (periods * period,), dtype=v.dtype)
        aligned[..., first:first + n] = v
        v, first, n = aligned.reshape(v.shape[:-1] + (periods, period)).sum(axis=-2), 0, period
    rising = min(first + n, width)  # r in [first, rising): copies of sample r
    if rising > first:
        dx[..., first:rising] += v[..., :rising - first]
    falling = max(first, width)  # r in [falling, first + n): copies of sample period - r
    if first + n > falling:
        dx[..., period - first - n + 1:period - falling + 1] += v[..., falling - first:][..., ::-1]
