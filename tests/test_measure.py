"""Measured planning (``planning='measure'``) and the plan-wisdom file."""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref

import numpy as np
import pytest

from fftconv import SignalConv1D, _files, convolve, plan_wisdom
from fftconv import engine as engine_module
from fftconv.config import load_config, read_config
from fftconv.engine import Engine
from fftconv.planner import measurable_fft_candidates, plan
from fftconv.spec import ConvSpec

DEFAULT = load_config()
#: Measuring with a budget that never runs out: every candidate worth it is timed.
MEASURE = dataclasses.replace(DEFAULT, planner=dataclasses.replace(
    DEFAULT.planner, planning="measure", measure_seconds=600.0))
BACKENDS = ["numpy"] + (["pyfftw"] if importlib.util.find_spec("pyfftw") else [])

#: Layers (constructor arguments, input shape) with several candidates worth timing.
LAYERS = {
    "strided": ({"filters": 3, "kernel_support": 33, "corr": True, "strides_down": 2,
                 "padding": "same_zeros"}, (2, 1000, 2)),
    "separable": ({"filters": 2, "kernel_support": 64, "channel_separable": True,
                   "padding": "same_reflect"}, (2, 2000, 3)),
    "channels_first_up_down": ({"filters": 4, "kernel_support": 129, "strides_up": 3,
                                "strides_down": 2, "data_format": "channels_first"},
                               (2, 3, 700)),
}


