"""Measure and fit the planner's cost constants on this machine (``fftconv tune``).

Tuning has three steps.

1. Micro-benchmarks (:func:`fftconv.tune_micro.measure_config`): block FFTs,
   the per-bin product, a GEMM and a window gather give a first value of each
   constant.
2. A suite of real layer calls (:mod:`fftconv.tune_suite`): a seeded sample
   of layers and inputs over the planner's territory; each problem's direct
   candidate and a few FFT lengths run through
   :meth:`fftconv.engine.Engine.execute`, each timed as the minimum of a few
   warm runs.
3. A fit (:func:`fftconv.tune_fit.fit_constants`): one scale factor per cost
   constant minimises the suite's regret, evaluated with the planner's own
   cost functions on the measured times.  After a fit, the problems whose new
   choice was not timed get it timed, and the fit is repeated.

:func:`tune_config` runs the three steps and :func:`profile_text` writes the
result as a configuration file that describes the machine.  On a GPU
(:func:`fftconv.tune_gpu.tune_cupy`) the same steps fit the ``[cupy]`` section:
GPU micro-benchmarks, the suite run through the ``'cupy'`` backend, the fit of
:data:`~fftconv.tune_fit.CUDA_FITTED_CONSTANTS` (:func:`tune_on`).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fftconv._machine import cpuinfo_value, usable_cores
from fftconv.backends import Backend
from fftconv.config import DEFAULT_SOURCE, Config
from fftconv.tune_fit import RegretStats, SuiteRegret, fit_constants
from fftconv.tune_micro import check_repeat, cpu_backend, measure_config
from fftconv.tune_suite import SUITES, key_name, make_suite, measure_suite, time_case


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
    device : str
        The device the suite ran on: ``'cpu'``, or a GPU (:func:`device_description`).
    """

    config: Config
    suite: str
    problems: int
    timings: int
    regret: dict[str, RegretStats]
    seconds: float
    backend: str
    load_average: tuple[float, float, float] | None = None
    device: str = "cpu"


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
    return tune_on(base, lambda: measure_config(base, repeat=repeat, log=log), suite=suite,
                   repeat=repeat, seed=seed, log=log)


def tune_on(base: Config, measure: Callable[[], Config], backend: Backend | None = None,
            suite: str = "quick", repeat: int = 5, seed: int = 0,
            log: Callable[[str], None] = print) -> TuneResult:
    """The three steps of tuning, on the CPU or on a GPU; see :func:`tune_config`.

    Parameters
    ----------
    base : Config
        Configuration to start from; it sizes the suite (with its costs on
        the device), and the fit starts from it as well as from the
        micro-benchmarks.
    measure : callable ``() -> Config``
        The micro-benchmarks: `base` with a first value of each constant of
        the device; called once the other arguments are checked.
    backend : Backend or None
        Where the suite runs.  None: the CPU backend of `base`
        (:func:`~fftconv.tune_micro.cpu_backend`), whose constants are fitted
        (:data:`~fftconv.tune_fit.FITTED_CONSTANTS`); a ``'cupy'`` backend:
        its GPU, made the current device while the suite runs, and the
        ``[cupy]`` constants (:data:`~fftconv.tune_fit.CUDA_FITTED_CONSTANTS`).
    suite, repeat, seed, log
        As for :func:`tune_config`.

    Returns
    -------
    TuneResult
    """
    if not isinstance(base, Config):
        raise TypeError(f"`base` must be a Config, got {base!r}.")
    if suite not in SUITES:
        raise ValueError(f"`suite` must be one of {sorted(SUITES)}, got {suite!r}.")
    repeat = check_repeat(repeat)
    backend = cpu_backend(base) if backend is None else backend
    began = time.perf_counter()
    load = _load_average()
    micro = measure()
    size = SUITES[suite]
    device = backend.traits.kind
    with backend.activate():
        cases = make_suite(suite, base, seed, device)
        log(f"suite {suite}: {len(cases)} layer calls (seed {seed})")
        measured = measure_suite(cases, micro, repeat=repeat, suite=suite, log=log,
                                 backend=backend.name)
        if not measured:
            raise RuntimeError("no layer call of the suite could be timed.")
        regret = SuiteRegret(measured, micro, device)
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
                seconds = time_case(m.case, [key], micro, repeat, size, backend.name)[0]
                if key in seconds and math.isfinite(seconds[key]) and seconds[key] > 0:
                    measured[i] = dataclasses.replace(m, seconds={**m.seconds, **seconds})
                    log(f"  {m.label}: {key_name(key)} {seconds[key] * 1e3:.2f} ms")
            regret = SuiteRegret(measured, micro, device)
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
            log(f"regret {regrets[i]:.3f}: {m.label}: picks {key_name(picks[i])} "
                f"({regret.seconds(i, picks[i]) * 1e3:.2f} ms), fastest {key_name(fastest)} "
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
                      seconds=time.perf_counter() - began, backend=backend.name,
                      load_average=load, device=device_description(backend))


# -- the machine and the written file ----------------------------------------------


def _cpu_model() -> str:
    return (cpuinfo_value(("model name", "Model", "cpu model")) or platform.processor()
            or platform.machine() or "unknown")


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
            "cores": usable_cores(), "cpu_count": os.cpu_count() or 0,
            "platform": platform.platform(), "blas": _blas(),
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": _version("scipy"), "pyfftw": _version("pyfftw"),
            "fftconv": _version("fftconv")}


def device_description(backend: Backend) -> str:
    """Where `backend` runs: ``'cpu'``, or its GPU and model, ``'cuda:0 (NVIDIA H200)'``."""
    model = backend.device_model
    return backend.device if model is None else f"{backend.device} ({model})"


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
    gpu = result.backend == "cupy"
    fft = (f"{result.backend} ({options.planner_effort}, "
           f"{'all usable' if options.threads == 0 else options.threads} threads)"
           if result.backend == "pyfftw"
           else f"cupy (cuFFT, CuPy {_version('cupy')}) on {result.device}" if gpu
           else f"{result.backend} (scipy.fft)")
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
        *(["# Only the [cupy] section, the GPU's cost model, was tuned; the others are the "
           "base's."] if gpu else []),
        f"# {'[cupy] constants' if gpu else 'Constants'}: micro-benchmarks, then scaled to "
        "minimise the regret (time of the",
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
