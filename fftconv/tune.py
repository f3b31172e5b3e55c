"""Measure and fit the planner's cost constants on this machine (``fftconv tune``).

Tuning has three steps.

1. Micro-benchmarks (:func:`measure_config`): block FFTs, the per-bin product,
   a GEMM and a window gather give a first value of each constant.
2. A suite of real layer calls (:func:`make_suite`, :func:`measure_suite`): a
   seeded sample of layers and inputs over the planner's territory; each
   problem's direct candidate and a few FFT lengths run through
   :meth:`fftconv.engine.Engine.execute`, each timed as the minimum of a few
   warm runs.
3. A fit (:func:`fit_constants`): one scale factor per cost constant, searched
   in log space by Nelder-Mead on a smoothed objective, minimises the suite's
   regret, the time of the candidate the planner would pick over the time of
   the fastest one.  The regret is evaluated with the planner's own cost functions
   (:func:`fftconv.planner.direct_cost`, :func:`fftconv.planner.fft_candidates`)
   on the measured times; nothing is timed inside the search.  After a fit, the
   problems whose new choice was not timed get it timed, and the fit is repeated.

:func:`tune_config` runs the three steps and :func:`profile_text` writes the
result as a configuration file that describes the machine.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from math import log2

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fftconv.backends import Backend, get_backend
from fftconv.config import DEFAULT_SOURCE, Config
from fftconv.engine import backend_options
from fftconv.paths.fft import _per_bin_product, block_bytes, corr_valid_fft, kernel_spectra
from fftconv.planner import Problem, direct_cost, fast_lengths, fft_candidates, spectra_bytes
from fftconv.spec import ConvSpec

#: FFT lengths timed for ``fft.ns_per_nlogn`` (each over about 2**21 samples).
FFT_LENGTHS = (256, 2048, 16384, 131072)

#: Constants the fit scales, as ``(section, key)``; one missing from a
#: configuration (or not a number > 0 there) is left out of the fit.  Only
#: the ratio of the two float64 factors changes a choice, so the FFT one is
#: fitted; the radix penalty, the planning costs (one-off calls) and the
#: streaming costs are kept.
FITTED_CONSTANTS = (
    ("fft", "ns_per_nlogn"),
    ("fft", "call_overhead_ns"),
    ("fft", "product_ns_per_mac"),
    ("fft", "small_product_ns_per_mac"),
    ("fft", "row_overhead_ns"),
    ("fft", "ns_per_byte"),
    ("fft", "float64_factor"),
    ("direct", "ns_per_mac"),
    ("direct", "gather_ns_per_byte"),
    ("direct", "call_overhead_ns"),
)

#: Largest change of a constant the fit makes, as a factor either way.
MAX_FACTOR = 32.0
#: Values some constants must keep whatever the fit finds: a float64 factor
#: below 1 would make float64 transforms cheaper than float32 ones.
VALUE_BOUNDS = {("fft", "float64_factor"): (1.0, 6.0)}
#: An FFT length that was not timed, outside the timed ones of its problem, is
#: taken to be this much slower than the nearest timed one per octave away
#: (pessimistic: the fit is not rewarded for guesses; the refit times them).
EXTRAPOLATION_PER_OCTAVE = 1.25
#: Weight of the worst problem's log regret in the objective (beside the mean).
WORST_WEIGHT = 0.25
#: Weight of the mean squared log factor in the objective: among equally good
#: fits it keeps the constants nearest their micro-benchmark values.
PRIOR_WEIGHT = 1e-3

#: Types of the keys of :attr:`Measurement.seconds`: ``('direct', 0)`` or ``('fft', n)``.
Key = tuple[str, int]


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: plans, caches, page faults
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _product_ns(batch: int, c_in: int, c_out: int, repeat: int) -> float:
    """ns per complex multiply-accumulate of the per-bin product for these channels."""
    count, bins = 16, 1025
    rng = np.random.default_rng(1)
    shape = (batch, 1, c_in, count, bins)
    spec_in = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    spectra = np.ones((1, bins, c_out, c_in), np.complex64)
    out = np.empty((batch, 1, c_out, count, bins), np.complex64)
    seconds = _median_seconds(lambda: _per_bin_product(spec_in, spectra, out), repeat)
    return seconds * 1e9 / (batch * c_in * c_out * count * bins)


def _check_repeat(repeat: object) -> int:
    if isinstance(repeat, bool) or not isinstance(repeat, numbers.Integral):
        raise TypeError(f"`repeat` must be an integer >= 1, got {repeat!r}.")
    if repeat < 1:
        raise ValueError(f"`repeat` must be an integer >= 1, got {repeat}.")
    return int(repeat)


def _backend(config: Config) -> Backend:
    """The CPU backend that engines running with `config` share."""
    return get_backend("auto", **backend_options(config))


def measure_config(base: Config, repeat: int = 5, log: Callable[[str], None] = print) -> Config:
    """Return `base` with its cost constants measured on this machine (float32).

    Times block FFTs of several lengths through the configured backend, the
    per-bin complex product, a float32 GEMM and a window gather.  Memory
    budgets, FFTW options and the streaming costs are kept from `base`.

    Parameters
    ----------
    base : Config
        Configuration to start from (its FFTW options select the backend).
    repeat : int
        Timed runs per measurement, ``>= 1``; each constant is their median.
    log : callable
        Called with one line of text per measurement.

    Returns
    -------
    Config
        Every measured constant finite and > 0, so the result written with
        :meth:`Config.to_toml` loads with :func:`~fftconv.config.load_config`.

    Raises
    ------
    TypeError
        If `base` is not a Config or `repeat` not an integer.
    ValueError
        If `repeat` is smaller than 1.
    RuntimeError
        If a measured constant is not a finite number > 0 (a timer too coarse
        or a failed timing); nothing is returned then.
    """
    if not isinstance(base, Config):
        raise TypeError(f"`base` must be a Config, got {base!r}.")
    repeat = _check_repeat(repeat)
    backend = _backend(base)
    rng = np.random.default_rng(0)

    per_nlogn = []
    for n in FFT_LENGTHS:
        rows = max(1, (1 << 21) // n)
        block = backend.block_fft(rows, rows, n, np.float32)
        block.real_in[...] = rng.standard_normal(block.real_in.shape)
        block.spectrum_in[...] = 1.0
        seconds = _median_seconds(lambda b=block: (b.forward(), b.inverse()), repeat) / 2
        per_nlogn.append(seconds * 1e9 / (rows * n * log2(n)))
        log(f"fft N={n:<7d} {seconds * 1e3:8.3f} ms per {rows} transforms")
    # Fixed cost of one chunk of blocks: a one-block problem is all overhead.
    x1 = np.ones((1, 1, 16), np.float32)
    spectra1 = kernel_spectra(np.ones((1, 1, 1, 1), np.float32), 16, backend)
    overhead = _median_seconds(lambda: corr_valid_fft(x1, spectra1, 1, 16, backend), repeat) / 2

    product_ns = [_product_ns(8, 8, 16, repeat), _product_ns(8, 4, 1, repeat)]

    w = rng.standard_normal((64, 640)).astype(np.float32)
    cols = rng.standard_normal((640, 8192)).astype(np.float32)
    gemm_ns = _median_seconds(lambda: w @ cols, repeat) * 1e9 / (64 * 640 * 8192)

    x = rng.standard_normal((8, 64, 4096)).astype(np.float32)
    windows = sliding_window_view(x, 9, axis=-1)
    gather = _median_seconds(lambda: np.ascontiguousarray(windows.transpose(1, 3, 0, 2)),
                             repeat)
    gather_ns = gather * 1e9 / (windows.size * 4)

    fft = dataclasses.replace(base.fft, ns_per_nlogn=float(np.median(per_nlogn)),
                              call_overhead_ns=overhead * 1e9, product_ns_per_mac=product_ns[0],
                              small_product_ns_per_mac=product_ns[1])
    direct = dataclasses.replace(base.direct, ns_per_mac=gemm_ns, gather_ns_per_byte=gather_ns)
    for name, value in [("fft.ns_per_nlogn", fft.ns_per_nlogn),
                        ("fft.call_overhead_ns", fft.call_overhead_ns),
                        ("fft.product_ns_per_mac", fft.product_ns_per_mac),
                        ("fft.small_product_ns_per_mac", fft.small_product_ns_per_mac),
                        ("direct.ns_per_mac", direct.ns_per_mac),
                        ("direct.gather_ns_per_byte", direct.gather_ns_per_byte)]:
        log(f"{name:<28} {value:.6g}")
        if not (math.isfinite(value) and value > 0):
            raise RuntimeError(f"measured {name} = {value!r} is not a finite number > 0; "
                               f"the timings failed or the timer is too coarse here.")
    return dataclasses.replace(base, fft=fft, direct=direct, source="<measured>")


# -- the suite of layer calls ---------------------------------------------------


@dataclass(frozen=True)
class SuiteSize:
    """How large a suite is and how long its calls may take.

    Attributes
    ----------
    cases : int
        Problems drawn.
    fft_lengths : int
        FFT lengths timed per problem (2 or 3): the model's best, then fast
        lengths about half and twice as long (see :func:`measure_suite`).
    case_seconds : float
        The model's best estimate for one problem at most; larger draws are
        shortened (width, then batch) or drawn again.
    candidate_seconds : float
        A candidate estimated above this is not timed, and the timed runs of
        one candidate stop once they took this long.
    max_bytes : int
        Bytes of the input, the output, the kernel and the kernel spectra of
        the timed FFT lengths (each) at most.
    refine_rounds : int
        Times the fit is repeated after timing the new choices it made.
    max_evaluations : int
        Evaluations of the objective per fit (see :func:`fit_constants`).
    """

    cases: int
    fft_lengths: int
    case_seconds: float
    candidate_seconds: float
    max_bytes: int
    refine_rounds: int
    max_evaluations: int


#: The suites ``fftconv tune`` runs: ``tiny`` for tests, ``quick`` (``--quick``,
#: well under a minute on two cores) and ``full`` (a few minutes).
SUITES = {
    "tiny": SuiteSize(cases=3, fft_lengths=2, case_seconds=0.002, candidate_seconds=0.02,
                      max_bytes=1 << 20, refine_rounds=1, max_evaluations=60),
    "quick": SuiteSize(cases=24, fft_lengths=2, case_seconds=0.06, candidate_seconds=0.3,
                       max_bytes=1 << 24, refine_rounds=1, max_evaluations=200),
    "full": SuiteSize(cases=80, fft_lengths=3, case_seconds=0.06, candidate_seconds=0.6,
                      max_bytes=1 << 25, refine_rounds=2, max_evaluations=300),
}

#: Least ratio between the model's best FFT length and the other lengths timed.
OCTAVE = 1.8
#: The direct path is timed when the model puts it within this factor of its best.
DIRECT_RANGE = 12.0
#: A candidate whose warm-up run takes this many times ``candidate_seconds`` is
#: not run again (see :func:`measure_suite`).
SLOW = 2.0


@dataclass(frozen=True)
class SuiteCase:
    """One layer and input of the suite.

    Attributes
    ----------
    layer : tuple of (str, value)
        :class:`~fftconv.layer.SignalConv1D` arguments (``filters``,
        ``kernel_support``, ``corr``, ``strides_down``, ``strides_up``,
        ``padding``, ``channel_separable``, ``data_format``, ``dtype``).
    input_shape : tuple of int
        In the layer's data format.
    seed : int
        Seed of the input and the kernel.
    """

    layer: tuple[tuple[str, object], ...]
    input_shape: tuple[int, int, int]
    seed: int

    @property
    def arguments(self) -> dict:
        """The layer's arguments as a dict."""
        return dict(self.layer)

    @property
    def channels_first_shape(self) -> tuple[int, int, int]:
        """The input shape as ``(B, C_in, W)``."""
        b, w, c = self.input_shape
        if self.arguments["data_format"] == "channels_first":
            return self.input_shape
        return (b, c, w)

    def spec(self) -> ConvSpec:
        """The layer's geometry."""
        a = self.arguments
        return ConvSpec.from_arguments(a["kernel_support"], a["corr"], a["strides_down"],
                                       a["strides_up"], a["padding"], None,
                                       a["channel_separable"])

    def problem(self) -> Problem:
        """The planner's ``corr_valid`` sizes of this call."""
        from fftconv.planner import problem_for

        a = self.arguments
        return problem_for(self.spec(), self.channels_first_shape, a["filters"],
                           np.dtype(a["dtype"]).itemsize)

    def __str__(self) -> str:
        a = self.arguments
        b, c, w = self.channels_first_shape
        strides = "".join([f" up{a['strides_up']}" if a["strides_up"] > 1 else "",
                           f" down{a['strides_down']}" if a["strides_down"] > 1 else ""])
        sep = " separable" if a["channel_separable"] else ""
        last = "last" if a["data_format"] == "channels_last" else "first"
        return (f"K={a['kernel_support']}{strides}{sep} B={b} C={c} F={a['filters']} W={w} "
                f"{np.dtype(a['dtype']).name} {last}")


