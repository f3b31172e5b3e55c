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

from dataclasses import dataclass
from functools import cache, cached_property
from math import gcd
from typing import NamedTuple

import numpy as np

from fftconv._arrays import empty_signal
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
        s = self.spec
        u, d = s.strides_up, s.strides_down
        j = np.arange(s.kernel_support)
        parts = []
        for q in range(self.out_phases):
            m0 = q * d + self.offset + j
            hit = m0 % u == 0
            i0 = m0[hit] // u
            parts.append((np.full(i0.shape, q), i0 % self.in_phases, i0 // self.in_phases, j[hit]))
        q, phi, k, taps = (np.concatenate(v) for v in zip(*parts, strict=True))
        first = int(k.min())
        return _TapMap(q, phi, k - first, taps, first)

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

    def phase_outputs(self, n_out: int) -> int:
        """``T``: outputs computed per output phase for `n_out` layer outputs."""
        return -(-n_out // self.out_phases)

    def phase_inputs(self, x: np.ndarray, n_out: int) -> np.ndarray:
        """Extend `x` at its boundaries and split it into input-phase channels.

        Parameters
        ----------
        x : ndarray, shape (B, C_in, W)
        n_out : int
            Layer outputs wanted.

        Returns
        -------
        ndarray, shape (B, G*Ci, T + Kp - 1)
            Channel order ``(phi, c)``, or ``(c, phi)`` when channel separable;
            a view of `x` when there is one input phase and no extension.
        """
        s = self.spec
        b, c_in, _ = x.shape
        sp = self.in_phases
        length = self.phase_outputs(n_out) + self.phase_kernel_length - 1
        if sp == 1 and s.input_pads == (0, 0) and self.first_block == 0 and length <= x.shape[-1]:
            return x[:, :, :length]  # one phase, no extension: the input itself, no copy
        if s.channel_separable:
            out = np.empty((b, c_in, sp, length), dtype=x.dtype)
            by_channel = out
        else:
            out = np.empty((b, sp, c_in, length), dtype=x.dtype)
            by_channel = out.transpose(0, 2, 1, 3)
        extended_phases(x, s, sp * self.first_block, by_channel)
        return out.reshape(b, c_in * sp, length)

    def reassemble(self, y: np.ndarray, n_out: int, c_in: int,
                   time_major: bool = False) -> np.ndarray:
        """Interleave output phases back into the layer output.

        Parameters
        ----------
        y : ndarray, shape (B, G*P*filters, T)
        n_out : int
        c_in : int
        time_major : bool
            Lay a new result out channels last in memory (a transposed view).

        Returns
        -------
        ndarray, shape (B, C_out, n_out)
            ``C_out = filters`` or ``C_in*filters`` (channel ``c*filters + f``).
        """
        b, _, t = y.shape
        p = self.out_phases
        groups = c_in if self.spec.channel_separable else 1
        filters = y.shape[1] // (groups * p)
        if p == 1:
            return y[:, :, :n_out]
        phases = y.reshape(b, groups, p, filters, t)
        out = empty_signal((b, groups, filters, t * p), y.dtype, time_major)
        for q in range(p):  # a strided write per phase beats a 5-d transpose
            out[..., q::p] = phases[:, :, q]
        return out.reshape(b, groups * filters, t * p)[:, :, :n_out]


@cache
def polyphase(spec: ConvSpec) -> Polyphase:
    """The (shared, cached) phase bookkeeping of `spec`."""
    return Polyphase(spec)


def extended_phases(x: np.ndarray, spec: ConvSpec, start: int, out: np.ndarray) -> None:
    """Polyphase components of the boundary-extended input, from sample `start` on.

    ``out[b, c, phi, t] = xe[b, c, start + phi + S*t]`` where ``xe`` is `x`
    extended by ``spec.input_pads`` (zeros, or reflection with
    ``numpy.pad(mode='reflect')`` semantics, which keep reflecting past the
    input's length); samples beyond the extension are zeros.  The interior is
    read in one pass for all phases, whatever the layout of `x`.

    Parameters
    ----------
    x : ndarray, shape (B, C, W), any strides
    spec : ConvSpec
    start : int
    out : ndarray, shape (B, C, S, L), any strides; every sample is written
    """
    pad_start, pad_end = spec.input_pads
    if spec.padding == "same_reflect":
        xe = np.pad(x, ((0, 0), (0, 0), (pad_start, pad_end)), mode="reflect")
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
    # The edges, phase by phase (at most a kernel's length).
    for phi in range(sp):
        first = start + phi  # index in xe of out[..., phi, 0]
        lo = max(0, -(first // sp)) if first < 0 else 0
        hi = max(lo, min(length, -(-(size - first) // sp)))
        out[:, :, phi, :lo] = 0
        out[:, :, phi, hi:] = 0
        for a, b in ((lo, min(hi, inner_lo)), (max(lo, inner_hi), hi)):
            if b > a:
                begin = first + sp * a
                out[:, :, phi, a:b] = xe[:, :, begin:begin + sp * (b - a - 1) + 1:sp]