@pytest.fixture(autouse=True)
def wisdom_dir(tmp_path, monkeypatch):
    """A fresh cache directory, and plan-wisdom warnings not yet issued."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("FFTCONV_CACHE_DIR", str(directory))
    monkeypatch.delenv("FFTCONV_SAVE_WISDOM", raising=False)
    monkeypatch.delenv("FFTCONV_CONFIG", raising=False)
    monkeypatch.setattr(_files, "_warned", set())
    return directory


def assert_close(actual, expected):
    """float64 results of two plans agree to 1e-10 relative to max|y|."""
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-10 * scale)


def _pair(name, backend="numpy", config=MEASURE, **options):
    """An estimating and a measuring layer with one fixed kernel, and an input."""
    arguments, shape = LAYERS[name]
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(shape)
    c_in = shape[1] if arguments.get("data_format") == "channels_first" else shape[2]
    kernel = rng.standard_normal((arguments["kernel_support"], c_in, arguments["filters"]))
    estimate = SignalConv1D(**arguments, kernel_parameter=kernel, dtype="float64",
                            backend=backend, planning="estimate")
    measure = SignalConv1D(**arguments, kernel_parameter=kernel, dtype="float64",
                           backend=backend, config=config, **options)
    return estimate, measure, x


def _measurable(layer, x):
    """The candidates the engine times for `x` (its model plan's)."""
    engine = layer.engine
    last = layer.data_format == "channels_last"
    shape = (x.shape[0], x.shape[2], x.shape[1]) if last else x.shape
    model = plan(layer.spec, shape, np.float64, engine.backend.name, engine.config,
                 filters=layer.filters, method=engine.method, threads=engine.backend.threads,
                 time_major=last)
    return model, engine._measurable(model)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_measure_agrees_with_estimate_and_picks_a_candidate(name, backend):
    estimate, measure, x = _pair(name, backend)
    model, candidates = _measurable(measure, x)
    assert len(candidates) > 1  # there is something to measure
    assert measure.engine.planning == "measure"  # from the configuration
    expected = estimate(x)
    assert_close(measure(x), expected)
    assert measure.engine.measurements == len(candidates)
    chosen = measure.plan_for(x.shape)
    assert chosen.candidates[0] in candidates
    assert (chosen.path, chosen.n_fft) in {(c.path, c.n_fft) for c in candidates}
    assert_close(measure(x), expected)  # the winner, run as a plain call


def test_second_call_and_second_engine_measure_nothing():
    estimate, measure, x = _pair("strided")
    measure(x)
    done = measure.engine.measurements
    assert done > 1 and measure.engine.plans_made == 1
    spectra = measure.engine.spectra.computed
    assert_close(measure(x), estimate(x))
    assert measure.engine.measurements == done  # nothing timed again
    assert measure.engine.spectra.computed == spectra  # the winner's spectra were kept
    _, again, _ = _pair("strided")  # a new engine: the process remembers the winner
    assert_close(again(x), estimate(x))
    assert again.engine.measurements == 0
    assert again.plan_for(x.shape) == \
        measure.plan_for(x.shape)


@pytest.mark.skipif("pyfftw" not in BACKENDS, reason="pyFFTW is not installed")
def test_measuring_runs_plan_no_transform_again():
    """Candidates are timed on the FFT plans they have: none is measured by FFTW meanwhile."""
    import pyfftw

    pyfftw.forget_wisdom()
    eager = dataclasses.replace(MEASURE, pyfftw=dataclasses.replace(
        MEASURE.pyfftw, planner_effort="FFTW_MEASURE", measure_after_seconds=0.0))
    estimate, measure, x = _pair("strided", "pyfftw", config=eager, method="fft")
    backend = measure.engine.backend
    before = backend.block_plans_built["FFTW_MEASURE"]
    assert_close(measure(x), estimate(x))
    assert measure.engine.measurements > 1  # (unheld, this call measured a dozen plans)
    assert backend.block_plans_built["FFTW_MEASURE"] == before
    for _ in range(3):  # later calls measure the winner's plans (one per call)
        measure(x)
    assert backend.block_plans_built["FFTW_MEASURE"] > before


def test_only_the_winners_spectra_are_kept():
    _, measure, x = _pair("channels_first_up_down")
    measure(x)
    chosen = measure.plan_for(x.shape)
    fft_keys = [key for key in measure.engine.spectra._entries if key[0] == "fft"]
    assert fft_keys == ([] if chosen.path == "direct" else
                        [engine_module._operands_key(chosen, "<f8", "cpu")])


SUBPROCESS = textwrap.dedent("""
    import numpy as np
    from fftconv import SignalConv1D

    rng = np.random.default_rng(0)
    layer = SignalConv1D(3, 33, corr=True, strides_down=2, padding="same_zeros",
                         kernel_parameter=rng.standard_normal((33, 2, 3)), dtype="float64",
                         backend="numpy", planning="measure")
    x = rng.standard_normal((2, 1000, 2))
    y = layer(x)
    chosen = layer.plan_for(x.shape)
    print(layer.engine.measurements, chosen.path, chosen.n_fft, repr(float(y.sum())))
""")


def test_a_second_process_measures_nothing(wisdom_dir, tmp_path):
    config = tmp_path / "measure.toml"
    config.write_text(MEASURE.to_toml())
    env = {**os.environ, "FFTCONV_CACHE_DIR": str(wisdom_dir),
           "FFTCONV_CONFIG": str(config)}

    def run():
        done = subprocess.run([sys.executable, "-c", SUBPROCESS], env=env, check=True,
                              capture_output=True, text=True, timeout=120)
        count, path, n_fft, total = done.stdout.split()
        return int(count), (path, int(n_fft)), float(total)

    first_count, first_plan, first_total = run()
    assert first_count > 1
    saved = json.loads((wisdom_dir / plan_wisdom.WISDOM_FILE).read_text())
    (entry,) = saved["plans"].values()
    assert (entry["path"], entry["n_fft"]) == first_plan
    assert len(entry["seconds"]) == first_count
    second_count, second_plan, second_total = run()
    assert second_count == 0 and second_plan == first_plan
    assert abs(second_total - first_total) <= 1e-9 * max(1.0, abs(first_total))


def test_remembered_winner_is_used_without_measuring(wisdom_dir):
    estimate, measure, x = _pair("strided")
    model, candidates = _measurable(measure, x)
    other = candidates[-1]  # not the model's choice
    key = plan_wisdom.wisdom_key(model.problem, model.backend, model.threads, "auto",
                                 model.direct_variant)
    _write_wisdom(wisdom_dir, {key: {"path": other.path, "n_fft": other.n_fft,
                                     "saved": 0.0}})
    # Known before the first call, so plan_for already gives it.
    chosen = measure.plan_for(x.shape)
    assert (chosen.path, chosen.n_fft) == (other.path, other.n_fft)
    assert_close(measure(x), estimate(x))
    assert measure.engine.measurements == 0


@pytest.mark.parametrize("entry", [
    {"path": "fft", "n_fft": 8, "saved": 0.0},  # shorter than the phase kernel
    {"path": "fft", "n_fft": 11, "saved": 0.0},  # not a length the planner lists
    {"path": "gpu", "n_fft": 0, "saved": 0.0},  # malformed
    {"path": "fft", "n_fft": "128", "saved": 0.0},
])
def test_inapplicable_remembered_winner_is_ignored(wisdom_dir, entry):
    estimate, measure, x = _pair("strided")
    model, candidates = _measurable(measure, x)
    key = plan_wisdom.wisdom_key(model.problem, model.backend, model.threads, "auto",
                                 model.direct_variant)
    _write_wisdom(wisdom_dir, {key: entry})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(measure(x), estimate(x))
    assert measure.engine.measurements == len(candidates)


def _write_wisdom(directory, plans):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / plan_wisdom.WISDOM_FILE).write_text(
        json.dumps({"format": plan_wisdom.FORMAT, "plans": plans}))