def _log_uniform_int(rng: np.random.Generator, low: int, high: int) -> int:
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


def _draw(rng: np.random.Generator) -> dict:
    separable = bool(rng.random() < 0.25)
    return {
        "filters": _log_uniform_int(rng, 1, 4 if separable else 64),
        "kernel_support": _log_uniform_int(rng, 1, 30000),
        "corr": bool(rng.random() < 0.5),
        "strides_down": int(rng.choice([1, 1, 1, 2, 3, 4])),
        "strides_up": int(rng.choice([1, 1, 1, 1, 2, 3, 4])),
        "padding": str(rng.choice(["valid", "same_zeros", "same_reflect"])),
        "channel_separable": separable,
        "data_format": "channels_last" if rng.random() < 0.5 else "channels_first",
        "dtype": "float64" if rng.random() < 0.2 else "float32",
    }


def _case_bytes(case: SuiteCase) -> int:
    """Largest of the input, output and kernel bytes of `case`."""
    a = case.arguments
    spec = case.spec()
    b, c, w = case.channels_first_shape
    itemsize = np.dtype(a["dtype"]).itemsize
    c_out = c * a["filters"] if a["channel_separable"] else a["filters"]
    return itemsize * max(b * c * w, b * c_out * spec.output_width(w),
                          a["kernel_support"] * c * a["filters"])


