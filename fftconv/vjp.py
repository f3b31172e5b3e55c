"""Vector-Jacobian products of `SignalConv1D`: the reduction run backwards, on the engine.

A layer computes ``y = act(z)``, ``z = reassemble(corr_valid(phase_inputs(x), w)) + bias``
(see :mod:`fftconv.reduction`).  For a cotangent ``gz`` of ``z`` (``g * act'(z)``
for a cotangent ``g`` of ``y``) each gradient is the adjoint of that chain:

* ``dx = phase_inputs^T(corr_valid^T(reassemble^T(gz)))``.  ``reassemble^T``
  splits ``gz`` into the output phases, ``corr_valid^T`` is a full correlation
  with the phase kernels flipped and their channel axes swapped, that is a
  ``corr_valid`` of the phase cotangent padded by ``Kp - 1`` zeros at both
  ends, run by an :class:`~fftconv.engine.Engine` of its own (planned, direct
  or FFT, its kernel spectra cached), and ``phase_inputs^T`` scatters the
  phases back onto the input, dropping the padding zeros and adding the
  gradient of every reflected sample onto the sample it copies.  Strides swap
  roles: downsampling layers upsample their cotangent and the reverse.
* ``dw[g, o, i, k] = sum_{b, t} gy[b, g*Co + o, t] * xs[b, g*Ci + i, t + k]``,
  a correlation of the phase inputs ``xs`` with the phase cotangent ``gy``
  with ``Kp`` outputs, mapped back to the kernel by ``phase_kernels^T``.  It
  runs on the forward's plan: on the direct path it does the forward's
  multiply-accumulates (as GEMMs of the cotangent with shifted rows of the
  time-major phase inputs where the forward runs shifted GEMMs, by the
  gathered-window path otherwise), on the FFT path the forward's transforms
  per block (the forward's blocks of ``xs``, and blocks of ``gy`` in place of
  the kernel spectra), summed over blocks before one inverse transform per
  kernel.  The spectra of the blocks of ``xs`` may be kept from the forward
  pass (:meth:`Engine.__call__ <fftconv.engine.Engine.__call__>`'s `keep`)
  rather than computed again: memory for time.
* ``dbias = sum_{b, n} gz``.

A grouped ``corr_valid`` with ``Ci`` inputs per group (the adjoint of a channel
separable layer has ``P*filters`` of them) is the channel-separable layer with
``strides_down = Ci`` on the signal that interleaves the group's channels
sample by sample: the engine's polyphase split takes them apart again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np

from fftconv.backends import Backend
from fftconv.config import MemoryLimits
from fftconv.engine import Engine
from fftconv.parameters import RDFTParameter
from fftconv.paths.direct import corr_valid_direct
from fftconv.paths.fft import chunk_blocks, corr_valid_fft, corr_valid_spectra, kernel_spectra
from fftconv.planner import Plan
from fftconv.reduction import Polyphase, extended_phases, polyphase
from fftconv.spec import ConvSpec

__all__ = ["Adjoint", "Gradients", "rdft_gradients", "weight_gradients"]


class Gradients(NamedTuple):
    """Gradients of ``sum(z * gz)`` for the pre-activation output ``z`` of a layer.

    Attributes
    ----------
    x : array, shape (B, C_in, W), or None when not asked for
        On the device of the call.
    kernel : ndarray, shape (K, C_in, filters), or None when not asked for
    bias : array, shape (C_out,)
        On the device of the call.
    """

    x: Any
    kernel: np.ndarray | None
    bias: Any


class Adjoint:
    """The vector-Jacobian products of one layer geometry.

    Parameters
    ----------
    engine : Engine
        The layer's engine.  The input gradient runs on an engine of its own
        with the same `method`, backend, configuration and planning; the kernel
        gradient takes the path and FFT length of `engine`'s plan for the input.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._engines: dict[int, Engine] = {}
        self._lock = threading.Lock()

    def __call__(self, x: Any, gz: Any, kernel: Callable[[], np.ndarray],
                 token: Hashable | None, *, wrt_x: bool = True, wrt_kernel: bool = True,
                 time_major: bool = False, kept: dict[int, list] | None = None) -> Gradients:
        """Gradients of ``sum(z * gz)``, ``z`` the layer's output before its activation.

        Parameters
        ----------
        x : array, shape (B, C_in, W), any strides
            The input, channels first, float32 or float64 (the layer's dtype); a
            numpy array or one of the device the engine runs it on.
        gz : array, shape (B, C_out, spec.output_width(W)), any strides
            Cotangent of ``z``, same dtype and device.
        kernel : callable
            Returns the kernel ``(K, C_in, filters)`` in that dtype (host array).
        token : hashable or None
            Identifies the kernel's value, for the spectrum cache of the input
            gradient's engine (None: nothing is cached).
        wrt_x, wrt_kernel : bool
            Whether to compute the input and the kernel gradient.
        time_major : bool
            Whether the caller's arrays are channels last in memory: the
            intermediate arrays and ``dx`` are laid out so, to spare
            transposing copies.
        kept : dict or None
            The input spectra that the engine's forward call on `x` kept (its
            `keep`), for the kernel gradient (see :func:`phase_kernel_gradient`).

        Returns
        -------
        Gradients
        """
        backend = self.engine.backend_for(x)
        with backend.activate():
            x, gz = backend.to_device(x), backend.to_device(gz)
            poly = polyphase(self.engine.spec)
            (b, c_in, width), n_out = x.shape, gz.shape[-1]
            groups = c_in if self.engine.spec.channel_separable else 1
            # The phase cotangent, padded for the input gradient's full correlation; the
            # interleaved signal of a grouped one needs it time-major.
            pad = poly.phase_kernel_length - 1
            phases = poly.reassemble_adjoint(gz, c_in, pad, time_major or groups > 1, backend)
            dx = None
            if wrt_x:
                dx = self._input_gradient(poly, phases, c_in, width, kernel, token, time_major)
            dkernel = None
            if wrt_kernel:
                t = poly.phase_outputs(n_out)
                co = phases.shape[2] * phases.shape[3]
                gy = phases[..., pad:pad + t].reshape(b, groups, co, t)
                dw = phase_kernel_gradient(x, gy, n_out, poly,
                                           self.engine.plan_for(x.shape, x.dtype, time_major),
                                           backend,
                                           self.engine.config.memory, kept)
                dkernel = poly.phase_kernels_adjoint(backend.to_host(dw), c_in)
            return Gradients(dx, dkernel, gz.sum(axis=(0, 2)))

    def _input_gradient(self, poly: Polyphase, phases: Any, c_in: int, width: int,
                        kernel: Callable[[], np.ndarray], token: Hashable | None,
                        time_major: bool) -> Any:
        """``dx`` (B, C_in, W) from the padded phase cotangent `phases` (B, G, P, F, L)."""
        b, groups, p, filters, length = phases.shape
        if groups == 1:
            signal = phases.reshape(b, p * filters, length)
        else:  # the group's channels interleaved, see the module docstring
            signal = phases.transpose(0, 1, 4, 2, 3).reshape(b, groups, length * p * filters)
        engine = self._input_engine(poly, c_in, groups)
        dxs = engine(signal, lambda: _adjoint_kernel(poly.phase_kernels(kernel()), groups),
                     token, time_major)
        return poly.phase_inputs_adjoint(dxs, width, time_major, engine.backend_for(dxs))

    def _input_engine(self, poly: Polyphase, c_in: int, groups: int) -> Engine:
        """The engine of ``corr_valid^T`` for inputs of `c_in` channels (one per width)."""
        with self._lock:
            found = self._engines.get(c_in)
            if found is None:
                kp, ci = poly.phase_kernel_length, poly.in_phases * c_in // groups
                co = poly.out_phases * self.engine.filters
                spec = (ConvSpec(kp, corr=True) if groups == 1 else
                        ConvSpec(co * kp, corr=True, strides_down=co, channel_separable=True))
                e = self.engine
                found = Engine(spec, ci, e.method, e.backend_name, e.config, planning=e.planning)
                self._engines[c_in] = found
            return found