@pytest.mark.parametrize("content", [b"{not json", b'{"format": "other", "plans": {}}',
                                     b"\xff\xfe binary", b"[]"])
def test_corrupt_wisdom_file_warns_once_and_is_replaced(wisdom_dir, content):
    wisdom_dir.mkdir()
    path = wisdom_dir / plan_wisdom.WISDOM_FILE
    path.write_bytes(content)
    estimate, measure, x = _pair("strided")
    with pytest.warns(RuntimeWarning, match="plan wisdom file .* (is invalid|could not be "
                                            "read)") as record:
        assert_close(measure(x), estimate(x))
        other_estimate, other, y = _pair("separable")
        assert_close(other(y), other_estimate(y))
    assert len([w for w in record if "plan wisdom" in str(w.message)]) == 1
    assert measure.engine.measurements > 1 and other.engine.measurements > 1
    saved = json.loads(path.read_text())  # the next save replaced it with valid wisdom
    assert saved["format"] == plan_wisdom.FORMAT and len(saved["plans"]) == 2


def test_unwritable_cache_directory_warns_once(tmp_path, monkeypatch):
    blocker = tmp_path / "regular-file"
    blocker.write_text("")
    monkeypatch.setenv("FFTCONV_CACHE_DIR", str(blocker / "cache"))
    estimate, measure, x = _pair("strided")
    with pytest.warns(RuntimeWarning, match="plan wisdom could not be saved") as record:
        assert_close(measure(x), estimate(x))
        other_estimate, other, y = _pair("separable")
        assert_close(other(y), other_estimate(y))
    assert len(record) == 1
    assert measure.engine.measurements > 1 and other.engine.measurements > 1
    _, again, _ = _pair("strided")  # remembered for the process all the same
    again(x)
    assert again.engine.measurements == 0


@pytest.mark.parametrize("opt_out", ["environment", "configuration"])
def test_saving_can_be_turned_off(wisdom_dir, monkeypatch, opt_out):
    config = MEASURE
    if opt_out == "environment":
        monkeypatch.setenv("FFTCONV_SAVE_WISDOM", "no")
    else:
        config = dataclasses.replace(MEASURE, planner=dataclasses.replace(
            MEASURE.planner, save_wisdom=False))
    estimate, measure, x = _pair("strided", config=config)
    assert_close(measure(x), estimate(x))
    assert measure.engine.measurements > 1
    assert not (wisdom_dir / plan_wisdom.WISDOM_FILE).exists()


def test_environment_turns_saving_on_over_the_configuration(wisdom_dir, monkeypatch):
    monkeypatch.setenv("FFTCONV_SAVE_WISDOM", "TRUE")
    config = dataclasses.replace(MEASURE, planner=dataclasses.replace(
        MEASURE.planner, save_wisdom=False))
    _, measure, x = _pair("strided", config=config)
    measure(x)
    assert (wisdom_dir / plan_wisdom.WISDOM_FILE).exists()


def test_zero_budget_measures_nothing(wisdom_dir, monkeypatch):
    config = dataclasses.replace(MEASURE, planner=dataclasses.replace(
        MEASURE.planner, measure_seconds=0.0))
    estimate, measure, x = _pair("strided", config=config)
    expected = estimate(x)
    runs = []
    run = Engine._run
    monkeypatch.setattr(Engine, "_run", lambda self, *args, **kwargs: runs.append(1) or run(
        self, *args, **kwargs))
    assert_close(measure(x), expected)
    assert len(runs) == 1  # the first run's result is the call's: nothing run again
    assert measure.engine.measurements == 0
    assert measure.plan_for(x.shape) == estimate.plan_for(x.shape)
    assert not (wisdom_dir / plan_wisdom.WISDOM_FILE).exists()  # nothing compared
    measure(x)
    assert measure.engine.measurements == 0


