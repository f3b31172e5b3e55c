"""The suite of real layer calls that ``fftconv tune`` times.

A seeded sample of layers and inputs over the planner's territory
(:func:`make_suite`); each problem's direct candidate and a few FFT lengths
run through :meth:`fftconv.engine.Engine.execute`, each timed as the minimum
of a few warm runs (:func:`measure_suite`).  The second of the three steps of
``fftconv tune`` (:mod:`fftconv.tune`).

The suite runs on the CPU or, with backend ``'cupy'``, on a GPU: the
candidates are then chosen with the configuration's ``[cupy]`` costs
(:func:`~fftconv.config.device_config`) and each run is timed to the end of
its work on the device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fftconv._machine import wait_for_idle_threads
from fftconv.backends import device_kind
from fftconv.config import Config, device_config
from fftconv.engine import Engine
from fftconv.paths.fft import block_bytes
from fftconv.planner import (
    Candidate,
    Plan,
    Problem,
    direct_cost,
    direct_variant,
    fast_lengths,
    fft_candidates,
    plan,
    spectra_bytes,
)
from fftconv.spec import ConvSpec
from fftconv.tune_micro import check_repeat

#: Types of the keys of :attr:`Measurement.seconds`: ``('direct', 0)`` or ``('fft', n)``.
Key = tuple[str, int]


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
    def time_major(self) -> bool:
        """Whether the call's arrays lie channels last in memory."""
        return self.arguments["data_format"] == "channels_last"

    @property
    def channels_first_shape(self) -> tuple[int, int, int]:
        """The input shape as ``(B, C_in, W)``."""
        b, w, c = self.input_shape
        return (b, c, w) if self.time_major else self.input_shape

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

    def direct_variant(self, config: Config, device: str = "cpu") -> str:
        """The form of the direct path this call runs under `config` on a kind of
        `device`: its layout counts (:func:`~fftconv.planner.direct_variant`)."""
        return direct_variant(self.problem(), device, "auto", self.time_major,
                              device_config(config, device))

    def __str__(self) -> str:
        a = self.arguments
        b, c, w = self.channels_first_shape
        strides = "".join([f" up{a['strides_up']}" if a["strides_up"] > 1 else "",
                           f" down{a['strides_down']}" if a["strides_down"] > 1 else ""])
        sep = " separable" if a["channel_separable"] else ""
        last = "last" if self.time_major else "first"
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


def make_suite(suite: str, config: Config, seed: int = 0, device: str = "cpu",
               ) -> list[SuiteCase]:
    """Draw the layer calls of a suite.

    Kernels of 1 to 30000 taps (log-uniform), strides 1 to 4, 1 to 64
    channels and filters, a quarter channel-separable, batches of 1 to 8,
    widths of 2**14 to 2**20 samples, a fifth float64, half channels last.
    A draw is narrowed (width, then batch) to the suite's memory and time
    bounds (estimated with `config` on `device`, whose best FFT length must
    fit too, see :func:`_fft_fits`), or drawn again.

    Parameters
    ----------
    suite : {'tiny', 'quick', 'full'}
    config : Config
        Cost model that sizes the calls (the same `config`, `seed` and
        `device` give the same suite).
    seed : int
    device : {'cpu', 'cuda'}
        The kind of device whose costs size the calls
        (:func:`~fftconv.config.device_config`).

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
        case = _narrowed(layer, shape, size, config, int(rng.integers(2**31)), device)
        if case is not None:
            cases.append(case)
    return cases


def _narrowed(layer: dict, shape: list[int], size: SuiteSize, config: Config,
              seed: int, device: str) -> SuiteCase | None:
    """`layer` on a `shape` ``[B, C, W]`` narrowed to the bounds of `size` on `device`, or None."""

    def case() -> SuiteCase:
        b, c, w = shape
        in_shape = (b, c, w) if layer["data_format"] == "channels_first" else (b, w, c)
        return SuiteCase(tuple(layer.items()), in_shape, seed)

    floor = max(1 << 14, 2 * case().spec().min_input_width())
    while True:
        current = case()
        problem = current.problem()
        costs = candidate_costs(problem, config, device, current.direct_variant(config, device),
                                current.time_major)
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
    direct_variant : str or None
        The form of the direct path timed (the call's layout decides it, see
        :meth:`SuiteCase.direct_variant`); None: the form
        :func:`~fftconv.planner.direct_variant` gives `problem` on the device.
    time_major : bool
        Whether the call's arrays lie channels last in memory (gathering
        windows from them costs more, see :func:`~fftconv.planner.direct_cost`).
    """

    problem: Problem
    seconds: Mapping[Key, float]
    label: str = ""
    case: SuiteCase | None = None
    direct_variant: str | None = None
    time_major: bool = False


