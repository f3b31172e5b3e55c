"""The fit: cost constants scaled to minimise the regret on a measured suite.

One scale factor per constant of :data:`FITTED_CONSTANTS`, searched in log
space by Nelder-Mead on a smoothed objective (:func:`fit_constants`),
minimises the suite's regret, the time of the candidate the planner would
pick over the time of the fastest one (:class:`SuiteRegret`).  The regret is
evaluated with the planner's own cost functions on the measured times;
nothing is timed inside the search.  The third of the three steps of
``fftconv tune`` (:mod:`fftconv.tune`).  A suite timed on a GPU fits the
``[cupy]`` constants instead (:data:`CUDA_FITTED_CONSTANTS`), evaluated as the
planner sees them there (:func:`~fftconv.config.device_config`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fftconv.config import Config, device_config
from fftconv.planner import direct_cost, fft_candidates
from fftconv.tune_suite import Key, Measurement, candidate_costs

#: Constants the fit scales, as ``(section, key)``; one missing from a
#: configuration (or not a number > 0 there) is left out of the fit.  Only
#: the ratio of the two float64 factors changes a choice, so the FFT one is
#: fitted; the radix penalty, the planning costs (one-off calls) and the
#: streaming costs are kept.  The direct path's GEMM rate is kept at its
#: micro-benchmark, a GEMM of the path's shapes: fitted freely, it traded off
#: against the FFT constants (doubled on one 80-call suite, after which a wide
#: 11 -> 132 channel layer ran its FFT at 1.65x its direct time).
FITTED_CONSTANTS = (
    ("fft", "ns_per_nlogn"),
    ("fft", "call_overhead_ns"),
    ("fft", "product_ns_per_mac"),
    ("fft", "small_product_ns_per_mac"),
    ("fft", "row_overhead_ns"),
    ("fft", "ns_per_byte"),
    ("fft", "spectra_ns_per_byte"),
    ("fft", "float64_factor"),
    ("direct", "gather_ns_per_byte"),
    ("direct", "call_overhead_ns"),
)
#: Constants scaled by the factor fitted to another, ``tied: leader``: the suites
#: hold few transforms of rows beyond the cache, so the micro-benchmarks' ratio of
#: the two transform rates is kept (fitted alone, the large rate fell below the
#: other on three full suites, against every micro-benchmark).
TIED_CONSTANTS = {("fft", "large_ns_per_nlogn"): ("fft", "ns_per_nlogn")}
#: The ``[cupy]`` constants that :func:`~fftconv.config.device_config` turns
#: into the GPU's counterparts of :data:`FITTED_CONSTANTS` (one kernel launch
#: is both paths' fixed cost, one copy rate both paths' cost per byte, one
#: float64 factor both paths'); fitted when the suite ran on a GPU.
CUDA_FITTED_CONSTANTS = (
    ("cupy", "cufft_ns_per_nlogn"),
    ("cupy", "cufft_large_ns_per_nlogn"),
    ("cupy", "launch_overhead_ns"),
    ("cupy", "bin_product_ns_per_mac"),
    ("cupy", "bin_small_product_ns_per_mac"),
    ("cupy", "cufft_row_overhead_ns"),
    ("cupy", "copy_ns_per_byte"),
    ("cupy", "fp64_factor"),
    ("cupy", "gemm_ns_per_mac"),
)
#: The constants fitted, by the kind of device the suite ran on.
DEVICE_FITTED_CONSTANTS = {"cpu": FITTED_CONSTANTS, "cuda": CUDA_FITTED_CONSTANTS}

#: Largest change of a constant the fit makes, as a factor either way.
MAX_FACTOR = 32.0
#: Values some constants must keep whatever the fit finds: a float64 factor
#: below 1 would make float64 transforms cheaper than float32 ones.
VALUE_BOUNDS = {("fft", "float64_factor"): (1.0, 6.0), ("cupy", "fp64_factor"): (1.0, 6.0)}
#: An FFT length that was not timed, outside the timed ones of its problem, is
#: taken to be this much slower than the nearest timed one per octave away
#: (pessimistic: the fit is not rewarded for guesses; the refit times them).
EXTRAPOLATION_PER_OCTAVE = 1.25
#: Weight of the worst problem's log regret in the objective (beside the mean).
WORST_WEIGHT = 0.25
#: Weight of the mean squared log factor in the objective: among equally good
#: fits it keeps the constants nearest their micro-benchmark values, and it
#: keeps a suite's few timings from moving a constant far.  With 1e-3, a fit to
#: an 80-call suite chose the FFT path for a short-kernel layer of the planner
#: report at 1.8-2x its direct time (replayed on two runs' timings); with 0.02
#: its choices matched the packaged default's, itself fitted so to 160 calls.
PRIOR_WEIGHT = 0.02


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
    device : {'cpu', 'cuda'}
        The kind of device the problems were timed on: every configuration is
        judged by its costs there (:func:`~fftconv.config.device_config`).
    """

    def __init__(self, measurements: Sequence[Measurement], reference: Config,
                 device: str = "cpu") -> None:
        self.measurements = list(measurements)
        self.device = device
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
            ref = candidate_costs(m.problem, reference, device, m.direct_variant, m.time_major)
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
        config = device_config(config, self.device)
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
        config = device_config(config, self.device)
        key = _sections_but(config, "fft")
        found = self._direct_memo.get(key)
        if found is None:
            found = [direct_cost(m.problem, config, m.direct_variant, m.time_major)
                     for m in self.measurements]
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
    """The values of every section of a device's `config` except `section` (hashable).

    ``cupy`` is left out: a GPU's ``fft``, ``direct`` and ``memory`` sections
    hold what the costs read of it (:func:`~fftconv.config.device_config`), and
    the CPU's costs read none of it.
    """
    return tuple(getattr(config, f.name) for f in dataclasses.fields(config)
                 if f.name not in (section, "source", "cupy"))


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