class _Clock:
    """A stand-in for the `time` module whose clock moves only by :meth:`tick`."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def tick(self, seconds=1.0):
        self.now += seconds


def _fake_runs(monkeypatch, seconds_of):
    """Make every run of the engine take ``seconds_of(chosen)`` fake seconds.

    Returns the fake clock and the list of the candidates run, in order.
    """
    clock = _Clock()
    monkeypatch.setattr(engine_module, "time", clock)
    ran = []
    run = Engine._run

    def slow_run(self, backend, x, kernel, token, chosen, *args, **kwargs):
        clock.tick(seconds_of(chosen))
        ran.append(chosen.candidates[0])
        return run(self, backend, x, kernel, token, chosen, *args, **kwargs)

    monkeypatch.setattr(Engine, "_run", slow_run)
    return clock, ran


@pytest.mark.parametrize(("budget", "timed"), [(0.5, 1), (1.5, 1), (3.5, 2), (5.5, 3)])
def test_budget_bounds_the_candidates_timed(monkeypatch, budget, timed):
    # Every run takes "1 s".  The model's choice, which has just run, is timed
    # at once; another candidate is timed only if its untimed run leaves time
    # (3.5 s: one more, 5.5 s: two more); no second round fits.  The winner
    # runs once more for the call's result.
    clock, ran = _fake_runs(monkeypatch, lambda chosen: 1.0)
    config = dataclasses.replace(MEASURE, planner=dataclasses.replace(
        MEASURE.planner, measure_seconds=budget))
    estimate, measure, x = _pair("strided", config=config)
    model = measure.plan_for(x.shape)
    assert len(measure.engine._measurable(model)) > timed
    expected = estimate(x)
    started = clock.now
    assert_close(measure(x), expected)
    assert measure.engine.measurements == timed
    # The first run, the model's timed run, then each other candidate twice and,
    # but for the smallest budget, one untimed run past the budget; the winner's.
    assert clock.now - started == 2 * timed + (budget > 1) + 1


def test_rounds_retime_only_the_contenders(monkeypatch):
    # The model's choice takes 1 s a run, the other candidates 2 s: slower than
    # CONTENDER_FACTOR times the fastest, so they run only in the first round
    # (untimed then timed), and the model's choice alone is not re-timed.
    model_choice = []

    def seconds_of(chosen):
        return 1.0 if chosen.candidates[0] == model_choice[0] else 2.0

    clock, ran = _fake_runs(monkeypatch, seconds_of)
    estimate, measure, x = _pair("strided")
    model = measure.plan_for(x.shape)
    candidates = measure.engine._measurable(model)
    model_choice.append(candidates[0])
    assert 2.0 > engine_module.CONTENDER_FACTOR * 1.0
    expected = estimate(x)
    ran.clear()
    assert_close(measure(x), expected)
    assert ran == ([candidates[0], candidates[0]] + [c for c in candidates[1:] for _ in (0, 1)]
                   + [candidates[0]])  # the winner, once more for the result
    assert measure.plan_for(x.shape).candidates[0] \
        == candidates[0]


def test_wait_for_idle_threads_waits_out_a_busy_thread_up_to_its_timeout():
    # In a process of its own: no other test's background planning is running.
    script = textwrap.dedent("""
        import threading, time
        from fftconv._machine import wait_for_idle_threads

        def busy_thread(seconds):
            stop = time.perf_counter() + seconds
            thread = threading.Thread(target=lambda: [None for _ in iter(
                lambda: time.perf_counter() < stop, False)])
            thread.start()
            return thread

        idle = wait_for_idle_threads()
        thread = busy_thread(0.15)
        spun = wait_for_idle_threads(timeout=2.0)
        thread.join()
        thread = busy_thread(1.0)
        capped = wait_for_idle_threads(timeout=0.1)
        thread.join()
        print(idle, spun, capped)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    idle, spun, capped = map(float, out.split())
    assert idle < 0.05
    assert 0.1 <= spun < 1.0
    assert 0.1 <= capped < 0.5


def test_wait_for_idle_threads_needs_idle_samples_in_a_row(monkeypatch):
    """A spinning thread that got no core for one sample (a loaded machine) is waited out."""
    from fftconv import _machine

    busy = iter([True, False, True, False, False, True])  # per sample: other threads busy?

    class Clock:
        wall = cpu = 0.0

        def perf_counter(self):
            return self.wall

        def process_time(self):
            return self.cpu

        def sleep(self, seconds):
            self.wall += seconds
            self.cpu += seconds if next(busy) else 0.0

    clock = Clock()
    monkeypatch.setattr(_machine, "time", clock)
    waited = _machine.wait_for_idle_threads(timeout=1.0)
    assert _machine.IDLE_SAMPLES == 2
    assert waited == pytest.approx(5 * _machine.IDLE_SAMPLE_SECONDS)


