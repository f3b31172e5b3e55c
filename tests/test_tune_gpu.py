"""``fftconv tune --backend cupy`` with NumPy standing in for CuPy: the suite, the fit, the file.

The stand-in runs the GPU tuner's logic on the CPU: which calls it times and
how, what it fits and what it writes.  Fitted values are checked against
timings made up from the cost model (monkeypatched), never real ones.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import pytest
from device_standin import DeviceArray

from fftconv import _files, cli, tune_fit, tune_gpu, tune_suite
from fftconv.backends import get_backend
from fftconv.backends.cupy_backend import CupyBackend
from fftconv.config import device_config, load_config, read_config
from fftconv.engine import Engine
from fftconv.planner import direct_cost, fft_cost

DEFAULT = load_config(user_profile=False)
#: The sections a GPU tune copies from its base.
CPU_SECTIONS = ("fft", "direct", "memory", "pyfftw", "streaming", "planner")
#: GPU micro-benchmark sizes that take milliseconds on the stand-in.
SMALL_MICRO = {"FFT_POINTS": 1 << 14, "SHORT_LENGTHS": (64,), "LONG_LENGTHS": (4096,),
               "GEMM_ROWS": 256, "COPY_SAMPLES": 4096}


@pytest.fixture
def small_micro(monkeypatch):
    for name, value in SMALL_MICRO.items():
        monkeypatch.setattr(tune_gpu, name, value)


def _sections(config, names=CPU_SECTIONS):
    return {name: getattr(config, name) for name in names}


#: A start whose kernel launches cost a tenth of the packaged estimate: with
#: the packaged one the direct path wins every call of the tiny suite, and
#: FFT calls made slower would cost nothing.
START = dataclasses.replace(DEFAULT, cupy=dataclasses.replace(DEFAULT.cupy,
                                                              launch_overhead_ns=1000.0))


def _modelled(monkeypatch, fft_factor):
    """Measure nothing: the micro-benchmarks give :data:`START`, and a run takes the
    time that its configuration estimates, FFT calls `fft_factor` times it."""

    def seconds(engine, chosen, x, kernel, token, time_major):
        config = device_config(engine.config, chosen.device)
        if chosen.path == "fft":
            ns = fft_factor * float(fft_cost(chosen.problem, config, np.array([chosen.n_fft]))[0])
        else:
            ns = direct_cost(chosen.problem, config, chosen.direct_variant)
        return ns / 1e9

    monkeypatch.setattr(tune_gpu, "measure_cupy", lambda base, backend, repeat, log: START)
    monkeypatch.setattr(tune_suite, "_run_seconds", seconds)


def test_tune_times_each_candidate_forced_on_the_gpu_and_fits_the_cupy_section(
        gpu, small_micro, monkeypatch):
    events = []
    execute, synchronize = Engine.execute, CupyBackend.synchronize

    def run(engine, x, kernel, token, chosen, time_major=False):
        events.append(((chosen.problem, chosen.path, chosen.n_fft),
                       (chosen.backend, chosen.device, type(x))))
        return execute(engine, x, kernel, token, chosen, time_major)

    def wait(backend):
        events.append("synchronize")
        synchronize(backend)

    monkeypatch.setattr(Engine, "execute", run)
    monkeypatch.setattr(CupyBackend, "synchronize", wait)
    lines = []
    result = tune_gpu.tune_cupy(DEFAULT, get_backend("cupy"), suite="tiny", repeat=1,
                                log=lines.append)
    assert "suite tiny: 3 layer calls (seed 0)" in lines
    assert any(line.startswith("fit: regret") for line in lines)
    assert (result.backend, result.device, result.suite) == ("cupy",
                                                             "cuda:0 (Stand-in GPU 0)", "tiny")
    runs = [(i, event) for i, event in enumerate(events) if event != "synchronize"]
    # Every run is a GPU plan on a device array, and waits for the device's work.
    assert {where for _, (_, where) in runs} == {("cupy", "cuda", DeviceArray)}
    assert all(events[i + 1] == "synchronize" for i, _ in runs)
    counts = collections.Counter(candidate for _, (candidate, _) in runs)
    assert len(counts) == result.timings > result.problems >= 1
    # A warm-up run, then an untimed and a timed run (repeat=1).  A warm-up slower
    # than SLOW times the candidate budget (a loaded machine) warms up once more,
    # kernels compiling at first use on a GPU, and is the last if still slow.
    assert set(counts.values()) <= {2, 3, 4}
    assert _sections(result.config) == _sections(DEFAULT)
    fitted = {key for key in result.config.cupy.__dataclass_fields__
              if getattr(result.config.cupy, key) != getattr(DEFAULT.cupy, key)}
    assert fitted and fitted <= {key for _, key in tune_fit.CUDA_FITTED_CONSTANTS}
    assert set(result.regret) == {"packaged default", "micro-benchmarks", "fitted"}


def _fft_over_direct(config, problems):
    """Mean log of the GPU's cheapest FFT estimate over its direct one, over `problems`."""
    logs = []
    for problem in problems:
        costs = tune_suite.candidate_costs(problem, config, "cuda")
        fft = min(ns for key, ns in costs.items() if key[0] == "fft")
        logs.append(math.log(fft / costs[("direct", 0)]))
    return float(np.mean(logs))


