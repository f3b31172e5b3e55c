#!/usr/bin/env python
"""Measure how much time the planner's choices cost against the fastest candidate.

For seeded random `SignalConv1D` configurations (kernel length, strides,
channels, separability, batch, width, padding, dtype, layout) the script times
every candidate the planner lists, forced through ``Engine.execute`` with
``Plan.choose``: the direct path and the FFT path at each listed FFT length.
It also times the layer as users run it: ``method='auto'`` with the default
cost model (``estimate``), with each ``--config`` profile, and with measured
planning (``planning='measure'``) where the layer has that option.

The *regret* of a method on a configuration is its time divided by the fastest
time of any method timed on that configuration (1.0: it picked the fastest).
The script prints a row per configuration and a summary of the regrets
(median, 90th percentile, worst), and writes everything as JSON.  See
``benchmarks/README.md`` for the configuration distribution and the timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import fftconv
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(HERE.parent))
    import fftconv

import run_benchmarks  # noqa: E402 - the machine record and the pause are shared

from fftconv.config import Config, load_config  # noqa: E402
from fftconv.engine import Engine  # noqa: E402
from fftconv.planner import Candidate, Plan, plan, spectra_bytes  # noqa: E402
from fftconv.spec import ConvSpec  # noqa: E402

DEFAULT_JSON = HERE / "results" / "planner_regret.json"

#: The forced direct path is skipped when the model estimates it above this (s).
DIRECT_SKIP_S = 10.0
#: A method whose settled call (see `time_methods`) takes longer than this (s) is timed once.
SLOW_CALL_S = 2.0
#: ... and one whose settled call takes longer than this (s) is not called again.
FIRST_CALL_ONLY_S = 10.0
#: Untimed calls of each method before the timed rounds.
WARM_CALLS = 3
#: A choice costing more than this regret is counted as a mistake in the summary.
MISTAKE_REGRET = 1.10
#: More timed rounds where a planning method chose a forced candidate other than
#: the fastest, within `CLOSE_CALL_RATIO` of it: its regret by choice compares two
#: times that the machine's swings (10-15 % between rounds) blur after `--repeat`.
CLOSE_CALL_ROUNDS = 5
CLOSE_CALL_RATIO = 1.5
#: Relative error, max|y - ref| / max|ref|, above which an output is flagged.
CHECK_TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


@dataclass(frozen=True)
class Sizes:
    """Ranges of the random configurations (full run or ``--quick``)."""

    max_kernel: int
    log2_width: tuple[float, float]
    min_width: int
    budget_s: float  # estimated time of the slowest timed FFT candidate
    max_bytes: int  # input plus output
    max_spectra_bytes: int  # kernel spectra of one forced FFT length

    @classmethod
    def for_run(cls, quick: bool) -> Sizes:
        if quick:
            return cls(max_kernel=2000, log2_width=(12, 14), min_width=2 ** 11,
                       budget_s=0.05, max_bytes=16 << 20, max_spectra_bytes=64 << 20)
        return cls(max_kernel=30000, log2_width=(16, 20), min_width=2 ** 16,
                   budget_s=0.5, max_bytes=128 << 20, max_spectra_bytes=1 << 30)


@dataclass
class Case:
    """One random configuration: layer arguments and input shape."""

    index: int
    seed: int
    kernel_support: int
    strides_up: int
    strides_down: int
    c_in: int
    filters: int
    channel_separable: bool
    corr: bool
    padding: str
    dtype: str
    data_format: str
    batch: int
    width: int
    nominal_batch: int
    nominal_width: int

    @property
    def c_out(self) -> int:
        return self.c_in * self.filters if self.channel_separable else self.filters

    @property
    def spec(self) -> ConvSpec:
        return ConvSpec.from_arguments(self.kernel_support, self.corr, self.strides_down,
                                       self.strides_up, self.padding, None,
                                       self.channel_separable)

    @property
    def shape_cf(self) -> tuple[int, int, int]:
        """Input shape, channels first ``(B, C_in, W)``."""
        return (self.batch, self.c_in, self.width)

    @property
    def time_major(self) -> bool:
        """Whether the arrays lie channels last in memory."""
        return self.data_format == "channels_last"

    def layer_arguments(self) -> dict[str, Any]:
        return {"filters": self.filters, "kernel_support": self.kernel_support,
                "corr": self.corr, "strides_down": self.strides_down,
                "strides_up": self.strides_up, "padding": self.padding,
                "channel_separable": self.channel_separable, "data_format": self.data_format,
                "dtype": self.dtype}

    def describe(self) -> str:
        parts = [f"B={self.batch}", f"W={self.width}", f"Cin={self.c_in}",
                 f"F={self.filters}", f"K={self.kernel_support}"]
        if self.strides_up > 1:
            parts.append(f"up={self.strides_up}")
        if self.strides_down > 1:
            parts.append(f"down={self.strides_down}")
        parts += ["sep" if self.channel_separable else "mix", "corr" if self.corr else "conv",
                  self.padding, "f32" if self.dtype == "float32" else "f64",
                  "last" if self.data_format == "channels_last" else "first"]
        return " ".join(parts)


@dataclass
class Timing:
    """One method on one configuration."""

    status: str  # "ok", "n/a", "skipped"
    min_ms: float | None = None
    median_ms: float | None = None
    times_ms: list[float] = field(default_factory=list)
    first_call_ms: float | None = None
    estimate_ms: float | None = None  # the default model's estimate (forced candidates)
    listed: bool | None = None  # forced candidates: listed by the plan (else a neighbour)
    chosen: str | None = None  # the candidate a planning method ran
    check: str = ""
    note: str = ""
    regret: float | None = None


# -- configurations --------------------------------------------------------------


def _log_uniform_int(rng: np.random.Generator, low: int, high: int) -> int:
    return int(min(high, max(low, round(math.exp(rng.uniform(math.log(low),
                                                             math.log(high + 0.5)))))))


def draw_case(index: int, seed: int, sizes: Sizes, config: Config) -> Case:
    """Draw configuration `index` of run `seed` and scale it to the time budget of the
    cost model `config`."""
    case_seed = seed * 1_000_003 + index
    rng = np.random.default_rng(case_seed)
    strides = (1, 2, 3, 4)
    weights = (0.55, 0.2, 0.1, 0.15)
    separable = bool(rng.random() < 0.3)
    c_in = _log_uniform_int(rng, 1, 64)
    filters = (_log_uniform_int(rng, 1, max(1, 64 // c_in)) if separable
               else _log_uniform_int(rng, 1, 64))
    batch = int(rng.integers(1, 9))
    width = int(round(2 ** rng.uniform(*sizes.log2_width)))
    case = Case(
        index=index, seed=case_seed,
        kernel_support=_log_uniform_int(rng, 1, sizes.max_kernel),
        strides_up=int(rng.choice(strides, p=weights)),
        strides_down=int(rng.choice(strides, p=weights)),
        c_in=c_in, filters=filters, channel_separable=separable,
        corr=bool(rng.random() < 0.5),
        padding=str(rng.choice(["valid", "same_zeros", "same_reflect"])),
        dtype=str(rng.choice(["float32", "float64"], p=(0.6, 0.4))),
        data_format=str(rng.choice(["channels_last", "channels_first"])),
        batch=batch, width=width, nominal_batch=batch, nominal_width=width)
    if case.padding == "valid":  # keep at least half the input's length as output
        case.kernel_support = max(1, min(case.kernel_support,
                                         case.spec.upsampled_width(width) // 2))
    return _scaled(case, sizes, config)


def _scaled(case: Case, sizes: Sizes, config: Config) -> Case:
    """Halve the batch, then the width, until the slowest listed FFT candidate's
    estimate and the arrays fit the budget (the width not below ``sizes.min_width``)."""
    while True:
        p = _plan(case, config)
        slowest = max(c.cost_ns for c in p.candidates if c.path == "fft") / 1e9
        itemsize = np.dtype(case.dtype).itemsize
        n_out = case.spec.output_width(case.width)
        size = case.batch * (case.c_in * case.width + case.c_out * n_out) * itemsize
        if slowest <= sizes.budget_s and size <= sizes.max_bytes:
            return case
        if case.batch > 1:
            case.batch //= 2
        elif case.width // 2 >= max(sizes.min_width, case.spec.min_input_width()):
            case.width //= 2
        else:
            return case


def default_config_path() -> str:
    """The packaged ``configs/default.toml``: 'estimate' is timed with it, not with
    whatever ``FFTCONV_CONFIG`` or a user profile would select."""
    with resources.as_file(resources.files("fftconv.configs") / "default.toml") as path:
        return str(path)


def steady(config: Config) -> Config:
    """`config` with FFTW's measured plans made on the third call of a block shape.

    A backend that measures a block transform's plan only after it has run a
    while (``pyfftw.measure_after_seconds``) would give a candidate timed
    early in a run, or sharing no plan with another method, estimated plans
    only; the timings compare the steady state of a long-running program.
    """
    options = config.pyfftw
    if not hasattr(options, "measure_after_seconds"):
        return config
    return dataclasses.replace(config, pyfftw=dataclasses.replace(
        options, measure_after_seconds=0.0))


def _plan(case: Case, config: Config) -> Plan:
    return plan(case.spec, case.shape_cf, case.dtype, "auto", config, filters=case.filters,
                time_major=case.time_major)


def make_data(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Input in the case's layout and kernel ``(K, C_in, filters)``, N(0, 1)/sqrt(K*C_in)."""
    rng = np.random.default_rng(case.seed)
    dtype = np.dtype(case.dtype)
    shape = (case.batch, case.width, case.c_in)
    if case.data_format == "channels_first":
        shape = (case.batch, case.c_in, case.width)
    x = rng.standard_normal(shape, dtype=dtype)
    fan_in = case.kernel_support * (1 if case.channel_separable else case.c_in)
    kernel = rng.standard_normal((case.kernel_support, case.c_in, case.filters), dtype=dtype)
    kernel *= dtype.type(1 / math.sqrt(fan_in))
    return x, kernel