def make_suite(suite: str, config: Config, seed: int = 0) -> list[SuiteCase]:
    """Draw the layer calls of a suite.

    Kernels of 1 to 30000 taps (log-uniform), strides 1 to 4, 1 to 64
    channels and filters, a quarter channel-separable, batches of 1 to 8,
    widths of 2**14 to 2**20 samples, a fifth float64, half channels last.
    A draw is narrowed (width, then batch) to the suite's memory and time
    bounds (estimated with `config`, whose best FFT length must fit too, see
    :func:`_fft_fits`), or drawn again.

    Parameters
    ----------
    suite : {'tiny', 'quick', 'full'}
    config : Config
        Cost model that sizes the calls (the same `config` and `seed` give
        the same suite).
    seed : int

    Returns
    -------
    list of SuiteCase
    """
    if suite not in SUITES:
        raise ValueError(f"`suite` must be one of {sorted(SUITES)}, got {suite!r}.")
    size = SUITES[suite]
    rng = np.random.default_rng(seed)
    cases: list[SuiteCase] = []
    for _ in range(200 * size.cases):
        if len(cases) == size.cases:
            break
        layer = _draw(rng)
        shape = [_log_uniform_int(rng, 1, 8), _log_uniform_int(rng, 1, 64),
                 int(2 ** rng.uniform(14, 20))]
        case = _narrowed(layer, shape, size, config, seed=int(rng.integers(2**31)))
        if case is not None:
            cases.append(case)
    return cases


def _narrowed(layer: dict, shape: list[int], size: SuiteSize, config: Config,
              seed: int) -> SuiteCase | None:
    """`layer` on a `shape` ``[B, C, W]`` narrowed to the bounds of `size`, or None."""

    def case() -> SuiteCase:
        b, c, w = shape
        in_shape = (b, c, w) if layer["data_format"] == "channels_first" else (b, w, c)
        return SuiteCase(tuple(layer.items()), in_shape, seed)

    floor = max(1 << 14, 2 * case().spec().min_input_width())
    while True:
        current = case()
        problem = current.problem()
        costs = candidate_costs(problem, config)
        ffts = [k for k in costs if k[0] == "fft"]
        fits = (_case_bytes(current) <= size.max_bytes
                and min(costs.values()) / 1e9 <= size.case_seconds
                and (not ffts or _fft_fits(problem, ffts[0][1], size)))
        if fits:
            return current
        if shape[2] // 2 >= floor:
            shape[2] //= 2
        elif shape[0] > 1:
            shape[0] //= 2
        else:
            return None


@dataclass(frozen=True)
class Measurement:
    """Measured times of some candidates of one ``corr_valid`` problem.

    Attributes
    ----------
    problem : Problem
    seconds : mapping of (str, int) to float
        ``('direct', 0)`` or ``('fft', n_fft)`` to the minimum time of a few
        warm runs, in seconds; finite and > 0.
    label : str
        What was run (for the log).
    case : SuiteCase or None
        The layer call, to time more candidates later (None: synthetic).
    """

    problem: Problem
    seconds: Mapping[Key, float]
    label: str = ""
    case: SuiteCase | None = None


def candidate_costs(problem: Problem, config: Config) -> dict[Key, float]:
    """Every candidate's estimated ns under `config`: direct first, then FFT lengths."""
    costs = {("direct", 0): direct_cost(problem, config)}
    for candidate in fft_candidates(problem, config):
        costs.setdefault(("fft", candidate.n_fft), candidate.cost_ns)
    return costs


def _fft_fits(problem: Problem, n_fft: int, size: SuiteSize) -> bool:
    """Whether the kernel spectra at `n_fft` fit ``size.max_bytes``, and one block twice that.

    The FFT path's buffers hold at least one block, however large
    (``memory.fft_bytes`` bounds only how many blocks go together).
    """
    p = problem
    spectra = spectra_bytes(p, n_fft)
    block = block_bytes(p.batch, p.groups * p.in_channels, p.groups * p.out_channels, n_fft,
                        p.itemsize)
    return spectra <= size.max_bytes and block <= 2 * size.max_bytes