def _waits_at_every_change(runs):
    """Whether a run of another candidate than the one before always follows a wait."""
    previous, waited = None, False
    for event in runs:
        if event == "wait":
            waited = True
            continue
        if previous is not None and event != previous and not waited:
            return False
        previous, waited = event, False
    return True


def test_each_candidate_waits_for_idle_worker_threads_before_its_runs(monkeypatch):
    # Worker threads left spinning by one candidate's run (BLAS after the direct
    # path) must not be charged to the next: every change of candidate waits.
    clock, ran = _fake_runs(monkeypatch, lambda chosen: 1.0)
    monkeypatch.setattr(engine_module, "wait_for_idle_threads", lambda: ran.append("wait"))
    estimate, measure, x = _pair("strided")
    expected = estimate(x)
    ran.clear()
    assert_close(measure(x), expected)
    assert len({c for c in ran if c != "wait"}) >= 2 and "wait" in ran
    assert _waits_at_every_change(ran[:-1])  # the last, untimed, run is the result's
    assert not _waits_at_every_change(["a", "b"]) and _waits_at_every_change(["a", "a"])


def test_later_rounds_time_every_candidate_close_to_the_fastest(monkeypatch):
    # All candidates take 1 s a run: every later round re-times each of them
    # (an untimed run, then ROUND_TIMED_RUNS timed ones) up to MEASURE_ROUNDS;
    # the model's choice keeps its place.
    clock, ran = _fake_runs(monkeypatch, lambda chosen: 1.0)
    estimate, measure, x = _pair("strided")
    model = measure.plan_for(x.shape)
    candidates = measure.engine._measurable(model)
    assert len(candidates) >= 3
    expected = estimate(x)
    ran.clear()
    assert_close(measure(x), expected)
    first_round = [candidates[0], candidates[0]] + [c for c in candidates[1:] for _ in (0, 1)]
    runs = 1 + engine_module.ROUND_TIMED_RUNS
    assert runs == 3
    later = [c for c in candidates for _ in range(runs)] * (engine_module.MEASURE_ROUNDS - 1)
    assert ran == first_round + later + [candidates[0]]  # the winner, for the result
    assert measure.engine.measurements == len(candidates)


def test_a_round_leaves_out_the_slowest_contenders_that_do_not_fit(monkeypatch):
    # Every run takes 1 s and the budget leaves 6.5 s after the first round: the
    # second round times the two first contenders only (3 runs each, 6 s), and no
    # third fits.
    estimate, measure, x = _pair("strided")
    model = measure.plan_for(x.shape)
    candidates = measure.engine._measurable(model)
    assert len(candidates) >= 3
    first_round_s = 1 + 2 * (len(candidates) - 1)
    config = dataclasses.replace(MEASURE, planner=dataclasses.replace(
        MEASURE.planner, measure_seconds=first_round_s + 6.5))
    clock, ran = _fake_runs(monkeypatch, lambda chosen: 1.0)
    estimate, measure, x = _pair("strided", config=config)
    expected = estimate(x)
    ran.clear()
    assert_close(measure(x), expected)
    assert ran[1 + first_round_s:] == [candidates[0]] * 3 + [candidates[1]] * 3 + [candidates[0]]


def _measure_with_one_slow_start(monkeypatch, which, slow_s, slow_runs):
    """Measure the "strided" layer where candidate ``which`` (an index into the
    candidates timed) takes `slow_s` fake seconds in its first `slow_runs` runs
    and 0.5 s later, the others 1 s.

    Returns the candidates, that candidate, the candidates run in order and the plan kept.
    """
    runs = collections.Counter()
    slow = []

    def seconds(chosen):
        candidate = chosen.candidates[0]
        runs[candidate] += 1
        if candidate != slow[0]:
            return 1.0
        return slow_s if runs[candidate] <= slow_runs else 0.5

    clock, ran = _fake_runs(monkeypatch, seconds)
    estimate, measure, x = _pair("strided")
    model = measure.plan_for(x.shape)
    candidates = measure.engine._measurable(model)
    slow.append(candidates[which])
    expected = estimate(x)
    ran.clear()
    runs.clear()
    assert_close(measure(x), expected)
    return candidates, slow[0], ran, measure.plan_for(x.shape)


