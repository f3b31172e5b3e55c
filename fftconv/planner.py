"""Planner: choose the direct or the FFT path, and the FFT length, by a cost model.

:func:`plan` is a pure function of its arguments and the loaded configuration.
It returns a :class:`Plan`, a small immutable value that prints every
candidate's estimated cost, so a choice can be explained.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from math import log2
from typing import Any

import numpy as np

from fftconv._arrays import float_dtype
from fftconv.backends import check_backend, device_kind, device_traits
from fftconv.config import Config, device_config, load_config
from fftconv.paths.fft import block_bytes, chunk_blocks
from fftconv.reduction import polyphase
from fftconv.spec import ConvSpec, positive_int

#: How many FFT lengths a plan lists besides the winner.
LISTED_FFT_CANDIDATES = 4

#: Inputs that the long-input FFT length covers in fewer blocks than this may run
#: at a shorter length, a power of two (see :func:`fft_lengths`).
SHORT_INPUT_BLOCKS = 4

#: The `method` values :func:`plan` takes: ``'direct-shifted'`` and
#: ``'direct-windows'`` force the direct path in that form where it applies
#: (shifted GEMMs need an ungrouped layer: grouped ones gather windows).
METHODS = ("auto", "direct", "fft", "direct-shifted", "direct-windows")

#: The path variants a :class:`Plan` names, each an entry of the engine's table.
VARIANTS = ("fft", "direct-shifted", "direct-windows", "direct-fir")


def check_method(method: object) -> str:
    """Validate the `method` engine option."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    return str(method)


def method_path(method: str) -> str:
    """The path a `method` allows: ``'auto'``, ``'direct'`` or ``'fft'``."""
    return "direct" if method.startswith("direct") else method


@dataclass(frozen=True)
class Problem:
    """Sizes of one ``corr_valid`` call: ``(B, G*Ci, T+Kp-1) * (G, Co, Ci, Kp)``."""

    batch: int
    groups: int
    in_channels: int
    out_channels: int
    kernel_length: int
    outputs: int
    itemsize: int

    @property
    def macs(self) -> int:
        """Real multiply-accumulates of the direct path."""
        return (self.batch * self.groups * self.out_channels * self.in_channels
                * self.kernel_length * self.outputs)


@dataclass(frozen=True)
class Candidate:
    """One way to run the problem and its estimated time."""

    path: str
    n_fft: int
    cost_ns: float

    def __str__(self) -> str:
        what = "direct" if self.path == "direct" else f"fft N={self.n_fft}"
        return f"{what:<16} {self.cost_ns / 1e6:10.3f} ms"