def candidate_costs(problem: Problem, config: Config, device: str = "cpu",
                    variant: str | None = None, time_major: bool = False) -> dict[Key, float]:
    """Every candidate's estimated ns under `config` on a kind of `device` ('cpu' or 'cuda').

    The direct candidate (in the form `variant`, None: :func:`direct_cost`'s
    default, on `time_major` data or not) first, then the FFT lengths, cheapest first.
    """
    config = device_config(config, device)
    costs = {("direct", 0): direct_cost(problem, config, variant, time_major)}
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
                      prefer_longer: bool = False, device: str = "cpu",
                      variant: str | None = None, time_major: bool = False) -> list[Key]:
    """What to time: the direct path (unless far off) and ``size.fft_lengths`` FFT lengths.

    The model's best FFT length, then a length about half and one about
    twice as long (the first of these is the longer one when
    `prefer_longer`), so the fit sees the trade-off the block length makes,
    then the model's other FFT candidates.  Lengths whose buffers do not fit
    (:func:`_fft_fits`), and candidates estimated above
    ``size.candidate_seconds`` are left out.  Estimated with `config` on `device`,
    the direct path in the form `variant` on `time_major` data or not.
    """
    costs = candidate_costs(problem, config, device, variant, time_major)
    ffts = [k for k in costs if k[0] == "fft"]
    chosen: list[Key] = []
    if ffts and costs[ffts[0]] / 1e9 <= size.candidate_seconds:
        n0 = ffts[0][1]
        shortest = max(problem.kernel_length, 8)
        span = problem.outputs + problem.kernel_length - 1  # one block holds it all
        limit = device_config(config, device).fft.max_fft_length
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


def time_case(case: SuiteCase, keys: Sequence[Key], config: Config, repeat: int,
              size: SuiteSize, backend: str = "auto") -> tuple[dict[Key, float], float]:
    """Minimum seconds of a few warm runs of each candidate in `keys`, interleaved.

    Every candidate runs once to warm up (FFTW or cuFFT plans, kernel spectra,
    buffers), then up to `repeat` times, fewer once its runs took
    ``size.candidate_seconds``.
    Each timed run follows an untimed run of the same candidate, as in a
    program calling one layer repeatedly: right after another candidate's run,
    its leftover memory and spinning worker threads can double a run's time;
    each candidate's turn also waits for the worker threads to go idle
    (:func:`~fftconv._machine.wait_for_idle_threads`: the candidate timed after
    the direct path's GEMMs took up to twice its time without it).
    A candidate whose warm-up took :data:`SLOW` times that long keeps the
    warm-up's time (an upper bound) and runs no more: the model was far off,
    and so slow a candidate is never the fastest.  On a device that compiles
    its kernels at their first use (``traits.compiles_at_first_use``: a GPU)
    such a candidate warms up once more and is judged by that second run, so
    the compilation of the kernels it is first to need is not taken for its
    time.  The calls run on `backend`
    (``'cupy'``: the current GPU, the input moved there first) and each is
    timed to the end of its work on the device (:func:`_run_seconds`).
    Returns the minimum times and the seconds the warm-up runs took.
    """
    a = case.arguments
    dtype = np.dtype(a["dtype"])
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal(case.input_shape, dtype=dtype)
    kernel = rng.standard_normal((a["kernel_support"], case.channels_first_shape[1],
                                  a["filters"]), dtype=dtype)
    time_major = case.time_major
    engine = Engine(case.spec(), a["filters"], backend=backend, config=config)
    bk = engine.backend
    x = bk.to_device(x)  # once: the runs time the layer, not a copy to the device
    x_cf = x.transpose(0, 2, 1) if time_major else x
    # The estimated plan (never a measured one), then each candidate chosen in turn.
    planned = plan(case.spec(), x_cf.shape, dtype, bk.name, config, filters=a["filters"],
                   threads=bk.threads, time_major=time_major)
    plans = {k: planned.choose(Candidate(k[0], k[1], 0.0)) for k in keys}
    token = ("tune", case.seed)
    best: dict[Key, float] = {}
    spent = dict.fromkeys(keys, 0.0)
    warm = 0.0

    def run(key: Key) -> float:
        return _run_seconds(engine, plans[key], x_cf, kernel, token, time_major)

    for round_ in range(repeat + 1):  # interleaved, so a slow spell hits every candidate
        for key in keys:
            if round_ and spent[key] >= size.candidate_seconds:
                continue
            wait_for_idle_threads()
            if round_:
                run(key)
            seconds = run(key)
            if round_:
                spent[key] += seconds
                best[key] = min(best.get(key, math.inf), seconds)
                continue
            warm += seconds
            if seconds >= SLOW * size.candidate_seconds and bk.traits.compiles_at_first_use:
                seconds = run(key)
                warm += seconds
            if seconds >= SLOW * size.candidate_seconds:
                best[key] = spent[key] = seconds
    return best, warm