# -- methods ----------------------------------------------------------------------


def measure_available() -> bool:
    """Whether `SignalConv1D` takes ``planning=`` (measured planning)."""
    return "planning" in inspect.signature(fftconv.SignalConv1D).parameters


def planning(mode: str) -> dict[str, str]:
    """The ``planning=`` argument where it exists (a configuration may make 'measure'
    its default, so 'estimate' is asked for explicitly)."""
    return {"planning": mode} if measure_available() else {}


def _label(path: str, n_fft: int) -> str:
    return "direct" if path == "direct" else f"fft:{n_fft}"


def _is_forced(name: str) -> bool:
    """Whether a method's name (:func:`_label`'s) is a forced candidate's."""
    return name == "direct" or name.startswith("fft:")


def _forced_ok(timings: dict[str, Timing]) -> dict[str, Timing]:
    """The timings of the forced candidates that ran."""
    return {n: t for n, t in timings.items() if _is_forced(n) and t.status == "ok"}


def forced_call(engine: Engine, x: np.ndarray, kernel: np.ndarray, chosen: Plan,
                data_format: str) -> Callable[[], np.ndarray]:
    """A call that runs `chosen` the way the layer runs its own plan (layout included)."""
    last = data_format == "channels_last"

    def run() -> np.ndarray:
        xcf = x.transpose(0, 2, 1) if last else x
        y = engine.execute(xcf, lambda: kernel, "kernel", chosen, time_major=last)
        return np.ascontiguousarray(y.transpose(0, 2, 1) if last else y)

    return run