def _adjoint_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """The kernel of ``corr_valid^T`` for phase kernels `w` (G, Co, Ci, Kp), in tfc's layout.

    Returns
    -------
    ndarray
        ``(Kp, Co, Ci)`` when ungrouped: ``out[k, o, i] = w[0, o, i, Kp-1-k]``; else
        ``(Kp*Co, G, Ci)`` for the strided separable layer of the interleaved
        signal: ``out[o + Co*k, g, i] = w[g, o, i, Kp-1-k]``.
    """
    flipped = w[..., ::-1]
    if groups == 1:
        return flipped[0].transpose(2, 0, 1)
    g, co, ci, kp = w.shape
    return flipped.transpose(3, 1, 0, 2).reshape(kp * co, g, ci)


def phase_kernel_gradient(x: Any, gy: Any, n_out: int, poly: Polyphase, chosen: Plan,
                          backend: Backend, memory: MemoryLimits,
                          kept: dict[int, list] | None = None) -> Any:
    """Correlate the phase inputs with the phase cotangent: the phase kernels' gradient.

    ``dw[g, o, i, k] = sum_{b, t} gy[b, g, o, t] * xs[b, g*Ci + i, t + k]`` with
    ``xs`` the phase inputs of `x`, run as the forward runs (`chosen`):

    * ``'direct-shifted'``: ``Kp`` GEMMs of the cotangent with shifted rows of
      the time-major phase inputs (see :func:`_shifted_kernel_gradient`);
    * ``'direct-windows'`` and ``'fft'``: a ``corr_valid`` whose kernel is the
      cotangent and whose input channels are the batch items, time cut into
      chunks that fit the working-memory budget; on the FFT path the chunks
      into blocks of the plan's length, the blocks of the forward's overlap-save.
      Their spectra are taken from `kept` where the forward kept them, chunk by
      chunk as it transformed them (:func:`~fftconv.paths.fft.corr_valid_spectra`).

    Parameters
    ----------
    x : array of ``backend.xp``, shape (B, C_in, W)
    gy : array of ``backend.xp``, shape (B, G, Co, T), any strides
    n_out : int
        Layer outputs (``T = poly.phase_outputs(n_out)``).
    poly : Polyphase
    chosen : Plan
        The forward's plan for `x`.
    backend : Backend
    memory : MemoryLimits
    kept : dict or None
        What the forward's FFT path kept for `x` (see :class:`Adjoint`): the
        spectra of its blocks, per chunk, under its FFT length; used when that
        is the length of `chosen`.

    Returns
    -------
    array of ``backend.xp``, shape (G, Co, Ci, Kp)
    """
    if chosen.variant == "direct-shifted":
        return _shifted_kernel_gradient(x, gy, poly, backend, memory)
    xp = backend.xp
    b, groups, co, t = gy.shape
    ci, kp = poly.in_phases * x.shape[1] // groups, poly.phase_kernel_length
    dw = xp.zeros((ci, groups * co, kp), dtype=x.dtype)
    spectra = None
    if chosen.path == "fft":
        spectra = (kept or {}).get(chosen.n_fft)  # if kept, in the forward's chunks
        step = chosen.n_fft - kp + 1
        chunk = step * (spectra[0].shape[3] if spectra else chunk_blocks(
            b, groups * ci, groups * co, chosen.n_fft, x.itemsize, memory.fft_bytes))
    else:  # one gathered-window GEMM per group and chunk, all of Ci and Kp at once
        chunk = max(1, memory.direct_bytes // (groups * max(b, 1) * ci * kp * x.itemsize))
        step = chunk
    x4 = None if spectra else poly.phase_inputs(x, n_out, backend).reshape(
        b, groups, ci, t + kp - 1)
    for i, t0 in enumerate(range(0, t if b else 0, chunk)):
        t1 = min(t, t0 + chunk)
        size = min(step, t1 - t0)
        blocks = -(-(t1 - t0) // size)
        g_blocks = _zero_extended(gy[..., t0:t1], blocks * size, xp).reshape(
            b, groups, co, blocks, size).transpose(1, 2, 0, 3, 4).reshape(
            groups, co, b * blocks, size)
        if chosen.path != "fft":
            dw += corr_valid_direct(_input_blocks(x4, t0, t1, size, kp, backend), g_blocks,
                                    memory.direct_bytes, backend=backend)
            continue
        g_spectra = kernel_spectra(g_blocks, chosen.n_fft, backend)
        if spectra:
            dw += corr_valid_spectra(spectra[i].reshape(ci, groups, b * blocks, -1), g_spectra,
                                     kp, chosen.n_fft, backend, memory.fft_bytes)
        else:
            dw += corr_valid_fft(_input_blocks(x4, t0, t1, size, kp, backend), g_spectra, size,
                                 chosen.n_fft, backend, memory.fft_bytes)
    return dw.reshape(ci, groups, co, kp).transpose(1, 2, 0, 3)


def _input_blocks(x4: Any, t0: int, t1: int, size: int, kp: int, backend: Backend) -> Any:
    """The input samples that blocks of `size` cotangent samples ``t0 .. t1`` meet.

    Parameters
    ----------
    x4 : array of ``backend.xp``, shape (B, G, Ci, L)
        The phase inputs.

    Returns
    -------
    array of ``backend.xp``, shape (Ci, G*B*blocks, size + Kp - 1)
        Zeros past the end of `x4`; ``blocks = ceil((t1 - t0) / size)``.
    """
    b, groups, ci, _ = x4.shape
    blocks = -(-(t1 - t0) // size)
    seg = _zero_extended(x4[..., t0:t1 + kp - 1], blocks * size + kp - 1, backend.xp)
    windows = backend.windows(seg, size + kp - 1, size)
    return windows.transpose(2, 1, 0, 3, 4).reshape(ci, groups * b * blocks, -1)


def _shifted_kernel_gradient(x: Any, gy: Any, poly: Polyphase, backend: Backend,
                             memory: MemoryLimits) -> Any:
    """:func:`phase_kernel_gradient` of an ungrouped layer by shifted GEMMs.

    The transpose of the shifted-GEMM path (:mod:`fftconv.paths.shifted`): the
    phase inputs lie time-major, one row of ``Ci = S*C_in`` channels ``(phi, c)``
    per sample, batch items stacked; the cotangent ``G`` is laid out as
    ``(Co, rows)`` with zeros on the ``Kp - 1`` rows of each item that no output
    reads.  Then ``dw[k] = G @ X[k:]``: ``Kp`` GEMMs over row windows of ``X``
    where they lie, accumulated in place, in blocks of rows that fit the
    working-memory budget.
    """
    xp = backend.xp
    b, _, co, t = gy.shape
    c_in, sp, kp = x.shape[1], poly.in_phases, poly.phase_kernel_length
    ci, length = sp * c_in, t + kp - 1
    rows = xp.empty((b, length, sp, c_in), dtype=x.dtype)
    extended_phases(x, poly.spec, sp * poly.first_block, rows.transpose(0, 3, 2, 1), xp)
    x_rows = rows.reshape(b * length, ci)
    g = xp.zeros((co, b, length), dtype=x.dtype)
    g[:, :, :t] = gy[:, 0].transpose(1, 0, 2)
    g_rows = g.reshape(co, b * length)
    dw = xp.zeros((kp, co, ci), dtype=x.dtype)
    total = b * length - kp + 1  # the rows after are zeros of g
    step = max(1, memory.direct_bytes // ((ci + co) * x.itemsize))
    for r0 in range(0, total, step):
        r1 = min(total, r0 + step)
        block = xp.ascontiguousarray(g_rows[:, r0:r1])  # as a GPU's GEMM takes it
        for k in range(kp):
            backend.gemm_accumulate(block, x_rows[r0 + k:r1 + k], dw[k], beta=1.0)
    return dw.transpose(1, 2, 0)[None]


def _zero_extended(a: Any, length: int, xp: Any) -> Any:
    """`a` (..., n) with zeros appended up to `length` samples (`a` itself if long enough)."""
    missing = length - a.shape[-1]
    return a if missing <= 0 else xp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, missing)])


def rdft_gradients(dkernel: np.ndarray) -> list[np.ndarray]:
    """Gradients of an :class:`~fftconv.parameters.RDFTParameter`'s stored arrays.

    The kernel is ``irfft(real + 1j*imag, n=K) * sqrt(K)``; by the chain rule the
    gradient of ``real + 1j*imag`` is ``rfft(dkernel) * weights / sqrt(K)``, with
    ``weights`` 1 for the DC bin (and the Nyquist bin of an even ``K``) and 2 for
    the others, whose conjugate twins the real inverse transform adds in.  The
    imaginary parts of the DC and Nyquist bins get exactly 0.

    Parameters
    ----------
    dkernel : ndarray, shape (K, C_in, filters)

    Returns
    -------
    list of ndarray
        ``[d_imag, d_real]``, each ``(C_in, filters, K//2 + 1)``, in the dtype of
        `dkernel`: the order of ``get_weights()``.
    """
    support = dkernel.shape[0]
    spectrum = np.fft.rfft(dkernel.transpose(1, 2, 0).astype(np.float64), axis=-1)
    weights = np.full(spectrum.shape[-1], 2.0)
    weights[0] = 1.0
    if support % 2 == 0:
        weights[-1] = 1.0
    spectrum *= weights / np.sqrt(support)
    return [spectrum.imag.astype(dkernel.dtype), spectrum.real.astype(dkernel.dtype)]


def weight_gradients(parameters: Sequence[Any], kernel_parameter: Any,
                     gradients: Gradients) -> list[np.ndarray]:
    """The gradients of the trainable arrays, in the order of the layer's ``get_weights()``.

    Parameters
    ----------
    parameters : sequence
        The layer's trainable parameter objects in ``get_weights()`` order.
    kernel_parameter : object
        The one of them that holds the kernel (the other is the bias).
    gradients : Gradients
        With the kernel gradient.

    Returns
    -------
    list of ndarray
        ``[d_imag, d_real]`` for an RDFT kernel, ``[d_kernel]`` for a variable
        one, ``[d_bias]`` for the bias, in each parameter's dtype.
    """
    out: list[np.ndarray] = []
    for p in parameters:
        if p is not kernel_parameter:
            out.append(gradients.bias.astype(p.dtype))
        elif isinstance(p, RDFTParameter):
            out += [w.astype(p.dtype) for w in rdft_gradients(gradients.kernel)]
        else:
            out.append(gradients.kernel.astype(p.dtype))
    return out