def _run_seconds(engine: Engine, chosen: Plan, x: Any, kernel: np.ndarray, token: Hashable,
                 time_major: bool) -> float:
    """Seconds of one call of `engine` with the plan `chosen`, to the end of its device work.

    `x` is the input ``(B, C_in, W)`` on the engine's device, `kernel` the
    layer's kernel ``(K, C_in, filters)`` (host).
    """
    start = time.perf_counter()
    engine.execute(x, lambda: kernel, token, chosen, time_major)
    engine.backend.synchronize()
    return time.perf_counter() - start


def measure_suite(cases: Sequence[SuiteCase], config: Config, repeat: int = 3,
                  suite: str = "quick", log: Callable[[str], None] = print,
                  backend: str = "auto") -> list[Measurement]:
    """Time each case's direct candidate and a few FFT lengths (chosen with `config`).

    The candidates of a case: the direct path, unless `config` puts it above
    :data:`DIRECT_RANGE` times the best estimate; the model's best FFT length;
    fast lengths about half and twice as long (cases alternate which comes
    first when the suite times two lengths), so the fit sees both sides of the
    block-length trade-off.  Each runs through
    :meth:`~fftconv.engine.Engine.execute` with the plan chosen for it
    (:meth:`~fftconv.planner.Plan.choose`): once to warm up, then the minimum
    of up to `repeat` runs, interleaved across candidates (:func:`time_case`).

    Parameters
    ----------
    cases : sequence of SuiteCase
    config : Config
        Cost model that chooses the candidates (its costs on the device of
        `backend`), and the engine's configuration (memory budgets, FFTW
        options).
    repeat : int
        Timed runs per candidate at most, after one warm-up run; ``>= 1``.
    suite : {'tiny', 'quick', 'full'}
        Bounds of the candidates' time and memory.
    log : callable
        Called with one line per case.
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        Where the calls run: the CPU, or the current GPU for ``'cupy'``.

    Returns
    -------
    list of Measurement
        One per case, in order; a case where nothing could be timed is left out.
    """
    repeat = check_repeat(repeat)
    size = SUITES[suite]
    device = device_kind(backend)
    out = []
    for i, case in enumerate(cases):
        problem = case.problem()
        variant = case.direct_variant(config, device)
        keys = _timed_candidates(problem, config, size, prefer_longer=i % 2 == 1,
                                 device=device, variant=variant, time_major=case.time_major)
        start = time.perf_counter()
        seconds, warm = (time_case(case, keys, config, repeat, size, backend) if keys
                         else ({}, 0.0))
        seconds = {k: t for k, t in seconds.items() if math.isfinite(t) and t > 0}
        times = ", ".join(f"{key_name(k)} {t * 1e3:.2f}" for k, t in seconds.items())
        log(f"case {i + 1}/{len(cases)}: {case}: {times} ms "
            f"[{time.perf_counter() - start:.1f} s, warm-up {warm:.1f} s]")
        if seconds:
            out.append(Measurement(problem, seconds, str(case), case, variant, case.time_major))
    return out


def key_name(key: Key) -> str:
    return "direct" if key[0] == "direct" else f"N={key[1]}"