def _nearest_fast_length(target: float, low: int, high: int, limit: int) -> int | None:
    """The fast FFT length in ``[low, high]`` nearest `target` (in log scale), or None."""
    lengths = fast_lengths(limit)
    lengths = lengths[(lengths >= low) & (lengths <= high)]
    if not len(lengths):
        return None
    return int(lengths[np.argmin(np.abs(np.log(lengths / target)))])


def _timed_candidates(problem: Problem, config: Config, size: SuiteSize,
                      prefer_longer: bool = False) -> list[Key]:
    """What to time: the direct path (unless far off) and ``size.fft_lengths`` FFT lengths.

    The model's best FFT length, then a length about half and one about
    twice as long (the first of these is the longer one when
    `prefer_longer`), so the fit sees the trade-off the block length makes,
    then the model's other FFT candidates.  Lengths whose buffers do not fit
    (:func:`_fft_fits`), and candidates estimated above
    ``size.candidate_seconds`` are left out.
    """
    costs = candidate_costs(problem, config)
    ffts = [k for k in costs if k[0] == "fft"]
    chosen: list[Key] = []
    if ffts and costs[ffts[0]] / 1e9 <= size.candidate_seconds:
        n0 = ffts[0][1]
        shortest = max(problem.kernel_length, 8)
        span = problem.outputs + problem.kernel_length - 1  # one block holds it all
        limit = config.fft.max_fft_length
        shorter = _nearest_fast_length(n0 / 2, shortest, int(n0 / OCTAVE), limit)
        longer = (_nearest_fast_length(2 * n0, math.ceil(n0 * OCTAVE), min(limit, 2 * span),
                                       limit) if n0 < span else None)
        pair = [longer, shorter] if prefer_longer else [shorter, longer]
        extra = [("fft", n) for n in pair if n is not None]
        for key in [ffts[0], *extra, *ffts[1:]]:
            if key not in chosen and _fft_fits(problem, key[1], size):
                chosen.append(key)
        chosen = chosen[:size.fft_lengths]
    best = min(costs.values())
    direct = ("direct", 0)
    if costs[direct] / 1e9 <= size.candidate_seconds and costs[direct] <= DIRECT_RANGE * best:
        chosen.insert(0, direct)
    return chosen


def _time_case(case: SuiteCase, keys: Sequence[Key], config: Config, repeat: int,
               size: SuiteSize) -> tuple[dict[Key, float], float]:
    """Minimum seconds of a few warm runs of each candidate in `keys`, interleaved.

    Every candidate runs once to warm up (FFTW plans, kernel spectra, buffers),
    then up to `repeat` times, fewer once its runs took ``size.candidate_seconds``.
    Each timed run follows an untimed run of the same candidate, as in a
    program calling one layer repeatedly: right after another candidate's run,
    its leftover memory and spinning worker threads can double a run's time.
    A candidate whose warm-up took :data:`SLOW` times that long keeps the
    warm-up's time (an upper bound) and runs no more: the model was far off,
    and so slow a candidate is never the fastest.  Returns the minimum times
    and the seconds the warm-up runs took.
    """
    from fftconv.engine import Engine
    from fftconv.planner import Candidate, plan

    a = case.arguments
    dtype = np.dtype(a["dtype"])
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal(case.input_shape, dtype=dtype)
    kernel = rng.standard_normal((a["kernel_support"], case.channels_first_shape[1],
                                  a["filters"]), dtype=dtype)
    time_major = a["data_format"] == "channels_last"
    x_cf = x.transpose(0, 2, 1) if time_major else x
    engine = Engine(case.spec(), a["filters"], config=config)
    backend = engine.backend
    # The estimated plan (never a measured one), then each candidate chosen in turn.
    planned = plan(case.spec(), x_cf.shape, dtype, backend.name, config, filters=a["filters"],
                   threads=backend.threads)
    plans = {k: planned.choose(Candidate(k[0], k[1], 0.0)) for k in keys}
    token = ("tune", case.seed)
    best: dict[Key, float] = {}
    spent = dict.fromkeys(keys, 0.0)
    warm = 0.0
    for round_ in range(repeat + 1):  # interleaved, so a slow spell hits every candidate
        for key in keys:
            if round_ and spent[key] >= size.candidate_seconds:
                continue
            if round_:
                engine.execute(x_cf, lambda: kernel, token, plans[key], time_major)
            start = time.perf_counter()
            engine.execute(x_cf, lambda: kernel, token, plans[key], time_major)
            seconds = time.perf_counter() - start
            if round_:
                spent[key] += seconds
                best[key] = min(best.get(key, math.inf), seconds)
            else:
                warm += seconds
                if seconds >= SLOW * size.candidate_seconds:
                    best[key] = spent[key] = seconds
    return best, warm


def measure_suite(cases: Sequence[SuiteCase], config: Config, repeat: int = 3,
                  suite: str = "quick", log: Callable[[str], None] = print,
                  ) -> list[Measurement]:
    """Time each case's direct candidate and a few FFT lengths (chosen with `config`).

    The candidates of a case: the direct path, unless `config` puts it above
    :data:`DIRECT_RANGE` times the best estimate; the model's best FFT length;
    fast lengths about half and twice as long (cases alternate which comes
    first when the suite times two lengths), so the fit sees both sides of the
    block-length trade-off.  Each runs through
    :meth:`~fftconv.engine.Engine.execute` with the plan chosen for it
    (:meth:`~fftconv.planner.Plan.choose`): once to warm up, then the minimum
    of up to `repeat` runs, interleaved across candidates.

    Parameters
    ----------
    cases : sequence of SuiteCase
    config : Config
        Cost model that chooses the candidates, and the engine's configuration
        (memory budgets, FFTW options).
    repeat : int
        Timed runs per candidate at most, after one warm-up run; ``>= 1``.
    suite : {'tiny', 'quick', 'full'}
        Bounds of the candidates' time and memory.
    log : callable
        Called with one line per case.

    Returns
    -------
    list of Measurement
        One per case, in order; a case where nothing could be timed is left out.
    """
    repeat = _check_repeat(repeat)
    size = SUITES[suite]
    out = []
    for i, case in enumerate(cases):
        problem = case.problem()
        keys = _timed_candidates(problem, config, size, prefer_longer=i % 2 == 1)
        start = time.perf_counter()
        seconds, warm = _time_case(case, keys, config, repeat, size) if keys else ({}, 0.0)
        seconds = {k: t for k, t in seconds.items() if math.isfinite(t) and t > 0}
        times = ", ".join(f"{_key_name(k)} {t * 1e3:.2f}" for k, t in seconds.items())
        log(f"case {i + 1}/{len(cases)}: {case}: {times} ms "
            f"[{time.perf_counter() - start:.1f} s, warm-up {warm:.1f} s]")
        if seconds:
            out.append(Measurement(problem, seconds, str(case), case))
    return out