def test_a_candidate_slow_in_its_first_timed_run_is_timed_again(monkeypatch):
    # The last candidate's first two runs take 1.3 s, its later ones 0.5 s (a path
    # whose time swings from call to call); the others 1 s.  Its first timed run
    # is a slow one, within CONTENDER_FACTOR of the fastest and not the
    # runner-up: a later round times it again and it wins.
    assert 1.3 <= engine_module.CONTENDER_FACTOR
    candidates, swinging, _, chosen = _measure_with_one_slow_start(monkeypatch, -1, 1.3, 2)
    assert len(candidates) >= 3
    assert (chosen.path, chosen.n_fft) == (swinging.path, swinging.n_fft)


def test_the_models_choice_is_timed_again_however_slow_its_first_runs(monkeypatch):
    # The model's choice takes 3 s in its first four runs (fresh memory), 0.5 s
    # after; the others 1 s.  Timed once it looks 3x slower than the fastest, but
    # the later rounds time it again against the fastest, and it wins.
    candidates, model_choice, ran, chosen = _measure_with_one_slow_start(
        monkeypatch, 0, 3.0, 4)
    assert chosen.candidates[0] == model_choice
    later = ran[2 * len(candidates):]
    assert later[:6] == [candidates[1]] * 3 + [candidates[0]] * 3  # the fastest, then it
    assert set(later) == set(candidates)  # the others as close as the fastest too


def test_the_measured_fastest_wins_however_close(monkeypatch):
    # The last candidate takes 0.99 s a run, the others (the model's choice among
    # them) 1 s: 1 % faster, it replaces the model's choice, and its result is
    # the call's.
    last = []
    clock, ran = _fake_runs(monkeypatch, lambda chosen: 0.99 if chosen.candidates[0] == last[0]
                            else 1.0)
    estimate, measure, x = _pair("strided")
    model, candidates = _measurable(measure, x)
    assert len(candidates) >= 2
    last.append(candidates[-1])
    expected = estimate(x)
    ran.clear()
    assert_close(measure(x), expected)
    assert ran[-1] == last[0]  # run once more for the call's result
    assert measure.plan_for(x.shape).candidates[0] == last[0]


def test_no_result_is_held_while_the_candidates_run(monkeypatch):
    # A result kept alive while the next runs allocate theirs makes them fault in
    # memory the process has not touched (up to four times slower): the first
    # run's result, too, is dropped before the timed runs, and the call's result
    # comes from one more run of the winner.
    results, alive_at_run = [], []
    run = Engine._run

    def tracking_run(self, *args, **kwargs):
        alive_at_run.append(sum(r() is not None for r in results))
        y = run(self, *args, **kwargs)
        results.append(weakref.ref(y))
        return y

    estimate, measure, x = _pair("strided")
    expected = estimate(x)
    monkeypatch.setattr(Engine, "_run", tracking_run)
    y = measure(x)
    assert measure.engine.measurements > 1
    assert len(alive_at_run) > 3 and alive_at_run == [0] * len(alive_at_run)
    assert_close(y, expected)


def test_hopeless_candidates_and_forced_methods_are_not_measured():
    _, measure, x = _pair("strided")
    model, candidates = _measurable(measure, x)
    best = model.candidates[0]
    assert candidates[0] == best
    assert all(c.cost_ns <= engine_module.HOPELESS_FACTOR * best.cost_ns for c in candidates)
    assert sum(c.path == "fft" for c in candidates) <= engine_module.MEASURED_FFT_LENGTHS
    assert sum(c.path == "direct" for c in candidates) <= 1
    direct = SignalConv1D(3, 33, corr=True, strides_down=2, padding="same_zeros",
                          method="direct", config=MEASURE, dtype="float64", backend="numpy")
    direct(x)
    assert direct.engine.measurements == 0  # one candidate: nothing to compare
    fft = SignalConv1D(3, 33, corr=True, strides_down=2, padding="same_zeros",
                       method="fft", config=MEASURE, dtype="float64", backend="numpy")
    fft(x)
    chosen = fft.plan_for(x.shape)
    assert chosen.path == "fft" and fft.engine.measurements > 1