@pytest.mark.parametrize("fft_factor", [1 / 8, 8.0])
def test_the_fit_follows_fft_calls_made_slower_or_faster(gpu, monkeypatch, fft_factor):
    _modelled(monkeypatch, fft_factor)
    result = tune_gpu.tune_cupy(DEFAULT, get_backend("cupy"), suite="tiny", repeat=1,
                                log=lambda line: None)
    before, after = result.regret["micro-benchmarks"], result.regret["fitted"]
    assert before.worst > 1.5 and after.worst < before.worst
    # Regret depends on choices, so the fit pins the FFT costs relative to the
    # direct ones: they move the way the FFT calls did.
    problems = [case.problem() for case in tune_suite.make_suite("tiny", DEFAULT, 0, "cuda")]
    moved = _fft_over_direct(result.config, problems) - _fft_over_direct(START, problems)
    assert moved * math.log(fft_factor) > 0.5
    assert _sections(result.config) == _sections(DEFAULT)


def test_an_exact_model_is_kept(gpu, monkeypatch):
    _modelled(monkeypatch, 1.0)
    result = tune_gpu.tune_cupy(DEFAULT, get_backend("cupy"), suite="tiny", repeat=1,
                                log=lambda line: None)
    assert result.regret["fitted"].worst == result.regret["micro-benchmarks"].worst == 1.0
    assert result.config.cupy == START.cupy


def test_tune_cupy_wants_a_gpu_backend():
    with pytest.raises(ValueError, match="`backend` must be a 'cupy' backend"):
        tune_gpu.tune_cupy(DEFAULT, get_backend("numpy"), suite="tiny")


def _tune(*args):
    return cli.main(["tune", "--backend", "cupy", "--suite", "tiny", "--repeat", "1", *args])


def test_the_written_profile_holds_the_fit_and_the_base_cpu_sections(gpu, monkeypatch,
                                                                     tmp_path, capsys):
    _modelled(monkeypatch, 8.0)
    results = []
    tune_cupy = tune_gpu.tune_cupy

    def kept(*args, **kwargs):
        results.append(tune_cupy(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(tune_gpu, "tune_cupy", kept)
    out = tmp_path / "gpu.toml"
    assert _tune("--output", str(out)) == 0
    [result] = results
    std = capsys.readouterr()
    assert "fit: regret" in std.err and f"wrote {out}" in std.out
    for label, stats in result.regret.items():
        assert f"regret {label:<17} {stats}" in std.out
    tuned = read_config(out)
    assert tuned.cupy == result.config.cupy != START.cupy  # the fit's, not the start's
    assert _sections(tuned) == _sections(DEFAULT)
    text = out.read_text()
    assert "# Only the [cupy] section" in text and "# FFT: cupy (cuFFT, CuPy " in text
    record = dict(tuned.machine)
    assert record["command"] == "fftconv tune --backend cupy --suite tiny --repeat 1"
    assert record["suite"] == "tiny" and record["fft"].endswith(" on cuda:0 (Stand-in GPU 0)")
    fitted = result.regret["fitted"]
    assert record["regret_fitted"] == f"{fitted.median:.3f} / {fitted.p90:.3f} / {fitted.worst:.3f}"


def test_a_failed_write_leaves_the_old_profile_and_no_partial_file(gpu, monkeypatch,
                                                                   tmp_path, capsys):
    _modelled(monkeypatch, 8.0)
    profile = tmp_path / "profile.toml"
    profile.write_text(DEFAULT.to_toml())
    old = profile.read_text()

    def failing(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", failing)
    assert _tune("--output", str(profile)) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert profile.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]


@pytest.mark.parametrize("backend", ["cupy", "numpy"])
def test_a_slow_first_run_is_run_again_where_kernels_compile_at_first_use(gpu, monkeypatch,
                                                                          backend):
    runs = collections.Counter()

    def seconds(engine, chosen, x, kernel, token, time_major):
        key = (chosen.path, chosen.n_fft)
        runs[key] += 1
        return 5.0 if runs[key] == 1 else 1e-3  # a first call that compiles kernels

    monkeypatch.setattr(tune_suite, "_run_seconds", seconds)
    device = "cuda" if backend == "cupy" else "cpu"
    case = tune_suite.make_suite("tiny", DEFAULT, 0, device)[0]
    keys = list(tune_suite.candidate_costs(case.problem(), device_config(DEFAULT, device),
                                           device))[:2]
    best, warm = tune_suite.time_case(case, keys, DEFAULT, 2, tune_suite.SUITES["tiny"],
                                      backend)
    if backend == "cupy":  # judged by a second warm-up, then timed as any other
        assert best == dict.fromkeys(keys, 1e-3) and warm == len(keys) * (5.0 + 1e-3)
    else:  # on the CPU a slow warm-up is the candidate's time: nothing compiles
        assert best == dict.fromkeys(keys, 5.0) and warm == len(keys) * 5.0
    assert set(runs) == {(path, n) for path, n in keys}