def _key_name(key: Key) -> str:
    return "direct" if key[0] == "direct" else f"N={key[1]}"


# -- the fit ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegretStats:
    """Median, 90th percentile and worst regret over a suite (1.0: always the fastest)."""

    median: float
    p90: float
    worst: float

    @classmethod
    def of(cls, regrets: np.ndarray) -> RegretStats:
        if len(regrets) == 0:
            return cls(math.nan, math.nan, math.nan)
        median, p90 = np.percentile(regrets, [50, 90])
        return cls(float(median), float(p90), float(np.max(regrets)))

    def __str__(self) -> str:
        return f"median {self.median:.3f}, 90% {self.p90:.3f}, worst {self.worst:.3f}"


class SuiteRegret:
    """The regret of any configuration's choices on measured problems.

    A candidate that was not timed gets an imputed time.  An FFT length
    between two timed ones of its problem: interpolated (log time against log
    length); outside them: the nearest timed one's, :data:`EXTRAPOLATION_PER_OCTAVE`
    slower per octave away.  The direct path, or an FFT when no length was
    timed: its estimate under `reference` times the problem's ratio of measured
    to estimated time.  Never below the fastest timed candidate.  Neither
    depends on the configuration being judged, so a fit cannot make an untimed
    candidate look fast by changing the estimates.

    Parameters
    ----------
    measurements : sequence of Measurement
    reference : Config
        Cost model of the imputed times (the one that chose what to time).
    """

    def __init__(self, measurements: Sequence[Measurement], reference: Config) -> None:
        self.measurements = list(measurements)
        self._log_best: list[float] = []
        self._direct_time: list[float] = []
        self._fft_log_n: list[np.ndarray] = []
        self._fft_log_t: list[np.ndarray] = []
        self._fft_fallback: list[float] = []
        direct = ("direct", 0)
        for i, m in enumerate(self.measurements):
            if not m.seconds or not all(t > 0 and math.isfinite(t) for t in m.seconds.values()):
                raise ValueError(f"`measurements[{i}].seconds` must hold finite times > 0, "
                                 f"got {dict(m.seconds)!r}.")
            ref = candidate_costs(m.problem, reference)
            best, worst = min(m.seconds.values()), max(m.seconds.values())
            ffts = sorted((k[1], t) for k, t in m.seconds.items() if k[0] == "fft")
            logs = [math.log(t / ref[k]) for k, t in m.seconds.items() if ref.get(k, 0) > 0]
            ratio = math.exp(sum(logs) / len(logs)) if logs else None
            ref_fft = min((c for k, c in ref.items() if k[0] == "fft"), default=None)
            self._log_best.append(math.log(best))
            self._direct_time.append(m.seconds[direct] if direct in m.seconds
                                     else max(best, ref[direct] * ratio) if ratio else worst)
            self._fft_log_n.append(np.log(np.array([n for n, _ in ffts], float)))
            self._fft_log_t.append(np.log(np.array([t for _, t in ffts], float)))
            self._fft_fallback.append(max(best, ref_fft * ratio) if ratio and ref_fft
                                      else worst)
        # Recent FFT estimates by configuration: a search step that changes only
        # direct constants reuses them (they are the slow part), and one that
        # changes only FFT constants reuses the direct ones.
        self._fft_memo: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._direct_memo: dict[tuple, list[float]] = {}

    def __len__(self) -> int:
        return len(self.measurements)

    def seconds(self, i: int, key: Key) -> float:
        """Measured or imputed time of candidate `key` of problem `i`."""
        if key[0] == "direct":
            return self._direct_time[i]
        return float(self._fft_time(i, np.array([key[1]]))[0])

    def _fft_time(self, i: int, lengths: np.ndarray) -> np.ndarray:
        """Measured or imputed times of FFT `lengths` of problem `i`."""
        log_n, log_t = self._fft_log_n[i], self._fft_log_t[i]
        if not len(log_n):
            return np.full(len(lengths), self._fft_fallback[i])
        x = np.log(np.asarray(lengths, float))
        octaves = (np.maximum(log_n[0] - x, 0.0) + np.maximum(x - log_n[-1], 0.0)) / math.log(2)
        log_time = np.interp(x, log_n, log_t) + octaves * math.log(EXTRAPOLATION_PER_OCTAVE)
        return np.maximum(np.exp(log_time), math.exp(self._log_best[i]))

    def _ffts(self, config: Config) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per problem: FFT lengths and costs, cheapest first (as the planner orders them)."""
        key = _sections_but(config, "direct")
        found = self._fft_memo.get(key)
        if found is None:
            found = []
            for m in self.measurements:
                ffts = fft_candidates(m.problem, config)
                found.append((np.array([c.n_fft for c in ffts], np.int64),
                              np.array([c.cost_ns for c in ffts])))
            if len(self._fft_memo) >= 8:
                self._fft_memo.pop(next(iter(self._fft_memo)))
            self._fft_memo[key] = found
        return found

    def _direct_costs(self, config: Config) -> list[float]:
        key = _sections_but(config, "fft")
        found = self._direct_memo.get(key)
        if found is None:
            found = [direct_cost(m.problem, config) for m in self.measurements]
            if len(self._direct_memo) >= 64:
                self._direct_memo.pop(next(iter(self._direct_memo)))
            self._direct_memo[key] = found
        return found

    def picks(self, config: Config) -> list[Key]:
        """The candidate the planner picks for each problem under `config`.

        As :func:`fftconv.planner.plan` picks: the cheapest estimate, the
        direct path on a tie, the first of equally cheap FFT lengths.
        """
        out: list[Key] = []
        for direct, (lengths, costs) in zip(self._direct_costs(config), self._ffts(config),
                                            strict=True):
            fft = int(np.argmin(costs)) if len(costs) else -1
            out.append(("direct", 0) if fft < 0 or direct <= costs[fft]
                       else ("fft", int(lengths[fft])))
        return out

    def log_regrets(self, config: Config, temperature: float = 0.0) -> np.ndarray:
        """Log regret of each problem under `config`, shape (problems,), >= 0.

        With ``temperature > 0`` the choice is soft: each candidate counts with
        weight ``softmax(-log(cost) / temperature)``, so the regret changes
        smoothly with the constants (a search can cross the plateaus of the
        hard choice, which it approaches as the temperature goes to 0).
        """
        if temperature <= 0:
            return np.array([math.log(self.seconds(i, key)) - self._log_best[i]
                             for i, key in enumerate(self.picks(config))]).clip(0.0)
        out = np.empty(len(self.measurements))
        for i, (direct, (lengths, costs)) in enumerate(zip(self._direct_costs(config),
                                                           self._ffts(config), strict=True)):
            cost = np.maximum(np.concatenate([[direct], costs]), 1e-300)
            seconds = np.concatenate([[self._direct_time[i]], self._fft_time(i, lengths)])
            z = -np.log(cost) / temperature
            weights = np.exp(z - z.max())
            regret = np.maximum(np.log(seconds) - self._log_best[i], 0.0)
            out[i] = float(weights @ regret / weights.sum())
        return out

    def regrets(self, config: Config) -> np.ndarray:
        """Time of each problem's pick over its fastest time, shape (problems,), >= 1."""
        return np.exp(self.log_regrets(config))

    def untimed_picks(self, config: Config) -> list[tuple[int, Key]]:
        """``(problem index, candidate)`` of the picks under `config` that were not timed."""
        return [(i, key) for i, key in enumerate(self.picks(config))
                if key not in self.measurements[i].seconds]