def test_the_fft_lengths_timed_are_the_models_cheapest_and_its_nearest(monkeypatch):
    """A 5001-tap kernel on long inputs: the model ranks 131072 third and 16384 fourth;
    where the model errs, the fastest length is a neighbour of its choice, so with
    three lengths timed the neighbours are, not the third cheapest."""
    monkeypatch.setattr(engine_module, "MEASURED_FFT_LENGTHS", 3)
    spec = ConvSpec.from_arguments(5001, False, 1, 1, "valid", None, False)
    model = plan(spec, (3, 9, 326503), np.float32, "numpy", DEFAULT, filters=2)
    by_cost = [c.n_fft for c in measurable_fft_candidates(model.problem, DEFAULT)]
    n = model.n_fft
    assert by_cost[0] == n and 2 * n in by_cost and n // 2 in by_cost
    assert n // 2 not in by_cost[:engine_module.MEASURED_FFT_LENGTHS]  # the case in point
    engine = Engine(spec, 2, backend="numpy", config=MEASURE)
    timed = engine._measurable(model)
    assert timed[0] == model.candidates[0]
    assert {c.n_fft for c in timed if c.path == "fft"} == {n // 2, n, 2 * n}
    assert [c.cost_ns for c in timed[1:]] == sorted(c.cost_ns for c in timed[1:])


def test_fft_lengths_three_octaves_from_the_models_choice_are_timed():
    """A 3391-tap kernel upsampled 4x (847-tap phase kernels), 38 separable
    channels: the model's cheapest length is 32768, the fastest on a 2-core
    machine 4096 (12 % faster in two runs), three octaves away."""
    spec = ConvSpec.from_arguments(3391, False, 4, 4, "same_zeros", None, True)
    model = plan(spec, (1, 38, 125416), np.float64, "numpy", DEFAULT, filters=1,
                 time_major=True)
    assert model.n_fft == 32768
    timed = Engine(spec, 1, backend="numpy", config=MEASURE)._measurable(model)
    lengths = [c.n_fft for c in timed if c.path == "fft"]
    assert len(lengths) == engine_module.MEASURED_FFT_LENGTHS == 5
    assert {4096, 8192, 16384, 32768, 65536} == set(lengths)


def test_concurrent_first_calls_measure_once():
    estimate, measure, x = _pair("separable")
    expected = estimate(x)
    _, candidates = _measurable(measure, x)
    barrier = threading.Barrier(8)
    results, errors = [None] * 8, []

    def work(i):
        try:
            barrier.wait()
            results[i] = measure(x)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for y in results:
        assert_close(y, expected)
    assert measure.engine.measurements == len(candidates)
    assert measure.engine.plans_made == 1
    assert len(json.loads((plan_wisdom.wisdom_path()).read_text())["plans"]) == 1


def test_functional_forms_take_planning():
    rng = np.random.default_rng(3)
    signal, taps = rng.standard_normal((4, 3000)), rng.standard_normal((1, 200))
    assert_close(convolve(signal, taps, axes=1, planning="measure"),
                 convolve(signal, taps, axes=1, planning="estimate"))
    with pytest.raises(ValueError, match="`planning` must be one of"):
        convolve(signal, taps, axes=1, planning="patient")


# -- arguments and configuration ------------------------------------------------

@pytest.mark.parametrize("value", ["patient", "MEASURE", 1, ""])
def test_planning_argument_is_validated(value):
    message = re.escape("`planning` must be one of ('estimate', 'measure') or None")
    with pytest.raises(ValueError, match=message):
        SignalConv1D(1, 3, planning=value)
    with pytest.raises(ValueError, match=message):
        Engine(ConvSpec(3), 1, planning=value)


def test_planning_round_trips_through_get_config():
    layer = SignalConv1D(2, 5, planning="measure")
    config = json.loads(json.dumps(layer.get_config()))
    assert config["planning"] == "measure"
    assert SignalConv1D.from_config(config).engine.planning == "measure"
    default = SignalConv1D(2, 5)
    assert default.get_config()["planning"] is None
    assert default.engine.planning == DEFAULT.planner.planning == "estimate"


def test_default_planner_section():
    assert DEFAULT.planner == type(DEFAULT.planner)(planning="estimate", measure_seconds=4.0,
                                                    save_wisdom=True)
    assert "[planner]" in DEFAULT.to_toml()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: _set(t, "planning", '"fast"'),
     r"key 'planner.planning' must be one of \('estimate', 'measure'\), got 'fast'"),
    (lambda t: _set(t, "measure_seconds", "-1.0"),
     "key 'planner.measure_seconds' must be a finite number >= 0, got -1.0"),
    (lambda t: _set(t, "measure_seconds", "nan"),
     "key 'planner.measure_seconds' must be a finite number >= 0, got nan"),
    (lambda t: _set(t, "measure_seconds", '"2s"'),
     "key 'planner.measure_seconds' must be of type float"),
    (lambda t: _set(t, "planning", "true"), "key 'planner.planning' must be of type str"),
    (lambda t: t.replace("[planner]", "[planner]\nbogus = 1"),
     "unknown key 'planner.bogus'"),
    (lambda t: re.sub(r"(?m)^measure_seconds = .*\n", "", t),
     "missing key 'planner.measure_seconds'"),
    (lambda t: t[:t.index("[planner]")], r"missing section \[planner\]"),
])
def test_bad_planner_config_names_file_and_key(tmp_path, edit, message):
    path = tmp_path / "model.toml"
    path.write_text(edit(DEFAULT.to_toml()))
    with pytest.raises(ValueError, match=message) as info:
        read_config(path)
    assert str(info.value).startswith(f"{path}: ")
    with pytest.raises(ValueError, match=message):
        SignalConv1D(1, 3, config=str(path))