@dataclass(frozen=True)
class Plan:
    """The chosen way to run one layer on one input shape.

    Attributes
    ----------
    path : {'direct', 'fft'}
    n_fft : int
        FFT length (0 for the direct path).
    block : int
        Outputs per FFT block, ``n_fft - Kp + 1`` (0 for the direct path).
    threads : int
    backend : str
    problem : Problem
    candidates : tuple of Candidate
        Cheapest first; the first is the chosen one.
    device : {'cpu', 'cuda'}
        The kind of device the plan is for (its cost model).
    direct_variant : {'direct-shifted', 'direct-windows', 'direct-fir'}
        The form the direct path takes for this problem on this device
        (``'direct-fir'``, one FIR kernel, on a GPU only).
    """

    path: str
    n_fft: int
    block: int
    threads: int
    backend: str
    problem: Problem
    candidates: tuple[Candidate, ...]
    device: str = "cpu"
    direct_variant: str = "direct-windows"

    @property
    def variant(self) -> str:
        """The path variant run: ``'fft'`` or the :attr:`direct_variant`."""
        return "fft" if self.path == "fft" else self.direct_variant

    def choose(self, candidate: Candidate) -> Plan:
        """This plan with `candidate` (one of its candidates, or another FFT length) chosen.

        The chosen candidate moves to the front of :attr:`candidates`.
        """
        if candidate.path not in ("direct", "fft"):
            raise ValueError(f"`candidate.path` must be 'direct' or 'fft', got "
                             f"{candidate.path!r}.")
        if candidate.path == "fft" and candidate.n_fft < self.problem.kernel_length:
            raise ValueError(f"`candidate.n_fft` must be >= the phase kernel length "
                             f"{self.problem.kernel_length}, got {candidate.n_fft}.")
        block = candidate.n_fft - self.problem.kernel_length + 1 if candidate.path == "fft" else 0
        others = tuple(c for c in self.candidates if c != candidate)
        return dataclasses.replace(self, path=candidate.path, n_fft=candidate.n_fft,
                                   block=block, candidates=(candidate, *others))

    def __str__(self) -> str:
        p = self.problem
        how = (f", N={self.n_fft}, block={self.block}" if self.path == "fft"
               else " (shifted GEMMs)" if self.direct_variant == "direct-shifted"
               else " (FIR kernel)" if self.direct_variant == "direct-fir"
               else " (gathered windows)")
        head = (f"Plan: {self.path}{how}"
                + f", backend={self.backend}, device={self.device}, threads={self.threads}")
        shape = (f"  corr_valid: batch={p.batch}, groups={p.groups}, Ci={p.in_channels}, "
                 f"Co={p.out_channels}, Kp={p.kernel_length}, outputs={p.outputs}, "
                 f"{p.itemsize * 8}-bit")
        rows = [f"  {'*' if i == 0 else ' '} {c}" for i, c in enumerate(self.candidates)]
        return "\n".join([head, shape, "  candidates (estimated):", *rows])


def problem_for(spec: ConvSpec, input_shape: tuple[int, int, int], filters: int,
                itemsize: int) -> Problem:
    """The ``corr_valid`` sizes of a layer on an input ``(B, C_in, W)``."""
    batch, c_in, width = input_shape
    poly = polyphase(spec)
    n_out = spec.output_width(width)
    groups = c_in if spec.channel_separable else 1
    per_group_in = c_in // groups
    return Problem(batch=batch, groups=groups, in_channels=poly.in_phases * per_group_in,
                   out_channels=poly.out_phases * filters,
                   kernel_length=poly.phase_kernel_length,
                   outputs=poly.phase_outputs(n_out), itemsize=itemsize)