def _sections_but(config: Config, section: str) -> tuple:
    """The values of every section of `config` except `section` (hashable)."""
    return tuple(getattr(config, f.name) for f in dataclasses.fields(config)
                 if f.name not in (section, "source"))


def objective(log_regrets: np.ndarray) -> float:
    """Mean log regret plus :data:`WORST_WEIGHT` times the worst one."""
    if not len(log_regrets):
        return 0.0
    return float(log_regrets.mean() + WORST_WEIGHT * log_regrets.max())


@dataclass(frozen=True)
class Fit:
    """Result of :func:`fit_constants`.

    Attributes
    ----------
    config : Config
        `start` with the fitted constants.
    factors : dict of str to float
        ``'section.key'`` to the factor applied to the start value.
    before, after : RegretStats
        The suite's regret under `start` and under :attr:`config`.
    evaluations : int
        Configurations evaluated by the search.
    """

    config: Config
    factors: dict[str, float]
    before: RegretStats
    after: RegretStats
    evaluations: int


def _fitted(config: Config) -> list[tuple[str, str]]:
    out = []
    for section, key in FITTED_CONSTANTS:
        value = getattr(getattr(config, section, None), key, None)
        if isinstance(value, float) and math.isfinite(value) and value > 0:
            out.append((section, key))
    return out


def _with_values(config: Config, names: Sequence[tuple[str, str]],
                 values: Sequence[float]) -> Config:
    """`config` with the constants `names` set; every other key and section kept."""
    changes: dict[str, dict[str, float]] = {}
    for (section, key), value in zip(names, values, strict=True):
        changes.setdefault(section, {})[key] = float(value)
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section),
                                                                       **kv)
                                          for section, kv in changes.items()})


#: The search's stages: the soft choice's temperature, the initial simplex's
#: step (log2 of the factor) and the share of the evaluations, from a smooth
#: objective to the planner's own choice (temperature 0).
STAGES = ((0.2, 1.5, 0.4), (0.05, 0.5, 0.3), (0.0, 0.25, 0.3))
#: Evaluations of the objective a fit makes at most, unless told otherwise.
MAX_EVALUATIONS = 300