def _set(text, key, value):
    """`text` with the line of `key` (a TOML key) replaced by ``key = value``."""
    edited, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    assert count == 1, key
    return edited


def test_machine_id_and_key_name_what_timings_depend_on():
    machine = plan_wisdom.machine_id()
    assert machine == plan_wisdom.machine_id() and "CPUs" in machine
    _, measure, x = _pair("strided")
    model, _ = _measurable(measure, x)
    key = plan_wisdom.wisdom_key(model.problem, "numpy", 1, "auto")
    assert key.startswith("numpy|threads=1|float64|") and machine in key
    assert key != plan_wisdom.wisdom_key(model.problem, "numpy", 2, "auto")
    assert key != plan_wisdom.wisdom_key(model.problem, "numpy", 1, "fft")
    smaller = dataclasses.replace(model.problem, batch=1)
    assert key != plan_wisdom.wisdom_key(smaller, "numpy", 1, "auto")


def test_wisdom_file_is_bounded(wisdom_dir, monkeypatch):
    monkeypatch.setattr(plan_wisdom, "MAX_ENTRIES", 2)
    _write_wisdom(wisdom_dir, {"old": {"path": "direct", "n_fft": 0, "saved": 1.0},
                               "older": {"path": "direct", "n_fft": 0, "saved": 0.5}})
    assert plan_wisdom.remember("new", "fft", 64, {"fft 64": 1e-3}, save=True)
    saved = json.loads((wisdom_dir / plan_wisdom.WISDOM_FILE).read_text())["plans"]
    assert sorted(saved) == ["new", "old"]
    assert plan_wisdom.lookup("older") == ("direct", 0)  # this process had read it


def test_measuring_a_long_input_times_the_long_lengths_neighbours():
    # On a long input the planner lists one FFT length; measuring also times
    # half and twice it (the model's optimum is often off by that much).
    from fftconv.planner import Problem, fft_lengths, long_fft_length, measurable_fft_candidates

    p = Problem(batch=1, groups=1, in_channels=1, out_channels=1, kernel_length=1000,
                outputs=10**6, itemsize=8)
    n_long = long_fft_length(p, MEASURE)
    assert fft_lengths(p, MEASURE).tolist() == [n_long]
    lengths = {c.n_fft for c in measurable_fft_candidates(p, MEASURE)}
    assert lengths == {n_long // 2, n_long, 2 * n_long}
    layer = SignalConv1D(1, 1000, corr=True, padding="valid", config=MEASURE, planning="measure")
    model = plan(layer.spec, (1, 1, 10**6 + 999), np.float64, "pyfftw", MEASURE, filters=1)
    timed = [c for c in layer.engine._measurable(model) if c.path == "fft"]
    assert len(timed) >= 2 and model.n_fft in {c.n_fft for c in timed}


def test_neighbours_beyond_the_spectra_budget_are_not_timed():
    from fftconv.planner import Problem, long_fft_length, measurable_fft_candidates

    p = Problem(batch=1, groups=1, in_channels=1, out_channels=1, kernel_length=1000,
                outputs=10**6, itemsize=8)
    n_long = long_fft_length(p, MEASURE)
    tight = dataclasses.replace(MEASURE, memory=dataclasses.replace(
        MEASURE.memory, spectra_bytes=(n_long // 2 + 1) * 16))
    assert max(c.n_fft for c in measurable_fft_candidates(p, tight)) == n_long