def _fitted(config: Config, device: str) -> list[tuple[str, str]]:
    out = []
    for section, key in DEVICE_FITTED_CONSTANTS[device]:
        value = getattr(getattr(config, section, None), key, None)
        if isinstance(value, float) and math.isfinite(value) and value > 0:
            out.append((section, key))
    return out


def _with_values(config: Config, names: Sequence[tuple[str, str]],
                 values: Sequence[float]) -> Config:
    """`config` with the constants `names` set, and those :data:`TIED_CONSTANTS` to
    them scaled alike; every other key and section kept."""
    changes: dict[str, dict[str, float]] = {}
    for (section, key), value in zip(names, values, strict=True):
        changes.setdefault(section, {})[key] = float(value)
    for (section, key), (lead_section, lead_key) in TIED_CONSTANTS.items():
        lead = changes.get(lead_section, {}).get(lead_key)
        if lead is not None and hasattr(getattr(config, section, None), key):
            factor = lead / getattr(getattr(config, lead_section), lead_key)
            changes.setdefault(section, {})[key] = float(
                f"{getattr(getattr(config, section), key) * factor:.6g}")
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
    :data:`FITTED_CONSTANTS` (of :data:`CUDA_FITTED_CONSTANTS` for problems
    timed on a GPU), kept within :data:`MAX_FACTOR` and :data:`VALUE_BOUNDS`.
    The objective is :func:`objective` of the suite's log regrets plus
    :data:`PRIOR_WEIGHT` times the mean squared log factor.
    The regret of the planner's own choice is piecewise constant in the
    constants, so the search (Nelder-Mead, :func:`scipy.optimize.minimize`)
    runs through the `stages`: a soft choice whose temperature falls to 0.
    It starts from the best of `start` and `starts` under the planner's
    choice, and returns the best point found under it.  Deterministic:
    nothing is timed.

    Parameters
    ----------
    measurements : sequence of Measurement, or SuiteRegret
        The measured problems (a sequence: timed on the CPU, imputed with
        `start` as reference); a SuiteRegret's device says which constants
        are fitted.
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
    names = _fitted(start, suite.device)
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
    tied = [name for name, lead in TIED_CONSTANTS.items() if lead in names]
    starting = dict(zip(names, values, strict=True))
    starting.update({(s, k): getattr(getattr(start, s), k) for s, k in tied})
    factors = {f"{s}.{k}": getattr(getattr(config, s), k) / v for (s, k), v in starting.items()}
    for (s, k), value in starting.items():
        factor = factors[f"{s}.{k}"]
        if abs(factor - 1) > 1e-9:
            log(f"{s + '.' + k:<28} {value:.6g} -> {value * factor:.6g} (x{factor:.3g})")
    return Fit(config, factors, RegretStats.of(suite.regrets(start)),
               RegretStats.of(suite.regrets(config)), evaluations)