def plan(spec: ConvSpec, input_shape: Sequence[int], dtype: np.dtype | str, backend: str,
         config: Config | str | os.PathLike | None, *, filters: int, method: str = "auto",
         threads: int = 1, prepared: Prepared | None = None, time_major: bool = False) -> Plan:
    """Plan a layer on inputs of `input_shape`.

    Parameters
    ----------
    spec : ConvSpec
    input_shape : sequence of 3 int, (B, C_in, W)
        Channels first; ``B >= 0`` (an empty batch is planned like the layer
        runs it), ``C_in >= 1`` and ``W >= spec.min_input_width()``.
    dtype : float32 or float64
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        Name of the backend (recorded in the plan); ``'cupy'`` plans for the GPU
        with the configuration's ``[cupy]`` costs (:func:`~fftconv.config.device_config`),
        the others for the CPU.  Planning touches no device.
    config : Config, path or None
        Cost model, resolved by :func:`fftconv.config.load_config` (None: the
        ``FFTCONV_CONFIG`` file or the default).
    filters : int
        Filters per input channel when ``spec.channel_separable``, else output
        channels; ``>= 1``.
    method : {'auto', 'direct', 'fft', 'direct-shifted', 'direct-windows'}
        'direct' and 'fft' force the path; the FFT length is still chosen.
        'direct-shifted' and 'direct-windows' force the direct path's form too,
        where it applies (see :func:`direct_variant`).
    threads : int
        FFT threads (recorded in the plan), ``>= 1``.
    prepared : Prepared or None
        For a one-off call: what the call would find ready (kernel spectra,
        block transforms), see :func:`prepared_for`; the FFT lengths pay for
        what is missing.  None: the steady state of repeated calls, where
        everything is ready.
    time_major : bool
        Whether the input and output lie channels last in memory (``(B, W, C)``
        arrays, ``data_format='channels_last'``): the direct path's form
        depends on it (see :func:`direct_variant`).

    Returns
    -------
    Plan

    Raises
    ------
    TypeError
        If `spec` is not a ConvSpec, a size in `input_shape`, `filters` or
        `threads` is not an integer, `dtype` is not a dtype, `config` is
        not a Config, path or None, or `prepared` not a Prepared or None.
    ValueError
        If a value is out of range: the message names the argument, e.g. an
        `input_shape` width too short for `spec` gives its minimum width.
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"`spec` must be a ConvSpec, got {spec!r}.")
    batch, c_in, width = _check_input_shape(input_shape)
    spec.checked_output_width(width, "input_shape")
    dtype = float_dtype(dtype)
    device = device_kind(check_backend(backend))
    config = device_config(load_config(config), device)
    filters = positive_int(filters, "filters")
    check_method(method)
    threads = positive_int(threads, "threads")
    if prepared is not None and not isinstance(prepared, Prepared):
        raise TypeError(f"`prepared` must be a Prepared or None, got {prepared!r}.")

    problem = problem_for(spec, (batch, c_in, width), filters, dtype.itemsize)
    variant = direct_variant(problem, device, method, time_major, config)
    direct = Candidate("direct", 0, direct_cost(problem, config, variant, time_major))
    ffts = fft_candidates(problem, config, prepared)
    pool = {"auto": [direct, *ffts], "direct": [direct], "fft": ffts}[method_path(method)]
    ranked = sorted(pool, key=lambda c: c.cost_ns)
    best = ranked[0]
    listed = [best] + [c for c in sorted([direct, *ffts[:LISTED_FFT_CANDIDATES]],
                                         key=lambda c: c.cost_ns) if c != best]
    block = best.n_fft - problem.kernel_length + 1 if best.path == "fft" else 0
    return Plan(path=best.path, n_fft=best.n_fft, block=block, threads=threads,
                backend=backend, problem=problem, candidates=tuple(listed), device=device,
                direct_variant=variant)


def _check_input_shape(input_shape: object) -> tuple[int, int, int]:
    """Return `input_shape` as ``(B, C_in, W)`` ints, ``B >= 0``, ``C_in, W >= 1``."""
    what = ("`input_shape` must be three integers (B, C_in, W) with B >= 0 and "
            f"C_in, W >= 1, got {input_shape!r}.")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape,
                                                                (Sequence, np.ndarray)):
        raise TypeError(what)
    if len(input_shape) != 3:
        raise ValueError(what)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in input_shape):
        raise TypeError(what)
    batch, c_in, width = (int(v) for v in input_shape)
    if batch < 0 or c_in < 1 or width < 1:
        raise ValueError(what)
    return batch, c_in, width


def direct_variant(p: Problem, device: str = "cpu", method: str = "auto",
                   time_major: bool = False, config: Config | None = None) -> str:
    """The form of the direct path for `p` on a kind of `device` (``'cpu'``, ``'cuda'``).

    ``'direct-shifted'`` (shifted GEMMs) for an ungrouped problem with at least
    the device's ``shifted_min_channels`` input and output channels
    (:class:`~fftconv.backends.DeviceTraits`); with fewer input or output
    channels (per group) ``'direct-fir'`` (one FIR kernel) on a GPU, else
    ``'direct-windows'`` (gathered windows).  On time-major data (`time_major`)
    an ungrouped problem with at least ``shifted_min_in_channels_time_major``
    input channels and two output channels runs shifted GEMMs too: they read
    and write rows of channels where they lie, while windows gathered along
    time read the input with a stride of ``Ci`` samples (with one output
    channel each GEMM is a matrix-vector product, a pass over the input per
    tap, and windows won from 101 taps on); unless
    :func:`direct_cost` with `config` puts their ``Kp`` GEMM calls a block above
    the gathered windows (long kernels on short inputs).  A `method` naming a
    variant forces it where it applies (grouped problems gather windows).
    """
    if method in ("direct-shifted", "direct-windows"):
        return method if p.groups == 1 else "direct-windows"
    traits = device_traits(device)
    few = min(p.in_channels, p.out_channels) < traits.shifted_min_channels
    if few and device == "cuda":
        return "direct-fir"
    if p.groups != 1:
        return "direct-windows"
    if not few:
        return "direct-shifted"
    if (not time_major or p.in_channels < traits.shifted_min_in_channels_time_major
            or p.out_channels < 2):
        return "direct-windows"
    if config is None:
        return "direct-shifted"
    return min(("direct-shifted", "direct-windows"),
               key=lambda v: direct_cost(p, config, v, time_major=True))


def direct_cost(p: Problem, config: Config, variant: str | None = None,
                time_major: bool = False) -> float:
    """Estimated ns of the direct path: GEMMs plus data movement plus blocks.

    Shifted GEMMs move the input and the output once; the FIR kernel too, in
    one launch; gathered windows copy ``Kp`` windows of the input and write the
    output.  GEMMs with fewer channels on a side than the device's
    ``shifted_min_channels`` (shifted GEMMs on time-major data, see
    :func:`direct_variant`) run their products that many times slower: a thin
    GEMM is bound by reading its long operand (on a 2-core CPU, 29 -> 9 channels
    with 52 taps in float64 took 1.7x the estimate without it).  Windows
    gathered from `time_major` data of at least the device's
    ``shifted_min_in_channels_time_major`` input channels, read with a stride of
    ``Ci`` samples, cost its ``time_major_gather_factor`` times more per byte.
    `variant` None is :func:`direct_variant` of `p` on the configuration's device.
    """
    c = config.direct
    traits = device_traits(config.device)
    factor = c.float64_factor if p.itemsize == 8 else 1.0
    variant = variant or direct_variant(p, config.device)
    rows = p.outputs + p.kernel_length - 1
    if variant == "direct-shifted":
        moved = p.batch * rows * (p.in_channels + p.out_channels) * p.itemsize
        calls = max(1, -(-moved // config.memory.direct_bytes)) * p.kernel_length
        factor *= max(1.0, traits.shifted_min_channels / min(p.in_channels, p.out_channels))
    elif variant == "direct-fir":
        samples = p.in_channels * rows + p.out_channels * p.outputs
        moved = p.batch * p.groups * samples * p.itemsize
        calls = 1
    else:
        gathered = p.batch * p.groups * p.in_channels * p.kernel_length * p.outputs * p.itemsize
        calls = max(1, -(-gathered // config.memory.direct_bytes))
        strided = time_major and p.in_channels >= traits.shifted_min_in_channels_time_major
        moved = (gathered * (traits.time_major_gather_factor if strided else 1.0)
                 + p.batch * p.groups * p.out_channels * p.outputs * p.itemsize)
    return (p.macs * c.ns_per_mac * factor + moved * c.gather_ns_per_byte
            + calls * c.call_overhead_ns)


@dataclass(frozen=True)
class Prepared:
    """What a call would find ready, by FFT length; what is missing costs planning time.

    Attributes
    ----------
    spectra : frozenset of int
        FFT lengths at which the kernel's spectra are computed already.
    transforms : frozenset of int
        FFT lengths at which the backend holds the block transforms of the
        problem's channel layout (:meth:`~fftconv.backends.Backend.has_chunk_fft`).
    plans : bool
        Whether the backend plans its transforms (pyFFTW, cuFFT); False for scipy.fft,
        whose transforms of a new length cost no planning worth counting.
    """

    spectra: frozenset[int] = frozenset()
    transforms: frozenset[int] = frozenset()
    plans: bool = True


def prepared_for(p: Problem, config: Config, backend: Any,
                 spectra: Iterable[int] = ()) -> Prepared:
    """What `backend` holds for a call of `p`, for :func:`plan`'s `prepared`.

    Parameters
    ----------
    p : Problem
    config : Config
        The configuration the call runs with (its memory budget sizes the chunks).
    backend : Backend
    spectra : iterable of int
        FFT lengths at which the kernel's spectra are cached.
    """
    config = device_config(config, backend.traits.kind)
    dtype = np.float64 if p.itemsize == 8 else np.float32
    transforms = frozenset(
        int(n) for n in fft_lengths(p, config)
        if backend.has_chunk_fft(*chunk_rows(p, int(n), config.memory.fft_bytes), int(n), dtype))
    return Prepared(spectra=frozenset(int(n) for n in spectra), transforms=transforms,
                    plans=backend.name != "numpy")


def chunk_rows(p: Problem, n_fft: int, max_bytes: int) -> tuple[int, int]:
    """Rows of the block transforms that the FFT path uses for `p` at `n_fft`.

    As :func:`fftconv.paths.fft.corr_valid_fft` asks them of the backend:
    ``(B * G*Ci * chunk, B * G*Co * chunk)``, ``chunk`` from
    :func:`~fftconv.paths.fft.chunk_blocks`.
    """
    gci, gco = p.groups * p.in_channels, p.groups * p.out_channels
    chunk = chunk_blocks(p.batch, gci, gco, n_fft, p.itemsize, max_bytes)
    return p.batch * gci * chunk, p.batch * gco * chunk


def fft_candidates(p: Problem, config: Config, prepared: Prepared | None = None,
                   ) -> list[Candidate]:
    """The FFT lengths worth considering (:func:`fft_lengths`) with their costs, cheapest first.

    A cost is the estimated ns of the call: its blocks (transforms and the per-bin
    product) and a fixed cost per chunk of blocks; with `prepared`, plus the
    planning and the kernel-spectrum transform that the call would have to do
    first (:func:`preparation_cost`).
    """
    n = fft_lengths(p, config)
    if n.size == 0:
        return []
    cost = fft_cost(p, config, n)
    if prepared is not None:
        cost = cost + preparation_cost(p, config, n.astype(np.float64), prepared)
    order = np.argsort(cost, kind="stable")
    return [Candidate("fft", int(n[i]), float(cost[i])) for i in order]


def spectra_bytes(p: Problem, n: Any) -> Any:
    """Bytes of the kernel spectra of `p` at FFT length(s) `n` (int or array, as given)."""
    return p.groups * p.out_channels * p.in_channels * (n // 2 + 1) * 2 * p.itemsize


def measurable_fft_candidates(p: Problem, config: Config) -> list[Candidate]:
    """FFT lengths worth timing for `p`, with their costs, cheapest first.

    The planner's lengths (:func:`fft_candidates`) and the long-input length's
    neighbours, half and twice it (where at least the phase kernel length, within
    ``fft.max_fft_length`` and with kernel spectra within
    ``memory.spectra_bytes``): on long inputs the planner lists one length only,
    and the model's optimum can be off by a factor of two either way.
    """
    n_long = long_fft_length(p, config)
    if n_long == 0:
        return []
    lengths = set(fft_lengths(p, config).tolist())
    for n in (n_long // 2, 2 * n_long):
        if (n >= max(p.kernel_length, 8) and n <= config.fft.max_fft_length
                and spectra_bytes(p, n) <= config.memory.spectra_bytes):
            lengths.add(n)
    n = np.array(sorted(lengths), dtype=np.int64)
    cost = fft_cost(p, config, n)
    return [Candidate("fft", int(n[i]), float(cost[i])) for i in np.argsort(cost, kind="stable")]


def fft_cost(p: Problem, config: Config, n: np.ndarray) -> np.ndarray:
    """Estimated ns of the steady-state call of `p` at each FFT length in `n`, shape (L,).

    Its blocks (transforms, per-bin product, copies) and, per chunk of blocks,
    a fixed cost and the read of the kernel spectra (:func:`_block_costs`).
    """
    n = np.asarray(n, dtype=np.float64)
    per_block, per_chunk, per_chunk_ns = _block_costs(p, config, n)
    blocks = np.ceil(p.outputs / (n - p.kernel_length + 1))
    return blocks * per_block + np.ceil(blocks / per_chunk) * per_chunk_ns


def fft_lengths(p: Problem, config: Config) -> np.ndarray:
    """The FFT lengths considered for `p`: few, and the same for nearby input widths.

    The long-input length (:func:`long_fft_length`), which depends on the
    kernel, the channel layout and the configuration but not on the number of
    outputs; and, for inputs that it would cover in fewer than
    :data:`SHORT_INPUT_BLOCKS` blocks, the powers of two between the phase kernel
    length (at least 8) and it.  So the lengths a kernel uses, and the block
    transforms planned for them, are few whatever the widths of the inputs.

    Returns
    -------
    ndarray of int64, ascending; empty if the phase kernel is longer than
    ``fft.max_fft_length``.
    """
    n_long = long_fft_length(p, config)
    if n_long == 0:
        return np.zeros(0, np.int64)
    kp = p.kernel_length
    span = p.outputs + kp - 1  # input samples per signal
    lengths = [n_long]
    if span < SHORT_INPUT_BLOCKS * (n_long - kp + 1) + kp - 1:
        power = 1 << (max(kp, 8) - 1).bit_length()
        while power < n_long:
            lengths.insert(-1, power)
            power *= 2
    return np.array(lengths, dtype=np.int64)


def long_fft_length(p: Problem, config: Config) -> int:
    """The fast FFT length with the least estimated cost per output on long inputs.

    Blocks and the chunk overhead per output sample, over the 7-smooth lengths
    from the phase kernel length (at least 8) to ``fft.max_fft_length`` whose
    kernel spectra fit ``memory.spectra_bytes`` (the shortest always counts);
    the number of outputs of `p` plays no part.  0 if no length is long enough.
    """
    return _long_fft_length(p.batch, p.groups, p.in_channels, p.out_channels,
                            p.kernel_length, p.itemsize, config)


@lru_cache(maxsize=256)
def _long_fft_length(batch: int, groups: int, in_channels: int, out_channels: int,
                     kernel_length: int, itemsize: int, config: Config) -> int:
    lengths = fast_lengths(config.fft.max_fft_length)
    lo = int(np.searchsorted(lengths, max(kernel_length, 8)))
    if lo == lengths.size:
        return 0
    n = lengths[lo:].astype(np.float64)
    p = Problem(batch, groups, in_channels, out_channels, kernel_length, 1, itemsize)
    n = n[:max(1, int(np.count_nonzero(spectra_bytes(p, n) <= config.memory.spectra_bytes)))]
    per_block, per_chunk, per_chunk_ns = _block_costs(p, config, n)
    per_output = (per_block + per_chunk_ns / per_chunk) / (n - kernel_length + 1)
    return int(n[int(np.argmin(per_output))])


def preparation_cost(p: Problem, config: Config, n: np.ndarray, prepared: Prepared,
                     ) -> np.ndarray:
    """Estimated ns that a call at each FFT length in `n` spends getting ready.

    Where the kernel's spectra at a length are missing, their transform (one per
    channel pair) and, if the backend plans, its plan; where the block
    transforms are missing, the plans of the forward and the inverse transform.
    A plan costs ``fft.plan_overhead_ns + fft.plan_ns_per_point * N`` (an
    FFTW_ESTIMATE plan: measured plans are made only for transforms that
    recur).  The direct path needs none of this.

    Parameters
    ----------
    n : ndarray, shape (L,)
    prepared : Prepared

    Returns
    -------
    ndarray, shape (L,)
    """
    c = config.fft
    factor = c.float64_factor if p.itemsize == 8 else 1.0
    plan_ns = (c.plan_overhead_ns + c.plan_ns_per_point * n) if prepared.plans else 0.0 * n
    kernels = p.groups * p.out_channels * p.in_channels
    spectra = kernels * _transform_ns(c, n, p.itemsize) * factor + plan_ns
    cost = np.where(np.isin(n, list(prepared.spectra)), 0.0, spectra)
    return cost + np.where(np.isin(n, list(prepared.transforms)), 0.0, 2 * plan_ns)


def _transform_ns(c: Any, n: np.ndarray, itemsize: int) -> np.ndarray:
    """ns of one real FFT of each length in `n`, at float32 rates.

    Rows of more than ``c.large_row_bytes`` bytes (`itemsize` bytes a
    sample) cost ``c.large_ns_per_nlogn``: they no longer fit the cache
    that the transform works in.
    """
    large = (n * itemsize > c.large_row_bytes) if c.large_row_bytes else False
    rate = np.where(large, c.large_ns_per_nlogn, c.ns_per_nlogn)
    return rate * n * np.log2(n) * c.radix_penalty ** _odd_factors(n)


def _block_costs(p: Problem, config: Config, n: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ns of one block at each FFT length in `n`, the blocks per chunk and the ns per chunk.

    A chunk's fixed cost is two transform calls and one read of the kernel
    spectra (``G*Co*Ci*(N/2+1)`` complex numbers, streamed from memory once per
    chunk by the per-bin product, at ``fft.spectra_ns_per_byte``: a streaming
    read, several times faster per byte than the block copies).  The product's
    batched GEMMs, one per bin with ``B * blocks`` columns, cost as much with
    2 up to the device's ``gemm_min_columns`` columns as with that many; the
    difference is charged per chunk.
    """
    c = config.fft
    factor = c.float64_factor if p.itemsize == 8 else 1.0
    signals = p.batch * p.groups * (p.in_channels + p.out_channels)
    pairs = p.out_channels * p.in_channels
    traits = device_traits(config.device)
    matmul = pairs >= traits.matmul_min_pairs
    mac_ns = c.product_ns_per_mac if matmul else c.small_product_ns_per_mac
    # The per-bin product of one GEMM column (one signal's block), and of a block.
    column_product = p.groups * pairs * (n // 2 + 1) * mac_ns
    product = p.batch * column_product
    # Gathered input blocks and scattered outputs, and a fixed cost per transform row.
    copied = p.batch * p.groups * (p.in_channels * n + p.out_channels * (n - p.kernel_length + 1))
    transforms = signals * (_transform_ns(c, n, p.itemsize) + c.row_overhead_ns)
    per_block = (transforms + product) * factor + copied * p.itemsize * c.ns_per_byte
    # chunk_blocks() of every length at once.
    per_block_bytes = block_bytes(p.batch, p.groups * p.in_channels, p.groups * p.out_channels,
                                  n.astype(np.int64), p.itemsize)
    per_chunk = np.maximum(1, config.memory.fft_bytes // np.maximum(per_block_bytes, 1))
    per_chunk_ns = 2 * c.call_overhead_ns + spectra_bytes(p, n) * c.spectra_ns_per_byte
    if matmul:
        # Each bin's GEMM has B * blocks columns; few cost as much as gemm_min_columns.
        columns = p.batch * per_chunk
        short = np.where(columns > 1, np.maximum(0, traits.gemm_min_columns - columns), 0)
        per_chunk_ns = per_chunk_ns + column_product * short * factor
    return per_block, per_chunk.astype(np.float64), per_chunk_ns


@cache
def fast_lengths(limit: int) -> np.ndarray:
    """Sorted 7-smooth numbers ``2^a 3^b 5^c 7^d <= limit`` (fast FFT sizes)."""
    values = [1]
    for prime in (2, 3, 5, 7):
        values = [v * prime**e for v in values
                  for e in range(int(log2(limit) / log2(prime)) + 1) if v * prime**e <= limit]
    out = np.array(sorted(values), dtype=np.int64)
    out.flags.writeable = False
    return out


def _odd_factors(n: np.ndarray) -> np.ndarray:
    """Number of prime factors 3, 5 and 7 (with multiplicity) of each 7-smooth `n`."""
    n = n.astype(np.int64)
    count = np.zeros(n.shape)
    for prime in (3, 5, 7):
        while True:
            hit = n % prime == 0
            if not hit.any():
                break
            count += hit
            n = np.where(hit, n // prime, n)
    return count