def fit_constants(measurements: Sequence[Measurement] | SuiteRegret, start: Config,
                  starts: Sequence[Config] = (), log: Callable[[str], None] = print,
                  max_evaluations: int = MAX_EVALUATIONS,
                  stages: Sequence[tuple[float, float, float]] = STAGES) -> Fit:
    """Scale the cost constants of `start` to minimise the regret on `measurements`.

    The search variables are the logs of one factor per constant of
    :data:`FITTED_CONSTANTS`, kept within :data:`MAX_FACTOR` and
    :data:`VALUE_BOUNDS`.  The objective is :func:`objective` of the suite's
    log regrets plus :data:`PRIOR_WEIGHT` times the mean squared log factor.
    The regret of the planner's own choice is piecewise constant in the
    constants, so the search (Nelder-Mead, :func:`scipy.optimize.minimize`)
    runs through the `stages`: a soft choice whose temperature falls to 0.
    It starts from the best of `start` and `starts` under the planner's
    choice, and returns the best point found under it.  Deterministic:
    nothing is timed.

    Parameters
    ----------
    measurements : sequence of Measurement, or SuiteRegret
        The measured problems (a sequence is imputed with `start` as reference).
    start : Config
        The constants that the factors multiply and the prior pulls towards.
    starts : sequence of Config
        Further starting points (e.g. the packaged default, an earlier fit).
    log : callable
        Called with one line per changed constant.
    max_evaluations : int
        Evaluations of the objective at most (each estimates every problem
        under one configuration), ``>= 1``.
    stages : sequence of (float, float, float)
        Temperature, initial step and share of `max_evaluations` (see :data:`STAGES`).

    Returns
    -------
    Fit
    """
    from scipy.optimize import minimize

    suite = (measurements if isinstance(measurements, SuiteRegret)
             else SuiteRegret(measurements, start))
    names = _fitted(start)
    values = np.array([getattr(getattr(start, s), k) for s, k in names])
    low = np.empty(len(names))
    high = np.empty(len(names))
    for i, name in enumerate(names):
        lo, hi = VALUE_BOUNDS.get(name, (0.0, math.inf))
        low[i] = min(0.0, math.log(max(values[i] / MAX_FACTOR, lo) / values[i]))
        high[i] = max(0.0, math.log(min(values[i] * MAX_FACTOR, hi) / values[i]))
    evaluations = 0

    def config_at(x: np.ndarray) -> Config:
        return _with_values(start, names, values * np.exp(np.clip(x, low, high)))

    def f(x: np.ndarray, temperature: float) -> float:
        nonlocal evaluations
        evaluations += 1
        x = np.clip(x, low, high)
        prior = PRIOR_WEIGHT * float(np.mean(x ** 2)) if len(x) else 0.0
        return objective(suite.log_regrets(config_at(x), temperature)) + prior

    origins = [np.zeros(len(names))]
    for other in starts:
        other_values = np.array([getattr(getattr(other, s, None), k, v)
                                 for (s, k), v in zip(names, values, strict=True)], float)
        if np.all(other_values > 0):
            origins.append(np.clip(np.log(other_values / values), low, high))
    scored = [(f(x, 0.0), i) for i, x in enumerate(origins)]
    best_f, first = min(scored)
    best_x = x = origins[first]
    for temperature, step, share in stages:
        budget = int(share * max_evaluations)
        if not len(x) or budget < len(x) + 2:
            continue
        simplex = np.array([x, *(x + math.log(2) * step * np.eye(len(x)))])
        result = minimize(f, x, args=(temperature,), method="Nelder-Mead",
                          options={"maxfev": budget, "initial_simplex": simplex,
                                   "xatol": 0.01, "fatol": 1e-7})
        x = np.clip(result.x, low, high)
        hard = f(x, 0.0)
        if hard < best_f - 1e-12:
            best_x, best_f = x, hard
    # Six significant digits: a readable file, and no choice of the suite changes.
    rounded = [float(f"{v:.6g}") for v in values * np.exp(best_x)]
    config = _with_values(start, names, rounded)
    if f(np.log(np.array(rounded) / values), 0.0) > best_f + 1e-9:
        config = config_at(best_x)
    factors = {f"{s}.{k}": getattr(getattr(config, s), k) / v
               for (s, k), v in zip(names, values, strict=True)}
    for (s, k), value in zip(names, values, strict=True):
        factor = factors[f"{s}.{k}"]
        if abs(factor - 1) > 1e-9:
            log(f"{s + '.' + k:<28} {value:.6g} -> {value * factor:.6g} (x{factor:.3g})")
    return Fit(config, factors, RegretStats.of(suite.regrets(start)),
               RegretStats.of(suite.regrets(config)), evaluations)