def layer_call(layer: fftconv.SignalConv1D, x: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: layer(x)


def chosen_of(layer: fftconv.SignalConv1D, case: Case) -> str:
    """The candidate a layer runs for the case's input (after its first call)."""
    try:
        p = layer.engine.plan_for(case.shape_cf, np.dtype(case.dtype), case.time_major)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return f"? ({type(exc).__name__})"
    return _label(p.path, p.n_fft)


def time_methods(calls: dict[str, Callable[[], np.ndarray]], repeat: int, pause_s: float,
                 check: Callable[[str, np.ndarray], str],
                 no_setup: frozenset[str] = frozenset(), seed: int = 0,
                 close_call: Callable[[dict[str, Timing]], bool] | None = None,
                 ) -> dict[str, Timing]:
    """Time every call: untimed warm-up calls, then `repeat` rounds taking turns.

    Each method first makes `WARM_CALLS` untimed calls (the first one plans,
    computes the kernel spectra and, for measured planning, measures; by the
    last one the FFT backend has made its measured plans).  Then in each round
    every method makes an untimed call and, after a pause of `pause_s`, a timed
    one.  The untimed call puts the method's own entries back into the
    bounded caches (FFTW block plans, kernel spectra) that the other methods'
    calls may have pushed out, as a program running one layer would have
    them; the pause lets worker threads that the previous call left spinning
    go idle (see ``run_benchmarks.measure_interleaved``).  Taking turns
    spreads a slow spell of a shared machine over all methods alike, and each
    round takes them in a new order (drawn from `seed`): a machine that slows
    down periodically would otherwise slow the same methods round after round
    whenever the rounds keep step with it.  (On the VM of the README's
    figures, writing to memory freed about 2 s earlier runs 10-20x slower,
    every 2 s or so; a round of one configuration takes a few seconds.)

    Slow methods are spared calls.  A method whose second call (its first for
    the methods in `no_setup`, whose first call prepares next to nothing)
    takes longer than `SLOW_CALL_S` is timed once, in the last round, without
    the untimed call before it; one that takes longer than
    `FIRST_CALL_ONLY_S` is not called again, and that call is its time (noted).

    If `close_call` says so of the timings after these rounds, `CLOSE_CALL_ROUNDS`
    more rounds follow, the same way, of the methods timed in every round.
    """
    out: dict[str, Timing] = {}
    once: set[str] = set()  # timed once, in the last round
    done: set[str] = set()  # timed by a warm-up call
    for name, fn in calls.items():
        try:
            t0 = time.perf_counter()
            y = fn()
            first = time.perf_counter() - t0
            timing = out[name] = Timing("ok", first_call_ms=first * 1e3, check=check(name, y))
            del y
            settled = first
            if first > SLOW_CALL_S and name not in no_setup:
                t0 = time.perf_counter()
                fn()
                settled = time.perf_counter() - t0
            if settled > FIRST_CALL_ONLY_S:
                timing.times_ms.append(settled * 1e3)
                which = "first" if settled is first else "second"
                timing.note = f"{which} call only (> {FIRST_CALL_ONLY_S:g} s)"
                done.add(name)
            elif settled > SLOW_CALL_S:
                timing.note = "timed once"
                once.add(name)
            else:
                for _ in range(WARM_CALLS - (1 if settled is first else 2)):
                    fn()
        except Exception as exc:  # noqa: BLE001 - a failing method shows n/a
            out[name] = Timing("n/a", note=f"{type(exc).__name__}: {exc}"[:300])
    rng, names = np.random.default_rng(seed), list(calls)

    def timed_rounds(count: int, slow_ones: bool) -> None:
        for i in range(count):
            for name in (names[j] for j in rng.permutation(len(names))):
                fn, timing = calls[name], out[name]
                if timing.status != "ok" or name in done:
                    continue
                slow = name in once
                if slow and not (slow_ones and i == count - 1):
                    continue
                if not slow:
                    fn()
                time.sleep(pause_s)
                t0 = time.perf_counter()
                fn()
                timing.times_ms.append((time.perf_counter() - t0) * 1e3)
        for timing in out.values():
            if timing.status == "ok":
                timing.min_ms = min(timing.times_ms)
                timing.median_ms = float(np.median(timing.times_ms))

    timed_rounds(repeat, True)
    if close_call is not None and close_call(out):
        timed_rounds(CLOSE_CALL_ROUNDS, False)
    return out


def neighbours(p: Plan, n_fft: int, max_fft_length: int) -> list[Candidate]:
    """Half and twice the planner's best FFT length, where the plan does not list them.

    The half length only while its blocks keep at least half their outputs
    (``n/2 >= 2*Kp - 1``), the double only while the best length needs more
    than one block.  Their estimated cost is not known (NaN).
    """
    listed = {c.n_fft for c in p.candidates if c.path == "fft"}
    kp, outputs = p.problem.kernel_length, p.problem.outputs
    out = []
    if n_fft // 2 >= 2 * kp - 1 and n_fft % 2 == 0:
        out.append(n_fft // 2)
    if n_fft - kp + 1 < outputs and 2 * n_fft <= max_fft_length:
        out.append(2 * n_fft)
    return [Candidate("fft", n, math.nan) for n in out if n not in listed]


def run_case(case: Case, sizes: Sizes, default: Config, profiles: list[tuple[str, Config]],
             repeat: int, pause_s: float, with_measure: bool) -> dict:
    """Time every method on `case`; returns its JSON record."""
    x, kernel = make_data(case)
    dtype = np.dtype(case.dtype)
    args = case.layer_arguments()
    default_plan = _plan(case, default)
    engine = Engine(case.spec, case.filters, "auto", "auto", default, **planning("estimate"))
    forced = engine.plan_for(case.shape_cf, dtype, case.time_major)

    timings: dict[str, Timing] = {}
    calls: dict[str, Callable[[], np.ndarray]] = {}
    best_fft = min((c for c in forced.candidates if c.path == "fft"), key=lambda c: c.cost_ns)
    # Direct first: its output is the reference of the cross-check.
    candidates = sorted(forced.candidates, key=lambda c: c.path != "direct")
    candidates += neighbours(forced, best_fft.n_fft, default.fft.max_fft_length)
    for c in candidates:
        name = _label(c.path, c.n_fft)
        estimate = None if math.isnan(c.cost_ns) else c.cost_ns / 1e6
        if c.path == "direct" and estimate is not None and estimate > DIRECT_SKIP_S * 1e3:
            timings[name] = Timing("skipped", estimate_ms=estimate,
                                   note=f"estimated {estimate / 1e3:.0f} s > {DIRECT_SKIP_S:g} s")
            continue
        spectra = spectra_bytes(forced.problem, c.n_fft)
        if c.path == "fft" and spectra > sizes.max_spectra_bytes:
            timings[name] = Timing("skipped", estimate_ms=estimate,
                                   note=f"kernel spectra {spectra / 2**20:.0f} MiB")
            continue
        calls[name] = forced_call(engine, x, kernel, forced.choose(c), case.data_format)
        timings[name] = Timing("ok", estimate_ms=estimate, listed=c in forced.candidates)

    planners: dict[str, fftconv.SignalConv1D] = {
        "estimate": fftconv.SignalConv1D(**args, kernel_parameter=kernel, config=default,
                                         **planning("estimate"))}
    for label, config in profiles:
        planners[f"estimate[{label}]"] = fftconv.SignalConv1D(
            **args, kernel_parameter=kernel, config=config, **planning("estimate"))
    if with_measure:
        planners["measure"] = fftconv.SignalConv1D(**args, kernel_parameter=kernel,
                                                   config=default, planning="measure")
    calls.update({name: layer_call(layer, x) for name, layer in planners.items()})

    reference: dict[str, np.ndarray] = {}

    def check(name: str, y: np.ndarray) -> str:
        if not reference:  # the first output (the direct path when it runs)
            reference["y"], reference["name"] = y, name
            return "ref"
        ref = reference["y"]
        if y.shape != ref.shape:
            return f"ERROR shape {y.shape} != {ref.shape}"
        scale = float(np.max(np.abs(ref))) or 1.0
        err = float(np.max(np.abs(y.astype(np.float64) - ref))) / scale
        return "ok" if err < CHECK_TOLERANCE[dtype] else f"ERROR rel {err:.1e}"

    extra_rounds = []

    def close_call(timed: dict[str, Timing]) -> bool:
        forced_ms = {n: t.min_ms for n, t in _forced_ok(timed).items()}
        fastest = min(forced_ms.values(), default=None)
        close = fastest is not None and any(
            fastest < forced_ms.get(chosen_of(layer, case), 0) <= CLOSE_CALL_RATIO * fastest
            for layer in planners.values())
        extra_rounds.append(CLOSE_CALL_ROUNDS if close else 0)
        return close

    # The direct path's first call only rearranges the kernel.
    measured = time_methods(calls, repeat, pause_s, check, frozenset({"direct"}), case.seed,
                            close_call)
    reference.clear()
    for name, timing in measured.items():
        timing.estimate_ms = timings.get(name, timing).estimate_ms
        timing.listed = timings.get(name, timing).listed
        timings[name] = timing
    for name, layer in planners.items():
        timings[name].chosen = chosen_of(layer, case)
    if with_measure and timings["measure"].status == "ok":
        count = getattr(planners["measure"].engine, "measurements", None)
        timings["measure"].note = "; ".join(x for x in (
            timings["measure"].note,
            f"first call timed {count} candidate(s)" if count
            else "first call timed none (a winner remembered in the plan wisdom, or a "
                 "single candidate worth timing)" if count == 0 else "") if x)
    if not with_measure:
        timings["measure"] = Timing("n/a", note="SignalConv1D has no planning= option")

    fastest_name = min((n for n, t in timings.items() if t.status == "ok"),
                       key=lambda n: timings[n].min_ms, default=None)
    fastest = timings[fastest_name].min_ms if fastest_name else None
    for timing in timings.values():
        if timing.status == "ok" and fastest:
            timing.regret = timing.min_ms / fastest
    # The fastest path: the quickest forced candidate (a planning method runs one of them).
    forced_ok = _forced_ok(timings)
    winner = min(forced_ok, key=lambda n: forced_ok[n].min_ms) if forced_ok else None
    p = forced.problem
    return {
        "case": asdict(case),
        "description": case.describe(),
        "problem": {"batch": p.batch, "groups": p.groups, "in_channels": p.in_channels,
                    "out_channels": p.out_channels, "kernel_length": p.kernel_length,
                    "outputs": p.outputs, "macs": p.macs},
        "planned": _label(default_plan.path, default_plan.n_fft),
        "extra_rounds": sum(extra_rounds),
        "planner_best_fft": _label("fft", best_fft.n_fft),
        "fastest": fastest_name,
        "fastest_forced": winner,
        "fastest_ms": fastest,
        "methods": {n: asdict(t) for n, t in timings.items()},
    }


# -- summary ----------------------------------------------------------------------


def regrets(rows: list[dict], method: str) -> list[float]:
    """Regrets of `method` by its own timed calls (a fixed rule: its forced candidate's)."""
    out = []
    for r in rows:
        t = r["methods"].get(_rule_candidate(r, method) or method)
        if t and t["regret"] is not None:
            out.append(t["regret"])
    return out


def _rule_candidate(row: dict, method: str) -> str | None:
    """The forced candidate a fixed rule runs, or None for a planning method."""
    return {"always fft": row["planner_best_fft"], "always direct": "direct"}.get(method)


def _forced_of_choice(row: dict, method: str) -> dict | None:
    """The forced timing of the candidate `method` ran (a fixed rule's candidate, or a
    planning method's choice); None where it was not timed."""
    name = _rule_candidate(row, method)
    if name is None:
        t = row["methods"].get(method)
        name = t["chosen"] if t and t["status"] == "ok" else None
    forced = row["methods"].get(name) if name else None
    return forced if forced and forced["status"] == "ok" else None


def choice_regret(row: dict, method: str) -> float | None:
    """Forced time of the candidate `method` ran / fastest forced time (None: not timed).

    Unlike the regret of the method's own calls it depends on the choice only,
    not on the timing noise between two objects running the same candidate.
    """
    forced, best = _forced_of_choice(row, method), row["fastest_forced"]
    if forced is None or best is None:
        return None
    return forced["min_ms"] / row["methods"][best]["min_ms"]


def instance_spread(rows: list[dict], methods: list[str]) -> list[float]:
    """Per configuration and planning method: the slower / the faster of two timings of
    one candidate.

    The method's own calls and the forced calls of the candidate it ran run
    the same computation in two objects, taking turns in the same process, so
    their ratio is the timing noise alone: the resolution of the regrets.
    """
    spread = []
    for row in rows:
        for method in methods:
            forced = _forced_of_choice(row, method)
            if forced is not None:
                a, b = row["methods"][method]["min_ms"], forced["min_ms"]
                spread.append(max(a, b) / min(a, b))
    return spread


def wrong_path(rows: list[dict], method: str) -> int:
    """Configurations where `method` ran the other path than the fastest forced
    candidate and lost more than ``MISTAKE_REGRET`` by its choice (closer calls
    are noise)."""
    count = 0
    for r in rows:
        t = r["methods"].get(method)
        regret = choice_regret(r, method)
        if not t or not t["chosen"] or regret is None:
            continue
        other = t["chosen"].split(":")[0] != r["fastest_forced"].split(":")[0]
        count += other and regret > MISTAKE_REGRET
    return count


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    v = np.array(values)
    return {"n": int(v.size), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "worst": float(v.max()), "within": int(np.sum(v <= MISTAKE_REGRET))}


FIXED_RULES = {"always fft": "always fft (planner's N)", "always direct": "always direct"}


def summarize(rows: list[dict], methods: list[str]) -> list[dict]:
    """Per method: statistics of the regret of its own calls and of its choice."""
    table = []
    for method in [*methods, *FIXED_RULES]:
        choices = [c for c in (choice_regret(r, method) for r in rows) if c is not None]
        entry: dict[str, Any] = {"method": FIXED_RULES.get(method, method),
                                 "calls": _stats(regrets(rows, method)),
                                 "choice": _stats(choices)}
        if method in methods:
            entry["wrong_path"] = wrong_path(rows, method)
        table.append(entry)
    return table


def render_summary(table: list[dict], rows: list[dict], methods: list[str],
                   notes: dict[str, str]) -> str:
    cols = f"{'n':>3} {'median':>6} {'p90':>6} {'worst':>6} {f'<={MISTAKE_REGRET:.2f}':>6}"
    width = len(cols)
    header = (f"{'':<26} {'own calls':^{width}} | {'by choice':^{width}} |\n"
              f"{'method':<26} {cols} | {cols} | wrong path")
    lines = [header, "-" * len(header.splitlines()[1])]

    def cells(stats: dict[str, Any]) -> str:
        if not stats["n"]:
            return f"{0:>3} {'n/a':>6} {'':>6} {'':>6} {'':>6}"
        return (f"{stats['n']:>3} {stats['median']:>6.2f} {stats['p90']:>6.2f} "
                f"{stats['worst']:>6.2f} {stats['within']:>6}")

    for e in table:
        if not e["calls"]["n"] and e["method"] in notes:
            lines.append(f"{e['method']:<26} n/a ({notes[e['method']]})")
            continue
        wrong = str(e["wrong_path"]) if "wrong_path" in e else ""
        lines.append(f"{e['method']:<26} {cells(e['calls'])} | {cells(e['choice'])} | "
                     f"{wrong:>10}")
    untimed = sum("timed none" in r["methods"]["measure"]["note"] for r in rows)
    if untimed:
        lines.append(f"measure: on {untimed} of {len(rows)} configurations the first call timed "
                     f"no candidate (a winner remembered in the plan wisdom, or a single "
                     f"candidate worth timing).")
    close = sum(r.get("extra_rounds", 0) > 0 for r in rows)
    if close:
        lines.append(f"close calls: {close} of {len(rows)} configurations, where a planning "
                     f"method chose a forced candidate within {CLOSE_CALL_RATIO:g}x of the "
                     f"fastest, were timed {CLOSE_CALL_ROUNDS} more rounds.")
    n_direct_skipped = sum(r["methods"]["direct"]["status"] == "skipped" for r in rows)
    lines += [
        "own calls: the method's time / the fastest time of any method on the configuration.",
        "by choice: the forced time of the candidate it ran / the fastest forced candidate "
        "(n: configurations where that candidate was timed forced).",
        f"<={MISTAKE_REGRET:.2f}: configurations within {MISTAKE_REGRET - 1:.0%} of the "
        f"fastest; wrong path: ran the slower path and lost more than that by its choice.",
        f"{len(rows)} configurations; direct skipped on {n_direct_skipped} where the model "
        f"estimates it above {DIRECT_SKIP_S:g} s ('always direct' covers the others only)."]
    spread = _stats(instance_spread(rows, methods))
    if spread["n"]:
        lines.append(
            f"resolution: a method's own calls against the forced calls of the candidate it "
            f"ran (the same computation in two objects), slower / faster: median "
            f"{spread['median']:.2f}, p90 {spread['p90']:.2f}, worst {spread['worst']:.2f}; "
            f"{spread['n'] - spread['within']} of {spread['n']} pairs differ by more than "
            f"{MISTAKE_REGRET - 1:.0%}.")
    return "\n".join(lines)


def render_row(row: dict, methods: list[str]) -> str:
    ms = row["methods"]
    forced = [n for n in ms if _is_forced(n)]
    cells = []
    for n in forced:
        t = ms[n]
        mark = "*" if n == row["planner_best_fft"] else "+" if t.get("listed") is False else ""
        value = _fmt(t["min_ms"]) if t["status"] == "ok" else (
            f"{t['status']} ({t['note'][:80]})" if t["note"] else t["status"])
        cells.append(f"{n}{mark} {value}")
    plans = []
    for m in methods:
        t = ms[m]
        if t["status"] != "ok":
            plans.append(f"{m} {t['status']}" + (f" ({t['note'][:80]})" if t["note"] else ""))
            continue
        choice = choice_regret(row, m)
        plans.append(f"{m} {_fmt(t['min_ms'])} ({t['chosen']}) r={t['regret']:.2f}"
                     + ("" if choice is None else f" choice {choice:.2f}")
                     + ("" if t["check"] in ("ok", "ref") else f" {t['check']}"))
    p = row["problem"]
    head = (f"[{row['case']['index'] + 1:>3}] {row['description']}  "
            f"(Kp={p['kernel_length']} G={p['groups']} Ci={p['in_channels']} "
            f"Co={p['out_channels']})  fastest {row['fastest']}"
            + (f"  (+{row['extra_rounds']} rounds)" if row.get("extra_rounds") else ""))
    errors = [f"{n}: {t['check']}" for n, t in ms.items() if t["check"].startswith("ERROR")]
    return "\n".join([head, "      " + "  ".join(cells), "      " + " | ".join(plans)]
                     + (["      CHECK " + "; ".join(errors)] if errors else []))


def _fmt(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def worst_rows(rows: list[dict], method: str, count: int = 5) -> list[dict]:
    """The `count` rows with the highest regret by choice (else of the own calls)."""
    def regret(r: dict) -> float:
        choice = choice_regret(r, method)
        return r["methods"][method]["regret"] if choice is None else choice

    scored = [r for r in rows if r["methods"][method]["regret"] is not None]
    return sorted(scored, key=lambda r: -regret(r))[:count]


# -- figure -----------------------------------------------------------------------


def write_map(path: Path, rows: list[dict], methods: list[str], title: str) -> None:
    """Kernel length against channel pairs, coloured by the faster path; regret CDFs."""
    from fftconv.plot import PATH_COLOURS, figure_class

    figure = figure_class()
    fig = figure(figsize=(12, 5.2), layout="constrained")
    ax, cdf = fig.subplots(1, 2, width_ratios=(1.5, 1))
    for r in rows:
        est = r["methods"]["estimate"]
        if est["status"] != "ok" or not r["fastest_forced"]:
            continue
        p = r["problem"]
        k, pairs = p["kernel_length"], p["in_channels"] * p["out_channels"]
        won = r["fastest_forced"].split(":")[0]
        chose = (est["chosen"] or "?").split(":")[0]
        regret = choice_regret(r, "estimate")
        regret = est["regret"] if regret is None else regret
        ax.scatter(k, pairs, s=25 + 250 * min(regret - 1, 1.5),
                   color=PATH_COLOURS[won], alpha=0.75,
                   edgecolors=PATH_COLOURS.get(chose, "black") if chose != won else "none",
                   linewidths=2.5, marker="s" if p["groups"] > 1 else "o")
        if regret > 1.2:
            ax.annotate(f"{regret:.2f}", (k, pairs), textcoords="offset points",
                        xytext=(6, 4), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="phase kernel length Kp (corr_valid taps)",
           ylabel="channel pairs per group, Ci·Co",
           title="faster path (fill) and the planner's choice where it differs (ring)")
    ax.grid(True, which="major", alpha=0.3)
    handles = [ax.scatter([], [], color=PATH_COLOURS["direct"], label="direct was faster"),
               ax.scatter([], [], color=PATH_COLOURS["fft"], label="fft was faster"),
               ax.scatter([], [], color="white", edgecolors=PATH_COLOURS["fft"], linewidths=2.5,
                          label="ring: planner chose the other path"),
               ax.scatter([], [], color="0.6", s=25 + 250 * 0.5,
                          label="size: estimate's regret by choice (1.5 shown)"),
               ax.scatter([], [], color="0.6", marker="s", label="square: channel separable")]
    ax.legend(handles=handles, loc="best", fontsize=7)

    others = iter(["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"])
    colours = {"estimate": "black", "measure": "tab:green",
               "always fft": PATH_COLOURS["fft"], "always direct": PATH_COLOURS["direct"]}
    for method in [*methods, *FIXED_RULES]:
        values = [c for c in (choice_regret(r, method) for r in rows) if c is not None]
        if not values:
            continue
        v = np.sort(values)
        cdf.step(v, np.arange(1, v.size + 1) / v.size, where="post",
                 label=f"{method} (n={v.size})", color=colours.get(method) or next(others),
                 linestyle="--" if method.startswith("always") else "-")
    cdf.set(xscale="log", xlabel="regret by choice (log scale)",
            ylabel="fraction of configurations", ylim=(0, 1.02),
            title="regret: time of the candidate run / fastest, cumulative")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(loc="lower right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=80)


# -- main -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 12 configurations, widths 2^12-2^14, K <= 2000, "
                             "a small time budget")
    parser.add_argument("--count", type=int, help="configurations (default 64, --quick 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--repeat", type=int,
                        help="timed calls per method (default 5, --quick 3)")
    parser.add_argument("--pause", type=float,
                        help=f"idle seconds before each timed call (default "
                             f"{run_benchmarks.PAUSE_S:g})")
    parser.add_argument("--config", action="append", default=[], type=Path, metavar="TOML",
                        help="a cost-model profile (e.g. written by `fftconv tune`) whose "
                             "planner choices are timed too; may be repeated")
    parser.add_argument("--no-measure", action="store_true",
                        help="do not time measured planning even where it exists")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"results file (default {DEFAULT_JSON.relative_to(HERE.parent)})")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="draw the map of the configurations and the regret CDFs "
                             "(needs matplotlib)")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="time nothing: print the summary of an earlier run's results "
                             "file (and draw --plot from it)")
    args = parser.parse_args(argv)
    args.count = args.count if args.count is not None else (12 if args.quick else 64)
    args.repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    args.pause = args.pause if args.pause is not None else run_benchmarks.PAUSE_S
    if args.count < 1 or args.repeat < 1 or args.pause < 0:
        parser.error("--count and --repeat must be >= 1 and --pause >= 0")
    for path in args.config:
        try:
            load_config(path)
        except (OSError, ValueError) as err:
            parser.error(f"--config {path}: {err}")
    if args.plot:
        from fftconv.plot import figure_class
        try:
            figure_class()
        except ImportError as err:
            parser.error(f"--plot: {err}")
    return args


