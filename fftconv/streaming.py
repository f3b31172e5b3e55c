"""Stateful streaming convolution: partitioned overlap-save with a frequency-domain delay line.

:class:`StreamingConv1D` computes the output of a `SignalConv1D` (or the full,
``upfirdn``-style convolution) block by block, for an input that arrives in
pieces of any size, with memory that does not grow with the length of the stream.

Reduction
---------
As in :mod:`fftconv.reduction`, the layer is one grouped stride-1 valid
correlation ``Y[t] = sum_k w[k] v[t + k]`` of the *phase-input stream* ``v``
(sample ``m`` holds the ``S`` input phases ``x[base + S*m + phi]`` of every
channel, zeros outside the input) with the phase kernels ``w`` of shape
``(G, Co, Ci, Kp)``; output ``n`` of the layer is ``Y[n % P, n // P]``.  With the
reversed phase kernels ``h[k] = w[Kp - 1 - k]`` this is the causal convolution
``y[m] = sum_k h[k] v[m - k]`` read with a delay: ``Y[t] = y[t + Kp - 1]``.

The stream is cut into frames of ``L`` phase-input samples (``S*L`` input
samples; ``L`` is the `partition`).  The frame grid is shifted so that frames
complete when the input sample count is a multiple of ``S*L`` (or fewer than
``S`` samples before one), so a caller feeding blocks of ``S*L`` samples gets
every frame's outputs from the call that completes it.

Uniformly partitioned overlap-save (UPOLS)
------------------------------------------
``h`` is split into partitions of ``L`` taps whose spectra (FFT length ``2L``)
are computed once.  Each frame, the last ``2L`` samples of ``v`` are
transformed once and pushed into the frequency-domain delay line (FDL), which
holds the spectra of the last ``count`` frames.  The output spectrum
``sum_p H_p X_{i-p}`` is a per-bin product contracted over input channel-phases
and partitions together (a batched matrix product per bin, or an element-wise
multiply-and-sum along the bins when the contraction is short; groups of a
channel-separable layer are a batch dimension, never a block-diagonal matrix),
and ONE inverse FFT per output channel-phase gives ``L`` finished samples of ``y``.

Non-uniform partitioning
------------------------
A long kernel is split into *levels*: the head in partitions of ``L`` (latency
stays one frame), later taps in partitions of ``L*r``, ``L*r**2``, ... .  A level
of block size ``M`` starting at tap ``s >= M - L`` runs its own UPOLS on blocks
of ``M`` samples; the contribution of the block that ends with frame ``i`` is
first needed by frame ``i`` itself, so it is always in time.  The sums over its
older partitions are spread over the frames of the block (they only need past
spectra), so the frame that completes a block does two FFTs and one partition
product.  ``'non-uniform'`` picks the layout (ratio ``r``, number of levels)
that minimises a per-sample cost model among such Gardner-style layouts; an
explicit sequence of block sizes sets it by hand (see :func:`partition_levels`).

Memory
------
Per level: the FDL (twice ``count`` spectra, so that the most recent ``count`` are
contiguous), ``2M`` samples of input history, and the kernel spectra; plus an
output accumulator of about ``L + max(s)`` samples.  Nothing depends on the
length of the stream.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from fftconv import activations
from fftconv._arrays import as_real_array, float_dtype
from fftconv.backends import Backend, backend_for, get_backend
from fftconv.backends.cupy_backend import modules_of
from fftconv.config import Config, StreamingCosts, load_config
from fftconv.engine import check_backend
from fftconv.reduction import Polyphase, polyphase
from fftconv.spec import ConvSpec, optional_bool, positive_int

PADDINGS = ("valid", "same_zeros", "full")
PARTITIONINGS = ("uniform", "non-uniform")

#: Default partition (phase-input samples) for long kernels ...
DEFAULT_PARTITION = 1024
#: ... and the smallest default, for short ones (the next power of two >= Kp otherwise).
MIN_DEFAULT_PARTITION = 64
#: Largest block size of a non-uniform level, in partitions: bounds the extra work
#: of the frames that complete a big block.
MAX_LEVEL_RATIO = 64
#: Ratios between the block sizes of successive non-uniform levels that are tried.
LEVEL_RATIOS = (2, 4, 8, 16)
#: Contraction work per bin (``Co * partitions * Ci * B``) from which the per-bin
#: product is a batched matrix product rather than an element-wise multiply-and-sum.
MATMUL_MIN_WORK = 48

@dataclass(frozen=True)
class _FullPolyphase(Polyphase):
    """Phase bookkeeping of the full convolution of the upsampled input.

    ``y[n] = sum_j g[j] * xu[n*D - (K - 1) + j]`` with no boundary extension:
    the reduction of :class:`~fftconv.reduction.Polyphase` with its offset moved
    to ``-(K - 1)`` (its spec has `valid` padding, so no input pads).
    """

    @property
    def offset(self) -> int:
        return 1 - self.spec.kernel_support


@dataclass(frozen=True)
class Level:
    """One partition size of a partitioned kernel.

    Attributes
    ----------
    size : int
        Partition (block) size ``M`` in phase-input samples; FFT length ``2M``.
    count : int
        Partitions of this size.
    start : int
        First tap (of the reversed phase kernels) covered by the level.
    """

    size: int
    count: int
    start: int


def partition_levels(kernel_length: int, partition: int,
                     partitioning: str | Sequence[int], in_rows: int = 1, out_rows: int = 1,
                     pairs: int = 1, costs: StreamingCosts | None = None,
                     ) -> tuple[Level, ...]:
    """Split ``kernel_length`` taps into levels of partitions.

    ``'uniform'`` is one level of ``ceil(kernel_length / partition)`` partitions.
    A sequence of block sizes ``(partition, M1, M2, ...)`` gives each level but
    the last the fewest partitions that let the next one start in time (tap
    ``>= M - partition``), and the last the remaining taps; sizes the kernel
    does not reach are left out.  ``'non-uniform'`` tries the geometric sizes
    ``partition * r**l`` for each ratio ``r`` in :data:`LEVEL_RATIOS`, up to
    ``MAX_LEVEL_RATIO * partition``, and returns the layout of least modelled
    cost per sample, the uniform one included.

    Parameters
    ----------
    kernel_length : int
        Taps to cover (``Kp``), ``>= 1``.
    partition : int
        Smallest partition ``L``, ``>= 1``.
    partitioning : {'uniform', 'non-uniform'} or sequence of int
        Explicit sizes must be validated already (see :class:`StreamingConv1D`).
    in_rows, out_rows : int
        Transforms per block forward (``G*Ci``) and inverse (``G*Co``).
    pairs : int
        Complex products per bin and partition (``G*Co*Ci``).
    costs : StreamingCosts or None
        The cost model (``[streaming]`` of the configuration); None: the default
        configuration's.

    Returns
    -------
    tuple of Level
        Increasing sizes, contiguous from tap 0, covering at least `kernel_length`.
    """
    if partitioning == "uniform":
        return _levels((partition,), kernel_length, partition)
    if not isinstance(partitioning, str):
        return _levels(tuple(partitioning), kernel_length, partition)
    costs = load_config().streaming if costs is None else costs
    best = _levels((partition,), kernel_length, partition)
    best_cost = _layout_cost(best, partition, in_rows, out_rows, pairs, costs)
    for ratio in LEVEL_RATIOS:
        sizes = [partition]
        while sizes[-1] * ratio <= partition * MAX_LEVEL_RATIO:
            sizes.append(sizes[-1] * ratio)
            layout = _levels(tuple(sizes), kernel_length, partition)
            if len(layout) < len(sizes):
                break  # the kernel ends before the new size: same as the last layout
            cost = _layout_cost(layout, partition, in_rows, out_rows, pairs, costs)
            if cost < best_cost:
                best, best_cost = layout, cost
    return best


def _levels(sizes: tuple[int, ...], kernel_length: int, partition: int) -> tuple[Level, ...]:
    """Levels of the given block sizes, each but the last as short as timing allows."""
    levels: list[Level] = []
    start = 0
    for i, size in enumerate(sizes):
        if start >= kernel_length:
            break
        rest = -(-(kernel_length - start) // size)
        if i + 1 < len(sizes):
            count = min(rest, max(1, -(-(sizes[i + 1] - partition - start) // size)))
        else:
            count = rest
        levels.append(Level(size, count, start))
        start += count * size
    return tuple(levels)


def _layout_cost(levels: Sequence[Level], partition: int, in_rows: int, out_rows: int,
                 pairs: int, costs: StreamingCosts) -> float:
    """Modelled ns per phase-input sample of a layout."""
    total = 0.0
    for level in levels:
        n = 2 * level.size
        block = (costs.fft_ns_per_nlogn * n * math.log2(n) * (in_rows + out_rows)
                 + costs.ns_per_mac * level.count * (level.size + 1) * pairs
                 + costs.block_overhead_ns)
        total += block / level.size
        if level.size > partition:
            total += costs.frame_overhead_ns / partition
    return total


class _LevelState:
    """The running state of one level: spectra, delay line, input history, partial sums.

    The per-bin product ``sum_{p, i} H[p][o, i] X[p][i, b]`` runs in one of two
    layouts, chosen by the length of its typical contraction: a batched matrix
    product per bin (long contractions: few bins, many partitions or channels)
    or an element-wise multiply-and-sum along contiguous bins (short ones, where
    one small matrix product per bin costs more in calls than in arithmetic).

    Parameters
    ----------
    level : Level
    frame : int
        Frame length ``L``; ``level.size`` is a multiple of it.
    spectra : array of ``backend.xp``, complex
        Spectra (length ``2M``, scaled by ``1 / (2M)``) of the level's partitions,
        partition ``p`` at index ``count - 1 - p``; shape (G, M + 1, Co, count, Ci)
        when `by_bin`, else (G, Co, count, Ci, M + 1).  Shared, never written.
    by_bin : bool
        Product layout (see :func:`_product_by_bin`).
    batch : int
    backend : Backend
        Where the state lives (the arrays of ``backend.xp``).
    dtype : float32 or float64
    """

    def __init__(self, level: Level, frame: int, spectra: Any, by_bin: bool,
                 batch: int, backend: Backend, dtype: np.dtype) -> None:
        if by_bin:
            groups, bins, c_out, count, c_in = spectra.shape
        else:
            groups, c_out, count, c_in, bins = spectra.shape
        self.size, self.count, self.start = level.size, level.count, level.start
        self.frames = level.size // frame
        self.frame = frame
        self.shape = (groups, c_out, count, c_in, bins, batch)
        self.by_bin = by_bin
        self.spectra = spectra
        self.xp = xp = backend.xp
        cdtype = spectra.dtype
        if by_bin:
            self.fdl = xp.zeros((groups, bins, 2 * count, c_in, batch), cdtype)
            self.acc = xp.empty((groups, bins, c_out, batch), cdtype)
        else:
            self.fdl = xp.zeros((groups, batch, 2 * count, c_in, bins), cdtype)
            self.acc = xp.empty((groups, c_out, batch, bins), cdtype)
        self.tmp = xp.empty_like(self.acc)
        self.history = xp.zeros((batch, groups * c_in, 2 * level.size), dtype)
        self.fft = backend.block_fft(batch * groups * c_in, batch * groups * c_out,
                                     2 * level.size, dtype)
        self.block = 0  # the block being filled
        self.summed = 1  # partitions 1 .. summed-1 of its output are in `acc`

    def push(self, v: np.ndarray, frame: int, ring: np.ndarray) -> None:
        """Take frame `frame` of the phase-input stream, ``v`` of shape (B, G*Ci, L).

        When it completes a block, the block's output (``M`` samples of ``y``
        from ``block*M + start`` on) is added to `ring`, shape (B, G*Co, R).
        """
        pos = frame % self.frames
        at = self.size + pos * self.frame
        self.history[:, :, at:at + self.frame] = v
        if pos + 1 < self.frames:
            # Spread the older partitions' sums over the frames of the block.
            share = -(-(self.count - 1) * (pos + 1) // (self.frames - 1))
            self._presum(1 + share)
            return
        self._complete(ring)

    def _presum(self, target: int) -> None:
        if target > self.summed:
            if self.summed == 1:
                self._sum(1, target, self.acc)
            else:
                self._sum(self.summed, target, self.tmp)
                self.acc += self.tmp
            self.summed = target

    def _sum(self, first: int, stop: int, out: np.ndarray) -> None:
        """``out = sum_{first <= p < stop} H_p X_{block - p}``."""
        groups, c_out, count, c_in, bins, batch = self.shape
        s = self.block % count
        n = stop - first
        # Partition p is at spectra index count-1-p and pairs with FDL slot s+count-p.
        x = self.fdl[:, :, s + 1 + count - stop:s + 1 + count - first]
        if self.by_bin:  # (G, F, Co, count, Ci) @ (G, F, 2 count, Ci, B)
            h = self.spectra[:, :, :, count - stop:count - first]
            self.xp.matmul(h.reshape(groups, bins, c_out, n * c_in),
                           x.reshape(groups, bins, n * c_in, batch), out=out)
        else:  # (G, Co, count, Ci, F) * (G, B, 2 count, Ci, F)
            h = self.spectra[:, :, count - stop:count - first]
            h = h.reshape(groups, c_out, 1, n * c_in, bins)
            x = x.reshape(groups, 1, batch, n * c_in, bins)
            self.xp.sum(h * x, axis=3, out=out)

    def _complete(self, ring: np.ndarray) -> None:
        groups, c_out, count, c_in, bins, batch = self.shape
        fft = self.fft
        with fft.lock:
            fft.real_in[...] = self.history.reshape(fft.real_in.shape)
            spectrum = fft.forward().reshape(batch, groups, c_in, bins)
            s = self.block % count
            spectrum = spectrum.transpose(1, 3, 2, 0) if self.by_bin else \
                spectrum.transpose(1, 0, 2, 3)
            self.fdl[:, :, s] = spectrum
            self.fdl[:, :, s + count] = spectrum
            if self.summed == 1:
                self._sum(0, count, self.acc)
            else:
                if self.summed < count:
                    self._sum(self.summed, count, self.tmp)
                    self.acc += self.tmp
                self._sum(0, 1, self.tmp)
                self.acc += self.tmp
            acc = self.acc.transpose(3, 0, 2, 1) if self.by_bin else \
                self.acc.transpose(2, 0, 1, 3)
            fft.spectrum_in.reshape(batch, groups, c_out, bins)[...] = acc
            y = fft.inverse().reshape(batch, groups * c_out, 2 * self.size)
            _ring_add(ring, self.block * self.size + self.start, y[:, :, self.size:])
        self.history[:, :, :self.size] = self.history[:, :, self.size:]
        self.block += 1
        self.summed = 1


def _product_by_bin(level: Level, frame: int, c_out: int, c_in: int) -> bool:
    """Whether a level's per-bin products should be matrix products (else element-wise).

    Decided on the contraction of a typical call: all partitions for the
    frame-sized level, a frame's share of the older partitions for the others.
    """
    frames = level.size // frame
    chunk = level.count if frames == 1 else -(-(level.count - 1) // (frames - 1))
    return c_out * max(1, chunk) * c_in >= MATMUL_MIN_WORK


def _ring_add(ring: np.ndarray, position: int, data: np.ndarray) -> None:
    """``ring[..., (position + i) % R] += data[..., i]``; `data` no longer than ``R``."""
    length = ring.shape[-1]
    n = data.shape[-1]
    a = position % length
    first = min(n, length - a)
    ring[..., a:a + first] += data[..., :first]
    if first < n:
        ring[..., :n - first] += data[..., first:]


class StreamingConv1D:
    """Stateful block-by-block `SignalConv1D` for streams of any length.

    Feed the input in pieces with :meth:`process` (any sizes, zero included);
    each call returns the outputs that became computable, and :meth:`flush`
    returns the rest once the stream has ended.  Concatenated along time, the
    results equal the one-shot output of the whole input.

    Parameters
    ----------
    kernel : array_like, shape (K, C_in, filters)
        As in :func:`fftconv.signal_conv1d`.  A mono impulse response for every
        channel is `channel_separable` with the kernel repeated over ``C_in``; a
        2x2 "true stereo" matrix is ``C_in = filters = 2``, not separable.
    corr : bool
        Cross-correlate instead of convolve.
    strides_down, strides_up : int
        Downsampling after and upsampling (zero insertion) before filtering.
    padding : {'valid', 'same_zeros', 'full'}
        ``'valid'`` and ``'same_zeros'`` as in `SignalConv1D` (case-insensitive).
        ``'full'`` is the full convolution of the upsampled input, downsampled:
        ``scipy.signal.upfirdn(h, x, strides_up, strides_down)`` per channel pair,
        with ``h`` the kernel (reversed when `corr`), ``((W - 1)*U + K - 1) // D + 1``
        outputs for ``W >= 1`` inputs.  ``'same_reflect'`` is not streamable (its
        boundary needs samples after the end) and raises ValueError.
    extra_pad_end : bool or None
        As in `SignalConv1D`; None means True for ``same_zeros``, False for
        ``valid``.  Must be None for ``full``.
    channel_separable : bool
        Filter each input channel on its own; output channel ``c*filters + f``.
    bias : array_like, shape (C_out,), optional
    activation : None, str or callable
        Element-wise, applied after the bias (Keras names, as in `SignalConv1D`).
    partition : int or None
        Frame length ``L`` in phase-input samples: ``L * S`` input samples with
        ``S = strides_down / gcd(strides_up, strides_down)`` (``L`` without
        down-sampling).  Outputs come a frame at a time, so this is the latency
        added to the layer's own look-ahead.  None: :data:`DEFAULT_PARTITION`, or
        the next power of two ``>= Kp`` (at least :data:`MIN_DEFAULT_PARTITION`)
        for shorter phase kernels ``Kp ~ K / (S * strides_up)``.
    partitioning : {'uniform', 'non-uniform'} or sequence of int
        Kernel partitioning; see the module docstring.  ``'non-uniform'`` picks
        the layout by a cost model; a sequence of block sizes
        ``(partition, M1, M2, ...)``, increasing multiples of the partition, sets
        it by hand (:func:`partition_levels`).  Latency is one frame either way;
        non-uniform layouts cost less per sample for long kernels.
    dtype : {'float32', 'float64'}
        Computation and output dtype.
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        Where the stream runs (single FFT threads on the CPU: a stream's
        transforms are small).  'numpy' and 'pyfftw': the CPU.  'auto' follows
        the first block of each stream: a CuPy array's GPU, else the CPU.
        'cupy': the GPU of a first block that is a CuPy array, else the current
        GPU at construction.  On a GPU the state lives there; host blocks go
        there and their outputs come back.  Kernel spectra are made at
        construction for the CPU ('auto') or the current GPU ('cupy'), and once
        for each other device a stream starts on.
    config : Config, path or None
        Configuration whose ``[streaming]`` costs choose a non-uniform layout
        (see :func:`fftconv.load_config`; None: ``FFTCONV_CONFIG`` or the default).

    Notes
    -----
    One object holds one stream (``B`` signals in parallel); it is not safe to
    call from several threads at once.

    Examples
    --------
    >>> stream = StreamingConv1D(ir[:, None, None], padding="full")  # doctest: +SKIP
    >>> for block in blocks:                                          # doctest: +SKIP
    ...     out = stream.process(block)     # (n_out, 1) for a (n, 1) block
    >>> tail = stream.flush()                                         # doctest: +SKIP
    """

    def __init__(
        self,
        kernel: Any,
        *,
        corr: bool = False,
        strides_down: int = 1,
        strides_up: int = 1,
        padding: str = "same_zeros",
        extra_pad_end: bool | None = None,
        channel_separable: bool = False,
        bias: Any = None,
        activation: str | Callable | None = None,
        partition: int | None = None,
        partitioning: str | Sequence[int] = "uniform",
        dtype: Any = "float32",
        backend: str = "auto",
        config: Config | str | None = None,
    ) -> None:
        self._dtype = float_dtype(dtype)
        kernel = as_real_array(kernel, "kernel", np.float64)
        if kernel.ndim != 3 or 0 in kernel.shape:
            raise ValueError(f"`kernel` must have shape (K, C_in, filters) with every "
                             f"dimension >= 1, got {kernel.shape}.")
        k, c_in, filters = kernel.shape
        padding = _check_padding(padding)
        extra = optional_bool(extra_pad_end, "extra_pad_end")
        if padding == "full" and extra is not None:
            raise ValueError(f"`extra_pad_end` must be None with padding='full' (its length "
                             f"is fixed by upfirdn), got {extra_pad_end!r}.")
        self._corr = _check_bool(corr, "corr")
        separable = _check_bool(channel_separable, "channel_separable")
        spec = ConvSpec(
            kernel_support=k, corr=self._corr,
            strides_up=positive_int(strides_up, "strides_up"),
            strides_down=positive_int(strides_down, "strides_down"),
            padding="valid" if padding == "full" else padding,
            extra_pad_end=(padding == "same_zeros") if extra is None else extra,
            channel_separable=separable)
        self._spec, self._padding = spec, padding
        self._c_in, self._filters = c_in, filters
        self._c_out = c_in * filters if separable else filters
        if bias is not None:
            bias = as_real_array(bias, "bias", self._dtype)
            if bias.shape != (self._c_out,):
                raise ValueError(f"`bias` must have shape ({self._c_out},) (C_out for this "
                                 f"kernel), got {bias.shape}.")
        self._bias = bias
        self._activation = activations.get(activation)
        partitioning = _check_partitioning(partitioning)
        if partition is None and not isinstance(partitioning, str):
            partition = partitioning[0]
        self._backend_name = check_backend(backend)
        self._home = get_backend(self._backend_name, threads=1)

        poly = _FullPolyphase(spec) if padding == "full" else polyphase(spec)
        self._out_phases, self._in_phases = poly.out_phases, poly.in_phases
        kp = poly.phase_kernel_length
        if partition is None:
            partition = min(DEFAULT_PARTITION,
                            max(MIN_DEFAULT_PARTITION, 1 << (kp - 1).bit_length()))
        self._partition = positive_int(partition, "partition")
        if not isinstance(partitioning, str) and partitioning[0] != self._partition:
            raise ValueError(f"`partitioning` sizes must start with `partition` "
                             f"({self._partition}), got {partitioning!r}.")
        w = poly.phase_kernels(kernel)  # (G, Co, Ci, Kp), float64
        groups, co, ci, _ = w.shape
        self._groups, self._phase_out = groups, co
        self._levels = partition_levels(kp, self._partition, partitioning,
                                        groups * ci, groups * co, groups * co * ci,
                                        load_config(config).streaming)
        self._by_bin = [_product_by_bin(level, self._partition, co, ci)
                        for level in self._levels]
        self._taps = w[..., ::-1]  # the reversed phase kernels, for the spectra of each device
        self._spectra: dict[str, list[Any]] = {}
        self._spectra_on(self._home)

        # Phase-input sample m holds x[base + S*m + phi].  Choose the frame grid
        # (`base`, shifting v by whole samples) so that frames end on input sample
        # counts = -delta (mod S*L) with 0 <= delta < S: as late as possible in a
        # caller's block of S*L samples.  Samples before the grid start are read
        # only by outputs that are dropped, and must be zeros when the grid
        # starts early (base <= 0).
        s, step = self._in_phases, self._in_phases * self._partition
        base = s * poly.first_block - spec.input_pads[0]
        delta = (-base) % s
        top = max(base, 0)
        self._base = top - ((top + delta) % step)
        # y[m] (over the shifted stream) holds Y[t] at m = t + drop.
        self._drop = kp - 1 + (base - self._base) // s
        assert self._drop >= 0 and (base - self._base) % s == 0
        self.reset()

    # -- construction helpers ------------------------------------------------

    def _spectra_on(self, backend: Backend) -> list[Any]:
        """The partition spectra of every level on `backend`'s device, made once per device."""
        spectra = self._spectra.get(backend.device)
        if spectra is None:
            with backend.activate():
                spectra = [self._level_spectra(backend, level, by_bin)
                           for level, by_bin in zip(self._levels, self._by_bin, strict=True)]
            self._spectra[backend.device] = spectra
        return spectra

    def _level_spectra(self, backend: Backend, level: Level, by_bin: bool) -> Any:
        """Spectra of a level's partitions of the reversed phase kernels (G, Co, Ci, Kp).

        Returns (G, M + 1, Co, count, Ci) when `by_bin`, else (G, Co, count, Ci, M + 1);
        complex, partition ``p`` at ``count - 1 - p``, on `backend`'s device, never
        written (read-only on the host).
        """
        h = self._taps
        groups, co, ci, kp = h.shape
        m, count = level.size, level.count
        taps = np.zeros((groups, co, ci, count * m))
        part = h[..., level.start:level.start + count * m]
        taps[..., :part.shape[-1]] = part
        parts = taps.reshape(groups, co, ci, count, m)[:, :, :, ::-1]
        spectra = backend.rfft(parts, 2 * m, axis=-1) * (1.0 / (2 * m))
        complex_dtype = np.result_type(self._dtype, np.complex64)
        order = (0, 4, 1, 3, 2) if by_bin else (0, 1, 3, 2, 4)
        spectra = backend.xp.ascontiguousarray(spectra.transpose(order), dtype=complex_dtype)
        if isinstance(spectra, np.ndarray):  # device arrays have no read-only flag
            spectra.flags.writeable = False
        return spectra

    @classmethod
    def from_layer(cls, layer: Any, **options: Any) -> StreamingConv1D:
        """Stream a built :class:`~fftconv.SignalConv1D` (its kernel, bias, geometry, activation).

        Parameters
        ----------
        layer : SignalConv1D
            Built (its kernel exists).  The stream takes a snapshot of the kernel
            and bias: later weight updates do not reach it.  The layer's
            `data_format` does not matter: the stream takes channels-last blocks.
        **options
            `partition`, `partitioning`, `dtype` (default: the layer's) and
            `backend` (default: the layer's).

        Raises
        ------
        TypeError
            If `layer` is not a `SignalConv1D` or an option is not one of these.
        ValueError
            If the layer is not built or pads with ``same_reflect``.
        """
        from fftconv.layer import SignalConv1D

        if not isinstance(layer, SignalConv1D):
            raise TypeError(f"`layer` must be a SignalConv1D, got {type(layer).__name__}.")
        allowed = ("partition", "partitioning", "dtype", "backend")
        for key in options:
            if key not in allowed:
                raise TypeError(f"from_layer() option `{key}` is not allowed: the layer fixes "
                                f"it; options are {allowed}.")
        if not layer.built:
            raise ValueError("`layer` must be built (call it or build() first) so that its "
                             "kernel exists.")
        options.setdefault("dtype", layer.dtype.name)
        options.setdefault("backend", layer.backend)
        return cls(layer.kernel, corr=layer.corr, strides_down=layer.strides_down,
                   strides_up=layer.strides_up, padding=layer.padding,
                   extra_pad_end=layer.extra_pad_end,
                   channel_separable=layer.channel_separable, bias=layer.bias,
                   activation=layer.activation, **options)

    # -- properties ----------------------------------------------------------

    @property
    def input_channels(self) -> int:
        """``C_in``."""
        return self._c_in

    @property
    def output_channels(self) -> int:
        """``C_out``: `filters`, or ``C_in * filters`` when channel separable."""
        return self._c_out

    @property
    def partition(self) -> int:
        """Frame length ``L`` in phase-input samples (the smallest partition)."""
        return self._partition

    @property
    def levels(self) -> tuple[Level, ...]:
        """The partition layout: one :class:`Level` per partition size."""
        return self._levels

    @property
    def dtype(self) -> np.dtype:
        """Computation and output dtype."""
        return self._dtype

    @property
    def frame_length(self) -> int:
        """Input samples per frame: ``partition * S`` (outputs come in such steps)."""
        return self._partition * self._in_phases

    @property
    def latency(self) -> int:
        """Input samples consumed before the first output can be produced.

        The frame that finishes output 0 must be complete, and the input long
        enough to define output 0 at all (``valid`` needs a kernel's span).
        """
        frame = self._drop // self._partition
        ready = self._base + self.frame_length * (frame + 1)
        return max(ready, self._min_width())

    @property
    def nbytes(self) -> int:
        """Bytes held by the stream's state (delay lines, histories, kernel spectra on
        each device used, accumulators, buffered input and outputs); bounded whatever
        the stream length."""
        arrays = [self._xbuf, self._ring, *self._pending]
        for spectra in self._spectra.values():
            arrays += spectra
        for state in self._states:
            arrays += [state.fdl, state.history, state.acc, state.tmp]
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def finished(self) -> bool:
        """Whether :meth:`flush` ended the stream (until :meth:`reset`)."""
        return self._finished

    def __repr__(self) -> str:
        s = self._spec
        sizes = ", ".join(f"{lv.count}x{lv.size}" for lv in self._levels)
        return (f"StreamingConv1D(C_in={self._c_in}, C_out={self._c_out}, "
                f"kernel_support={s.kernel_support}, corr={s.corr}, "
                f"strides_down={s.strides_down}, strides_up={s.strides_up}, "
                f"padding={self._padding!r}, channel_separable={s.channel_separable}, "
                f"partitions=[{sizes}], dtype={self._dtype.name!r})")

    # -- stream --------------------------------------------------------------

    def reset(self) -> None:
        """Forget the stream: the next :meth:`process` starts a new one, on its block's device."""
        self._batch: int | None = None
        self._ndim = 2
        self._states: list[_LevelState] = []
        self._received = 0
        self._frames = 0
        self._computed = 0
        self._emitted = 0
        self._pending: list[np.ndarray] = []
        self._finished = False
        self._skip = max(self._base, 0)
        self._fill = max(-self._base, 0)  # leading zeros of the first frame
        self._xbuf: Any = None
        self._ring: Any = None
        self._placed = True  # the outputs stay where the stream is
        self._backend = self._home  # until the first block chooses

    def _allocate(self, batch: int) -> None:
        self._batch = batch
        step = self.frame_length
        backend = self._backend
        xp = backend.xp
        self._xbuf = xp.zeros((batch, step, self._c_in), self._dtype)
        self._states = [_LevelState(level, self._partition, spectra, by_bin, batch, backend,
                                    self._dtype)
                        for level, spectra, by_bin in zip(self._levels, self._spectra_on(backend),
                                                          self._by_bin, strict=True)]
        length = self._partition + max(level.start for level in self._levels)
        groups, co = self._groups, self._phase_out
        self._ring = xp.zeros((batch, groups * co, length), self._dtype)

    def process(self, x: Any) -> np.ndarray:
        """Feed the next samples of the stream and return the outputs now computable.

        Parameters
        ----------
        x : array_like, shape (n, C_in) or (B, n, C_in)
            Channels last, any ``n >= 0``; ``B`` must stay the same within a
            stream (a 2-D block is ``B = 1``).  Converted to the stream dtype.
            The first block of a stream (after construction or :meth:`reset`)
            chooses its device: a CuPy array its own GPU (``backend='auto'`` or
            ``'cupy'``), host data the construction's (the CPU, or the GPU of
            ``'cupy'``).  Later blocks are host data or CuPy arrays on that GPU.

        Returns
        -------
        ndarray, shape (n_out, C_out) or (B, n_out, C_out)
            The rank of `x`; ``n_out >= 0`` varies from call to call.  Where `x`
            lives: a CuPy array for a CuPy `x` on the stream's GPU, else numpy.

        Raises
        ------
        ValueError
            If the stream is finished, or `x` has a wrong rank, channel count or
            batch size.
        TypeError
            If `x` is not real numeric data, or a CuPy array on another device
            than the stream's (the CPU included; the message names both).
        """
        self._check_open("process")
        modules = modules_of(x)
        if self._batch is None:  # the first block of a stream chooses its device
            follows = modules is not None and self._backend_name in ("auto", "cupy")
            self._backend = (backend_for(x, self._backend_name, threads=1) if follows
                             else self._home)
        backend = self._backend
        placed = backend.owns(x)
        if not placed and modules is not None:
            raise self._elsewhere(f"cuda:{modules.device_of(x)}")
        self._placed = placed
        with backend.activate():
            return self._process(as_real_array(x, "x", self._dtype, xp=backend.xp))

    def _elsewhere(self, device: str) -> TypeError:
        """The error for a block on GPU `device` (``'cuda:<id>'``), not the stream's device."""
        if self._backend_name in ("numpy", "pyfftw"):
            return TypeError(f"`x` is a GPU array on {device} and backend="
                             f"{self._backend_name!r} runs on the CPU: make the stream with "
                             f"backend='auto' or 'cupy', or move `x` to the host (x.get()).")
        here = self._backend.device
        where, move = (("the CPU", "the host (x.get())") if here == "cpu" else (here, here))
        return TypeError(f"`x` is a GPU array on {device}, but this stream runs on {where} "
                         f"(chosen when it started): call reset() to start a new stream on "
                         f"{device}, use one stream per device, or move `x` to {move}.")

    def _process(self, x: Any) -> Any:
        if x.ndim not in (2, 3):
            raise ValueError(f"`x` must have shape (n, C_in) or (B, n, C_in), got {x.shape}.")
        self._ndim = x.ndim
        x3 = x[None] if x.ndim == 2 else x
        if x3.shape[2] != self._c_in:
            raise ValueError(f"`x` must have {self._c_in} channels (last axis), got shape "
                             f"{x.shape}.")
        if x3.shape[0] < 1:
            raise ValueError(f"`x` must have a batch of at least 1, got shape {x.shape}.")
        if self._batch is None:
            self._allocate(x3.shape[0])
        elif x3.shape[0] != self._batch:
            raise ValueError(f"`x` must have batch {self._batch} (that of this stream; reset() "
                             f"to start another), got shape {x.shape}.")
        self._feed(x3)
        self._received += x3.shape[1]
        return self._emit(self._width(self._received))

    def flush(self) -> np.ndarray:
        """End the stream and return its remaining outputs.

        The input is taken to end here (zeros follow, as in the one-shot layer).
        Afterwards :meth:`process` and :meth:`flush` raise until :meth:`reset`.

        Returns
        -------
        ndarray, shape (n_out, C_out) or (B, n_out, C_out)
            The rank of the last block given to :meth:`process` (2-D if none),
            where that block lived.
        """
        self._check_open("flush")
        total = self._width(self._received)
        with self._backend.activate():
            if self._batch is not None:
                self._skip = 0
                while self._computed < total:
                    self._xbuf[:, self._fill:] = 0
                    self._frame(self._xbuf)
                    self._fill = 0
            out = self._emit(total)
        self._finished = True
        return out

    def _check_open(self, method: str) -> None:
        if self._finished:
            raise ValueError(f"{method}(): the stream is finished (flush() was called); "
                             f"call reset() to start a new one.")

    def _width(self, received: int) -> int:
        """Outputs of the whole stream if it ended after `received` input samples."""
        if received < 1:
            return 0
        s = self._spec
        if self._padding == "full":
            return ((received - 1) * s.strides_up + s.kernel_support - 1) // s.strides_down + 1
        return max(0, s.output_width(received))

    def _min_width(self) -> int:
        return self._spec.min_input_width() if self._padding == "valid" else 1

    def _feed(self, x: np.ndarray) -> None:
        """Cut `x` (B, n, C_in) into frames of ``S*L`` input samples."""
        n = x.shape[1]
        pos = min(self._skip, n)
        self._skip -= pos
        step = self.frame_length
        while pos < n:
            if self._fill == 0 and n - pos >= step:
                self._frame(x[:, pos:pos + step])
                pos += step
                continue
            take = min(step - self._fill, n - pos)
            self._xbuf[:, self._fill:self._fill + take] = x[:, pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == step:
                self._frame(self._xbuf)
                self._fill = 0

    def _frame(self, block: np.ndarray) -> None:
        """Run one frame on `block` (B, S*L, C_in) of input samples."""
        batch = block.shape[0]
        s, c_in, L = self._in_phases, self._c_in, self._partition
        phases = block.reshape(batch, L, s, c_in)
        # Channel order of the phase kernels: (c, phi) when separable, else (phi, c).
        order = (0, 3, 2, 1) if self._spec.channel_separable else (0, 2, 3, 1)
        v = self._backend.xp.ascontiguousarray(phases.transpose(order)).reshape(
            batch, s * c_in, L)
        i = self._frames
        for state in self._states[:0:-1]:
            state.push(v, i, self._ring)
        self._states[0].push(v, i, self._ring)
        self._frames += 1
        # The ring now holds y[i*L : (i+1)*L] complete; y[m] is Y[m - drop].
        ring = self._ring
        a = (i * L) % ring.shape[-1]
        chunk = ring[:, :, a:a + L]
        first = max(0, self._drop - i * L)
        if first < L:
            self._pending.append(self._interleave(chunk[:, :, first:]))
        chunk[...] = 0

    def _interleave(self, y: np.ndarray) -> np.ndarray:
        """Phase outputs (B, G*P*filters, T) -> layer outputs (B, T*P, C_out), a new array."""
        batch, _, t = y.shape
        p, f = self._out_phases, self._filters
        groups = self._c_out // f
        out = self._backend.xp.empty((batch, t, p, groups, f), y.dtype)
        out[...] = y.reshape(batch, groups, p, f, t).transpose(0, 4, 2, 1, 3)
        self._computed += t * p
        return out.reshape(batch, t * p, groups * f)

    def _emit(self, limit: int) -> np.ndarray:
        """Return the pending outputs below `limit` (with bias and activation)."""
        backend = self._backend
        xp = backend.xp
        batch = 1 if self._batch is None else self._batch
        stop = min(limit, self._computed)
        count = max(0, stop - self._emitted)
        if not self._pending:
            out = xp.empty((batch, 0, self._c_out), self._dtype)
        else:
            pending = (self._pending[0] if len(self._pending) == 1
                       else xp.concatenate(self._pending, axis=1))
            out = pending[:, :count]
            self._pending = [pending[:, count:]] if count < pending.shape[1] else []
        self._emitted += count
        out = xp.array(out, dtype=self._dtype)  # a fresh array, never a view of state
        if self._bias is not None:
            out += backend.to_device(self._bias)
        if self._activation is not None:
            out = xp.asarray(self._activation(out), dtype=self._dtype)
        out = out[0] if self._ndim == 2 else out
        return out if self._placed else backend.to_host(out)


def _check_partitioning(value: Any) -> str | tuple[int, ...]:
    """A partitioning name, or block sizes: increasing multiples of the first."""
    if isinstance(value, str):
        if value not in PARTITIONINGS:
            raise ValueError(f"`partitioning` must be one of {PARTITIONINGS} or a sequence "
                             f"of block sizes, got {value!r}.")
        return value
    message = (f"`partitioning` must be one of {PARTITIONINGS} or a sequence of block "
               f"sizes (positive integers), got {value!r}.")
    if not isinstance(value, (Sequence, np.ndarray)) or len(value) == 0:
        raise TypeError(message)
    sizes = []
    for size in value:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
            raise TypeError(message)
        sizes.append(int(size))
    if sizes[0] < 1 or any(b <= a or b % sizes[0] for a, b in pairwise(sizes)):
        raise ValueError(f"`partitioning` block sizes must be positive, increasing and "
                         f"multiples of the first (the partition), got {value!r}.")
    return tuple(sizes)


def _check_padding(padding: Any) -> str:
    if not isinstance(padding, str):
        raise TypeError(f"`padding` must be one of {PADDINGS}, got {padding!r}.")
    name = padding.lower()
    if name == "same_reflect":
        raise ValueError("`padding` 'same_reflect' cannot be streamed: its boundary at the "
                         f"end reflects samples the stream has not seen; use one of {PADDINGS}.")
    if name not in PADDINGS:
        raise ValueError(f"`padding` must be one of {PADDINGS}, got {padding!r}.")
    return name


def _check_bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)) or (
            isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False, got {value!r}.")