# -- the whole tuning run ------------------------------------------------------------


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune_config` measured and fitted.

    Attributes
    ----------
    config : Config
        The tuned configuration.
    suite : str
        ``'tiny'``, ``'quick'`` or ``'full'``.
    problems : int
        Layer calls of the suite that were timed.
    timings : int
        Candidates timed in all.
    regret : dict of str to RegretStats
        The suite's regret under ``'base'`` (the configuration tuning started
        from), ``'micro-benchmarks'`` and ``'fitted'``.
    seconds : float
        Wall time of the tuning run.
    backend : str
        FFT backend the suite ran on.
    load_average : tuple of float or None
        1, 5 and 15 minute load averages when tuning started (None where the
        platform has none).
    """

    config: Config
    suite: str
    problems: int
    timings: int
    regret: dict[str, RegretStats]
    seconds: float
    backend: str
    load_average: tuple[float, float, float] | None = None


def _quiet(line: str) -> None:
    pass


def _load_average() -> tuple[float, float, float] | None:
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return None
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def tune_config(base: Config, suite: str = "quick", repeat: int = 5, seed: int = 0,
                log: Callable[[str], None] = print) -> TuneResult:
    """Measure the micro-benchmarks, time a suite of layer calls, fit the constants.

    Parameters
    ----------
    base : Config
        Configuration to start from: its memory budgets, FFTW options,
        streaming costs and any other section are kept; it sizes the suite.
    suite : {'tiny', 'quick', 'full'}
        See :data:`SUITES`.
    repeat : int
        Timed runs per micro-benchmark and (at most) per suite candidate, ``>= 1``.
    seed : int
        Seed of the suite.
    log : callable
        Called with one line of text per measurement and per fit.

    Returns
    -------
    TuneResult

    Raises
    ------
    TypeError, ValueError
        If an argument is of the wrong type or out of range.
    RuntimeError
        If a micro-benchmark or the whole suite failed to give a time.
    """
    if suite not in SUITES:
        raise ValueError(f"`suite` must be one of {sorted(SUITES)}, got {suite!r}.")
    repeat = _check_repeat(repeat)
    began = time.perf_counter()
    load = _load_average()
    micro = measure_config(base, repeat=repeat, log=log)
    size = SUITES[suite]
    cases = make_suite(suite, base, seed)
    log(f"suite {suite}: {len(cases)} layer calls (seed {seed})")
    measured = measure_suite(cases, micro, repeat=repeat, suite=suite, log=log)
    if not measured:
        raise RuntimeError("no layer call of the suite could be timed.")
    regret = SuiteRegret(measured, micro)
    fit = fit_constants(regret, micro, starts=[base], log=_quiet,
                        max_evaluations=size.max_evaluations)
    log(f"fit: regret {fit.before} -> {fit.after} ({fit.evaluations} evaluations)")
    for round_ in range(size.refine_rounds):
        missing = regret.untimed_picks(fit.config)
        todo = [(i, k) for i, k in missing if measured[i].case is not None
                and regret.seconds(i, k) <= size.candidate_seconds]
        if not todo:
            break
        log(f"refit {round_ + 1}: timing {len(todo)} new choices")
        for i, key in todo:
            m = measured[i]
            seconds = _time_case(m.case, [key], micro, repeat, size)[0]
            if key in seconds and math.isfinite(seconds[key]) and seconds[key] > 0:
                measured[i] = dataclasses.replace(m, seconds={**m.seconds, **seconds})
                log(f"  {m.label}: {_key_name(key)} {seconds[key] * 1e3:.2f} ms")
        regret = SuiteRegret(measured, micro)
        fit = fit_constants(regret, micro, starts=[base, fit.config], log=_quiet,
                            max_evaluations=size.max_evaluations)
        log(f"refit {round_ + 1}: regret {fit.before} -> {fit.after} "
            f"({fit.evaluations} evaluations)")
    for name, factor in fit.factors.items():
        section, key = name.split(".")
        value = getattr(getattr(micro, section), key)
        log(f"{name:<28} {value:.6g} -> {value * factor:.6g} (x{factor:.3g})")
    regrets = regret.regrets(fit.config)
    picks = regret.picks(fit.config)
    for i in np.argsort(-regrets, kind="stable")[:3]:
        if regrets[i] > 1.0:
            m = measured[i]
            fastest = min(m.seconds, key=m.seconds.__getitem__)
            log(f"regret {regrets[i]:.3f}: {m.label}: picks {_key_name(picks[i])} "
                f"({regret.seconds(i, picks[i]) * 1e3:.2f} ms), fastest {_key_name(fastest)} "
                f"({m.seconds[fastest] * 1e3:.2f} ms)")
    untimed = len(regret.untimed_picks(fit.config))
    if untimed:
        log(f"{untimed} of {len(regret)} choices of the fitted model were not timed "
            f"(their times are imputed)")
    label = "packaged default" if base.source == DEFAULT_SOURCE else "base"
    stats = {label: RegretStats.of(regret.regrets(base)), "micro-benchmarks": fit.before,
             "fitted": fit.after}
    return TuneResult(config=dataclasses.replace(fit.config, source="<measured>"),
                      suite=suite, problems=len(measured),
                      timings=sum(len(m.seconds) for m in measured), regret=stats,
                      seconds=time.perf_counter() - began, backend=_backend(base).name,
                      load_average=load)


# -- the machine and the written file ----------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _blas() -> str:
    """numpy's BLAS as its build configuration names it."""
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - an unusual numpy build: say so, do not fail
        return "unknown"
    text = " ".join(str(info.get(k, "")) for k in ("name", "version")).strip() or "unknown"
    detail = info.get("openblas configuration")
    return f"{text} ({' '.join(str(detail).split())})" if detail else text


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:  # noqa: BLE001 - missing or broken: recorded as such
        return "not installed"


def machine_description() -> dict[str, str | int]:
    """What describes this machine's speed: CPU, cores, BLAS and library versions.

    Returns
    -------
    dict of str to str or int
        ``cpu``, ``architecture``, ``cores`` (usable by this process),
        ``cpu_count``, ``platform``, ``blas`` (numpy's build configuration),
        ``python``, ``numpy``, ``scipy``, ``pyfftw`` and ``fftconv`` versions.
    """
    return {"cpu": _cpu_model(), "architecture": platform.machine() or "unknown",
            "cores": _usable_cores(), "cpu_count": os.cpu_count() or 0,
            "platform": platform.platform(), "blas": _blas(),
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": _version("scipy"), "pyfftw": _version("pyfftw"),
            "fftconv": _version("fftconv")}


def _regret_text(stats: RegretStats) -> str:
    return f"{stats.median:.3f} / {stats.p90:.3f} / {stats.worst:.3f}"


def profile_text(result: TuneResult, command: str, use: str,
                 machine: dict[str, str | int] | None = None,
                 now: datetime.datetime | None = None) -> str:
    """The configuration file for `result`: a comment header, then TOML with a ``[machine]`` table.

    Parameters
    ----------
    result : TuneResult
    command : str
        The command line that tuned, for the record.
    use : str
        A comment line saying how the file is used.
    machine : dict or None
        :func:`machine_description` (None: described now).
    now : datetime or None
        The date recorded (None: now, in UTC).

    Returns
    -------
    str
        Text that :func:`fftconv.config.read_config` reads back into
        ``result.config`` with :attr:`~fftconv.config.Config.machine` set.
    """
    machine = machine_description() if machine is None else machine
    now = datetime.datetime.now(datetime.timezone.utc) if now is None else now
    date = now.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    options = result.config.pyfftw
    fft = (f"{result.backend} ({options.planner_effort}, "
           f"{'all usable' if options.threads == 0 else options.threads} threads)"
           if result.backend == "pyfftw" else f"{result.backend} (scipy.fft)")
    load = (" ".join(f"{v:.2f}" for v in result.load_average)
            if result.load_average else "unknown")
    record: dict[str, str | int | float] = {
        "date": date, "command": command, **machine, "fft": fft,
        "suite": result.suite, "problems": result.problems, "timings": result.timings,
        "seconds": round(result.seconds, 1), "load_average": load,
    }
    for name, stats in result.regret.items():
        record[f"regret_{name.replace('-', '_').replace(' ', '_')}"] = _regret_text(stats)
    lines = [
        f"# fftconv cost model measured by `{command}` on {date}.",
        f"# Machine: {machine['cpu']} ({machine['architecture']}), {machine['cores']} usable "
        f"cores of {machine['cpu_count']}; load average {load} when tuning began.",
        f"# BLAS: {machine['blas']}.",
        f"# FFT: {fft}; numpy {machine['numpy']}, scipy {machine['scipy']}, pyfftw "
        f"{machine['pyfftw']}, Python {machine['python']}, fftconv {machine['fftconv']}.",
        "# Constants: micro-benchmarks, then scaled to minimise the regret (time of the",
        "# planner's choice / time of the fastest candidate timed) on "
        f"{result.problems} layer calls",
        f"# ({result.suite} suite, {result.timings} candidates timed, "
        f"{result.seconds:.0f} s). Regret median / 90% / worst:",
        *[f"#   {name:<17} {_regret_text(stats)}" for name, stats in result.regret.items()],
        "# The [machine] table records the same; it never changes a plan.",
        f"# {use}",
        "",
    ]
    config = dataclasses.replace(result.config, machine=tuple(record.items()))
    return "\n".join(lines) + "\n" + config.to_toml()