def _profile_labels(paths: list[Path]) -> list[tuple[str, Path]]:
    labels: list[tuple[str, Path]] = []
    for i, path in enumerate(paths):
        label = path.stem
        if label in [x for x, _ in labels] or label == "default":
            label = f"{label}#{i + 1}"
        labels.append((label, path))
    return labels


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return from_json(args)
    log = run_benchmarks.log
    sizes = Sizes.for_run(args.quick)
    profiles = _profile_labels(args.config)
    with_measure = measure_available() and not args.no_measure
    methods = ["estimate", *(f"estimate[{label}]" for label, _ in profiles)]
    methods += ["measure"] if with_measure else []
    notes = {} if with_measure else {"measure": "--no-measure" if measure_available()
                                     else "SignalConv1D has no planning= option"}

    threads = run_benchmarks.usable_cores()
    machine = run_benchmarks.machine_record(threads)
    default = steady(load_config(default_config_path()))
    engine = Engine(ConvSpec(1), 1, config=default)
    machine["fft_backend"] = {"name": engine.backend.name, "threads": engine.backend.threads,
                              "planner_effort": default.pyfftw.planner_effort}
    log(f"cores {threads}, {machine['cpu']['model']}, load average "
        f"{machine['loadavg_start']}, FFT backend {engine.backend.name}, "
        f"default config {default.source}")
    if machine["loadavg_start"] and machine["loadavg_start"][0] > 0.5:
        log(f"warning: load average {machine['loadavg_start'][0]:.2f} before the run; other "
            f"processes may distort the timings.")
    if not measure_available():
        log("note: SignalConv1D has no planning= option; the measure column is skipped.")

    tuned = [(label, steady(load_config(path))) for label, path in profiles]
    rows = []
    started = time.perf_counter()
    for index in range(args.count):
        case = draw_case(index, args.seed, sizes, default)
        log(f"[{index + 1}/{args.count}] {case.describe()}")
        row = run_case(case, sizes, default, tuned, args.repeat, args.pause, with_measure)
        rows.append(row)
        print(render_row(row, methods), flush=True)

    table = report(rows, methods, notes, args.repeat, threads, default.source)

    machine["loadavg_end"] = run_benchmarks._loadavg()
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {"quick": args.quick, "count": args.count, "seed": args.seed,
                    "repeat": args.repeat, "pause_s": args.pause,
                    "configs": {label: str(path) for label, path in profiles},
                    "default_config": default.source, "sizes": asdict(sizes),
                    "direct_skip_s": DIRECT_SKIP_S, "slow_call_s": SLOW_CALL_S,
                    "first_call_only_s": FIRST_CALL_ONLY_S, "warm_calls": WARM_CALLS,
                    "close_call_rounds": CLOSE_CALL_ROUNDS,
                    "close_call_ratio": CLOSE_CALL_RATIO, "measure": with_measure},
        "machine": machine,
        "elapsed_s": time.perf_counter() - started,
        "summary": table,
        "configurations": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
    log(f"wrote {args.json} (load average at the end {machine['loadavg_end']})")
    if args.plot:
        write_map(args.plot, rows, methods, _title(record))
        log(f"wrote {args.plot}")
    return 0


def report(rows: list[dict], methods: list[str], notes: dict[str, str], repeat: int,
           threads: int, default_source: str) -> list[dict]:
    """Print the summary and the worst rows; returns the summary table."""
    table = summarize(rows, methods)
    print()
    print(f"Regret = time / fastest time (min of {repeat} timed calls each, {threads} cores); "
          f"estimate = method='auto' with the default cost model ({default_source}).")
    print(render_summary(table, rows, methods, notes))
    print()
    print("Worst configurations for estimate (by choice):")
    for row in worst_rows(rows, "estimate"):
        print(render_row(row, methods))
    return table


def _title(record: dict) -> str:
    o, m = record["options"], record["machine"]
    return (f"planner regret, {len(record['configurations'])} random configurations (seed "
            f"{o['seed']}{', --quick' if o['quick'] else ''}), {m['cores_usable']} cores, "
            f"{m['cpu']['model']}, load average {m['loadavg_start']} -> {m['loadavg_end']}")


def from_json(args: argparse.Namespace) -> int:
    """Summarize (and plot) an earlier results file."""
    record = json.loads(args.from_json.read_text())
    o = record["options"]
    methods = ["estimate", *(f"estimate[{label}]" for label in o["configs"])]
    methods += ["measure"] if o["measure"] else []
    notes = {} if o["measure"] else {"measure": "not timed"}
    report(record["configurations"], methods, notes, o["repeat"],
           record["machine"]["cores_usable"], o["default_config"])
    if args.plot:
        write_map(args.plot, record["configurations"], methods, _title(record))
        run_benchmarks.log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
