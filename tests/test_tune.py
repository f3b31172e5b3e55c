"""``fftconv tune``: the user profile and its precedence, the suite, the fit, the file."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fftconv import planner, tune, tune_fit, tune_suite
from fftconv.config import (
    config_origin,
    describe_config,
    load_config,
    parse_config,
    read_config,
    user_config_directory,
    user_profile_path,
)
from fftconv.layer import SignalConv1D

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DEFAULT = load_config(user_profile=False)
SCRIPT = Path(sys.executable).parent / "fftconv"
PLAN_ARGS = ("plan", "--filters", "1", "--kernel-support", "9", "--input-shape", "1,100,1")


def _with(config, **sections):
    """`config` with some keys of some sections replaced: ``fft={'ns_per_nlogn': 1.0}``."""
    return dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name),
                                                                    **values)
                                          for name, values in sections.items()})


def _write(path: Path, config=DEFAULT, **fft) -> Path:
    path.write_text(_with(config, fft=fft).to_toml() if fft else config.to_toml())
    return path


def _command(*args: str) -> list[str]:
    return ([str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fftconv.cli"]) + [
        *args]


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """An empty user configuration directory, and no FFTCONV_CONFIG."""
    directory = tmp_path / "config-home"
    directory.mkdir()
    monkeypatch.setenv("FFTCONV_CONFIG_DIR", str(directory))
    monkeypatch.delenv("FFTCONV_CONFIG", raising=False)
    return directory


# -- where the configuration comes from ------------------------------------------


def test_tests_run_without_a_user_profile():
    # conftest.py points FFTCONV_CONFIG_DIR at an empty directory for the session.
    assert not user_profile_path().exists()
    assert load_config() == DEFAULT and config_origin() == ("default", None)


def test_precedence_argument_then_environment_then_profile_then_default(tmp_path, config_dir,
                                                                        monkeypatch):
    profile = _write(config_dir / "profile.toml", ns_per_nlogn=2.0)
    env = _write(tmp_path / "env.toml", ns_per_nlogn=3.0)
    argument = _write(tmp_path / "argument.toml", ns_per_nlogn=4.0)

    assert load_config().fft.ns_per_nlogn == 2.0
    assert config_origin() == ("user profile", profile)
    monkeypatch.setenv("FFTCONV_CONFIG", str(env))
    assert load_config().fft.ns_per_nlogn == 3.0
    assert config_origin() == ("FFTCONV_CONFIG", env)
    assert load_config(argument).fft.ns_per_nlogn == 4.0
    assert config_origin(str(argument)) == ("argument", argument)
    assert load_config(DEFAULT) is DEFAULT

    monkeypatch.delenv("FFTCONV_CONFIG")
    profile.unlink()
    assert load_config() == DEFAULT and config_origin() == ("default", None)


def test_layers_pick_up_the_user_profile(config_dir):
    _write(config_dir / "profile.toml", ns_per_nlogn=2.0)
    layer = SignalConv1D(1, 9)
    assert layer.engine.config.fft.ns_per_nlogn == 2.0
    assert layer.engine.config.source == str(config_dir / "profile.toml")


def test_user_config_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FFTCONV_CONFIG_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_config_directory() == tmp_path / "explicit"
    monkeypatch.delenv("FFTCONV_CONFIG_DIR")
    assert user_profile_path() == tmp_path / "xdg" / "fftconv" / "profile.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert user_config_directory() == tmp_path / "home" / ".config" / "fftconv"


@pytest.mark.parametrize("content", ["[fft]\nns_per_nlogn = 1.0\n", "not toml ]]", "dir"])
def test_an_invalid_user_profile_is_an_error_naming_it(config_dir, content):
    profile = config_dir / "profile.toml"
    if content == "dir":
        profile.mkdir()
    else:
        profile.write_text(content)
    for load in (load_config, lambda: SignalConv1D(1, 9)):
        with pytest.raises(ValueError) as info:
            load()
        assert str(info.value).startswith(f"{profile}: ")
        assert "user profile" in str(info.value)
    assert load_config(user_profile=False) == DEFAULT  # what `fftconv tune` starts from


def test_describe_config_names_the_file_and_the_reason(tmp_path, config_dir, monkeypatch):
    assert describe_config().startswith("config: packaged default (default: ")
    profile = _write(config_dir / "profile.toml")
    assert describe_config() == f"config: {profile} (user profile)"
    monkeypatch.setenv("FFTCONV_CONFIG", str(tmp_path / "env.toml"))
    assert describe_config() == f"config: {tmp_path / 'env.toml'} (FFTCONV_CONFIG)"
    assert describe_config("x.toml") == "config: x.toml (argument)"


# -- the [machine] table --------------------------------------------------------------


def test_machine_table_is_kept_and_round_trips(tmp_path):
    machine = (("cpu", 'Some "CPU" \\ model'), ("cores", 2), ("regret", 1.5), ("ok", True))
    config = dataclasses.replace(DEFAULT, machine=machine)
    path = tmp_path / "tuned.toml"
    path.write_text(config.to_toml())
    loaded = read_config(path)
    assert loaded.machine == machine
    assert dataclasses.replace(loaded, source=DEFAULT.source, machine=()) == DEFAULT


@pytest.mark.parametrize(("data", "message"), [
    ({"machine": {"cpu": {"nested": 1}}}, "key 'machine.cpu' must be a string, number"),
    ({"machine": {"cores": [1, 2]}}, "key 'machine.cores' must be a string, number"),
    ({"machine": 3}, "'machine' must be a table"),
    ({"fft": {"extra": 1.0}}, "unknown key 'fft.extra'"),  # cost sections stay strict
])
def test_machine_table_holds_scalars_only(data, message):
    document = tomllib.loads(DEFAULT.to_toml())
    for name, table in data.items():
        if isinstance(table, dict) and name in document:
            document[name].update(table)
        else:
            document[name] = table
    with pytest.raises(ValueError, match=message):
        parse_config(document, "test.toml")


def test_a_profile_missing_a_newer_constant_says_to_tune_again():
    document = tomllib.loads(dataclasses.replace(DEFAULT, machine=(("cores", 2),)).to_toml())
    del document["fft"]["spectra_ns_per_byte"]
    with pytest.raises(ValueError, match=r"missing key 'fft.spectra_ns_per_byte' \(a profile "
                       r"written by an earlier `fftconv tune`\? Run `fftconv tune` again"):
        parse_config(document, "profile.toml")
    del document["machine"]  # a hand-written file: no guess about where it came from
    with pytest.raises(ValueError, match=r"missing key 'fft.spectra_ns_per_byte'\.$"):
        parse_config(document, "config.toml")


# -- the suite and the fit (no timing) ------------------------------------------------


def test_suite_is_seeded_and_within_its_bounds():
    first = tune_suite.make_suite("quick", DEFAULT, seed=3)
    assert first == tune_suite.make_suite("quick", DEFAULT, seed=3) != tune_suite.make_suite(
        "quick", DEFAULT, seed=4)
    size = tune_suite.SUITES["quick"]
    assert len(first) == size.cases
    for case in first:
        a = case.arguments
        assert 1 <= a["kernel_support"] <= 30000
        assert 1 <= a["strides_up"] <= 4 and 1 <= a["strides_down"] <= 4
        b, c, w = case.channels_first_shape
        assert 1 <= b <= 8 and 1 <= c <= 64 and 1 <= a["filters"] <= 64
        assert w <= 1 << 20 and tune_suite._case_bytes(case) <= size.max_bytes
        problem = case.problem()
        assert min(tune_suite.candidate_costs(problem, DEFAULT).values()) <= size.case_seconds * 1e9
        keys = tune_suite._timed_candidates(problem, DEFAULT, size)
        assert 1 <= len([k for k in keys if k[0] == "fft"]) <= size.fft_lengths
    layers = [c.arguments for c in tune_suite.make_suite("full", DEFAULT)]
    for name, values in [("dtype", {"float32", "float64"}), ("channel_separable", {True, False}),
                         ("data_format", {"channels_last", "channels_first"})]:
        assert {a[name] for a in layers} == values


def test_each_suite_candidate_waits_for_idle_worker_threads(monkeypatch):
    # The candidate timed after the direct path's GEMMs took up to twice its
    # time while their worker threads spun: every candidate's turn waits first.
    events = []
    monkeypatch.setattr(tune_suite, "wait_for_idle_threads", lambda: events.append("wait"))
    monkeypatch.setattr(tune_suite, "_run_seconds",
                        lambda engine, chosen, *args: events.append((chosen.path, chosen.n_fft))
                        or 0.001)
    size = tune_suite.SUITES["tiny"]
    case = next(c for c in tune_suite.make_suite("tiny", DEFAULT)
                if len(tune_suite._timed_candidates(c.problem(), DEFAULT, size)) >= 2)
    keys = tune_suite._timed_candidates(case.problem(), DEFAULT, size)
    seconds, _ = tune_suite.time_case(case, keys, DEFAULT, 3, size)
    assert set(seconds) == set(keys)
    turns = [i for i, e in enumerate(events) if e == "wait"]
    assert len(turns) == 4 * len(keys)  # the warm-up round and three timed ones
    for i in turns:  # a turn: one run (warm-up) or two of the same candidate
        run = events[i + 1:i + 3] if i + 2 < len(events) and events[i + 2] != "wait" \
            else events[i + 1:i + 2]
        assert len(set(run)) == 1 and "wait" not in run


def _synthetic(truth, cases):
    """Times of every candidate the planner lists under `truth`, as if measured."""
    out = []
    for case in cases:
        problem = case.problem()
        costs = tune_suite.candidate_costs(problem, truth)
        seconds = {k: ns / 1e9 for k, ns in costs.items()}
        out.append(tune_suite.Measurement(problem, seconds, str(case)))
    return out


# Another machine: slower transforms and chunks, faster products, a slower GEMM.
TRUTH = _with(DEFAULT,
              fft={"ns_per_nlogn": DEFAULT.fft.ns_per_nlogn * 2,
                   "large_ns_per_nlogn": DEFAULT.fft.large_ns_per_nlogn * 2,
                   "call_overhead_ns": DEFAULT.fft.call_overhead_ns * 3,
                   "product_ns_per_mac": DEFAULT.fft.product_ns_per_mac * 0.4},
              direct={"ns_per_mac": DEFAULT.direct.ns_per_mac * 6})


def test_fit_recovers_the_choices_of_a_known_cost_model():
    measured = _synthetic(TRUTH, tune_suite.make_suite("quick", DEFAULT, seed=2)[:12])
    suite = tune_fit.SuiteRegret(measured, DEFAULT)
    assert np.all(suite.regrets(TRUTH) == 1.0)
    fit = tune_fit.fit_constants(suite, DEFAULT, log=lambda line: None, max_evaluations=240)
    assert fit.before.p90 > 1.2 and fit.before.worst > 3  # the default model chooses badly
    assert fit.after.median == 1.0 and fit.after.worst < 1.02
    assert np.all(suite.regrets(fit.config) < 1.02)
    ns, large = fit.factors["fft.ns_per_nlogn"], fit.factors["fft.large_ns_per_nlogn"]
    assert ns != 1.0 and large == pytest.approx(ns, rel=1e-5)  # tied to the other rate
    assert fit.evaluations <= 240 + 10  # the budget, and a few scores outside the search


def test_fit_changes_only_the_fitted_constants():
    measured = _synthetic(TRUTH, tune_suite.make_suite("quick", DEFAULT, seed=1)[:6])
    fit = tune_fit.fit_constants(measured, DEFAULT, log=lambda line: None, max_evaluations=60)
    # Deterministic: the same measurements give the same fit.
    again = tune_fit.fit_constants(measured, DEFAULT, log=lambda line: None, max_evaluations=60)
    assert again.config == fit.config and again.after == fit.after
    fitted = {f"{s}.{k}" for s, k in [*tune_fit.FITTED_CONSTANTS, *tune_fit.TIED_CONSTANTS]}
    assert set(fit.factors) <= fitted
    # The transform rate beyond the cache keeps its ratio to the other.
    assert fit.factors["fft.large_ns_per_nlogn"] == pytest.approx(fit.factors["fft.ns_per_nlogn"],
                                                                  rel=1e-5)
    for section in dataclasses.fields(DEFAULT):
        values = getattr(DEFAULT, section.name)
        if not dataclasses.is_dataclass(values):
            continue
        for f in dataclasses.fields(values):
            if f"{section.name}.{f.name}" not in fitted:
                assert getattr(getattr(fit.config, section.name), f.name) == getattr(values,
                                                                                     f.name)
    for name, factor in fit.factors.items():
        section, key = name.split(".")
        assert 1 / tune_fit.MAX_FACTOR <= factor <= tune_fit.MAX_FACTOR
        value = getattr(getattr(fit.config, section), key)
        assert value == pytest.approx(getattr(getattr(DEFAULT, section), key) * factor)
    assert fit.config.fft.float64_factor >= 1.0


def test_untimed_candidates_are_imputed_pessimistically():
    problem = tune_suite.make_suite("quick", DEFAULT)[2].problem()
    measured = tune_suite.Measurement(problem, {("fft", 1024): 2.0, ("fft", 4096): 1.0})
    suite = tune_fit.SuiteRegret([measured], DEFAULT)
    assert suite.seconds(0, ("fft", 1024)) == 2.0
    assert suite.seconds(0, ("fft", 2048)) == pytest.approx(math.sqrt(2.0))  # log-log
    assert suite.seconds(0, ("fft", 8192)) == pytest.approx(tune_fit.EXTRAPOLATION_PER_OCTAVE)
    assert suite.seconds(0, ("fft", 512)) == pytest.approx(2 * tune_fit.EXTRAPOLATION_PER_OCTAVE)
    assert suite.seconds(0, ("direct", 0)) >= 1.0  # never faster than the fastest timed
    with pytest.raises(ValueError, match=r"`measurements\[0\]\.seconds`"):
        tune_fit.SuiteRegret([tune_suite.Measurement(problem, {})], DEFAULT)


def test_the_fit_costs_the_direct_form_that_was_timed():
    """A channels_last call with 32 -> 4 channels times shifted GEMMs, its
    channels_first twin gathered windows; each measurement is judged by the
    cost of the form it timed (a fit judging shifted GEMMs' times by the
    windows' cost would cut the gather cost to match them)."""
    layer = {"filters": 4, "kernel_support": 8, "corr": True, "strides_down": 1,
             "strides_up": 1, "padding": "valid", "channel_separable": False,
             "dtype": "float32"}
    last = tune_suite.SuiteCase(tuple({**layer, "data_format": "channels_last"}.items()),
                                (1, 100_000, 32), 0)
    first = tune_suite.SuiteCase(tuple({**layer, "data_format": "channels_first"}.items()),
                                 (1, 32, 100_000), 0)
    assert last.problem() == first.problem()
    assert last.direct_variant(DEFAULT) == "direct-shifted"
    assert first.direct_variant(DEFAULT) == "direct-windows"
    seconds = {("direct", 0): 0.01, ("fft", 1024): 0.02}
    suite = tune_fit.SuiteRegret(
        [tune_suite.Measurement(c.problem(), seconds, str(c), c, c.direct_variant(DEFAULT))
         for c in (last, first)], DEFAULT)
    shifted, windows = suite._direct_costs(DEFAULT)
    problem = last.problem()
    assert shifted == planner.direct_cost(problem, DEFAULT, "direct-shifted")
    assert windows == planner.direct_cost(problem, DEFAULT, "direct-windows") > shifted
    cost = tune_suite.candidate_costs(problem, DEFAULT, variant="direct-shifted")
    assert cost[("direct", 0)] == shifted


def test_the_fit_costs_windows_gathered_from_time_major_data_as_the_planner_does():
    problem = planner.Problem(batch=2, groups=1, in_channels=12, out_channels=3,
                              kernel_length=40, outputs=5000, itemsize=4)
    seconds = {("direct", 0): 0.01, ("fft", 1024): 0.02}
    suite = tune_fit.SuiteRegret(
        [tune_suite.Measurement(problem, seconds, "", None, "direct-windows", time_major)
         for time_major in (True, False)], DEFAULT)
    strided, plain = suite._direct_costs(DEFAULT)
    assert strided == planner.direct_cost(problem, DEFAULT, "direct-windows", True) > plain
    assert plain == planner.direct_cost(problem, DEFAULT, "direct-windows", False)
    cost = tune_suite.candidate_costs(problem, DEFAULT, variant="direct-windows",
                                      time_major=True)
    assert cost[("direct", 0)] == strided


def _result(config=DEFAULT):
    stats = tune_fit.RegretStats(1.0, 1.25, 2.5)
    return tune.TuneResult(config=config, suite="quick", problems=20, timings=55,
                           regret={"base": stats, "micro-benchmarks": stats,
                                   "fitted": tune_fit.RegretStats(1.0, 1.0, 1.1)},
                           seconds=42.0, backend="pyfftw", load_average=(0.5, 0.25, 0.1))


def test_profile_text_describes_the_machine_and_loads_back(tmp_path):
    tuned = _with(DEFAULT, fft={"ns_per_nlogn": 0.5})
    text = tune.profile_text(_result(tuned), "fftconv tune --quick", "Read automatically.")
    header = [line for line in text.splitlines() if line.startswith("#")]
    machine = tune.machine_description()
    joined = "\n".join(header)
    for fact in (machine["cpu"], machine["blas"], f"numpy {machine['numpy']}",
                 f"scipy {machine['scipy']}", f"pyfftw {machine['pyfftw']}",
                 f"Python {machine['python']}", f"fftconv {machine['fftconv']}",
                 "1.000 / 1.250 / 2.500", "1.000 / 1.000 / 1.100", "load average 0.50"):
        assert fact in joined
    path = tmp_path / "profile.toml"
    path.write_text(text)
    loaded = read_config(path)
    assert dataclasses.replace(loaded, source=tuned.source, machine=()) == tuned
    record = dict(loaded.machine)
    assert record["cores"] == machine["cores"] and record["suite"] == "quick"
    assert record["regret_fitted"] == "1.000 / 1.000 / 1.100"
    assert record["command"] == "fftconv tune --quick" and record["date"]


# -- the command line ---------------------------------------------------------------


@pytest.fixture
def fake_tune(monkeypatch):
    """Replace the measurements and the fit by a fixed result."""
    calls = []

    def fake(base, suite="quick", repeat=5, seed=0, log=print):
        calls.append(suite)
        return _result(_with(base, fft={"ns_per_nlogn": 0.5}))

    monkeypatch.setattr(tune, "tune_config", fake)
    return calls


def test_tune_writes_the_user_profile_by_default(config_dir, capsys, fake_tune, monkeypatch):
    from fftconv import cli

    target = config_dir / "nested" / "fftconv"  # created by tune
    monkeypatch.setenv("FFTCONV_CONFIG_DIR", str(target))
    assert cli.main(["tune", "--quick"]) == 0
    assert fake_tune == ["quick"]
    profile = target / "profile.toml"
    assert read_config(profile).fft.ns_per_nlogn == 0.5
    assert load_config().fft.ns_per_nlogn == 0.5 and config_origin()[0] == "user profile"
    out = capsys.readouterr().out
    assert f"wrote {profile} (user profile)" in out and "regret fitted" in out
    assert cli.main(["tune"]) == 0 and fake_tune == ["quick", "full"]
    assert sorted(p.name for p in target.iterdir()) == ["profile.toml"]


def test_tune_starts_from_the_default_not_from_the_profile(config_dir, fake_tune, monkeypatch):
    from fftconv import cli

    (config_dir / "profile.toml").write_text("broken")
    seen = []
    monkeypatch.setattr(tune, "tune_config",
                        lambda base, **kw: seen.append(base) or _result(base))
    assert cli.main(["tune", "--force"]) == 0  # a broken profile is replaced with --force
    assert seen == [DEFAULT]
    assert read_config(config_dir / "profile.toml").fft == DEFAULT.fft


def test_tune_refuses_to_replace_a_profile_that_is_not_a_config(config_dir, capsys, fake_tune):
    from fftconv import cli

    profile = config_dir / "profile.toml"
    profile.write_text("my notes\n")
    assert cli.main(["tune"]) == 2 and fake_tune == []
    assert profile.read_text() == "my notes\n"
    err = capsys.readouterr().err
    assert err == (f"fftconv tune: error: the user profile {profile} exists and is not a "
                   "fftconv configuration; use --force to replace it.\n")


def test_failed_write_leaves_the_old_profile_and_no_partial_file(config_dir, fake_tune,
                                                                 monkeypatch, capsys):
    from fftconv import _files, cli

    profile = _write(config_dir / "profile.toml", ns_per_nlogn=2.0)
    old = profile.read_text()

    def failing(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", failing)
    assert cli.main(["tune"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert profile.read_text() == old
    assert sorted(p.name for p in config_dir.iterdir()) == ["profile.toml"]


@pytest.mark.slow
def test_tune_end_to_end_writes_a_profile_that_a_new_process_uses(tmp_path):
    base = _write(tmp_path / "base.toml", _with(DEFAULT, pyfftw={
        "planner_effort": "FFTW_ESTIMATE"}))  # keep FFTW planning out of the test's time
    env = {**os.environ, "FFTCONV_CONFIG_DIR": str(tmp_path / "profile-home")}
    env.pop("FFTCONV_CONFIG", None)
    out = subprocess.run(_command("tune", "--suite", "tiny", "--repeat", "1", "--base",
                                  str(base)),
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    profile = tmp_path / "profile-home" / "profile.toml"
    assert f"wrote {profile} (user profile)" in out.stdout
    assert "case 1/3" in out.stderr and "fit: regret" in out.stderr
    tuned = read_config(profile)
    record = dict(tuned.machine)
    assert record["suite"] == "tiny" and record["problems"] >= 1
    assert tuned.pyfftw.planner_effort == "FFTW_ESTIMATE"
    for name, _ in (("fft", "ns_per_nlogn"), ("direct", "ns_per_mac")):
        assert getattr(tuned, name) != getattr(DEFAULT, name)
    plan = subprocess.run(_command(*PLAN_ARGS), capture_output=True, text=True, timeout=60,
                          env=env)
    assert plan.returncode == 0, plan.stderr
    assert f"config: {profile} (user profile)" in plan.stdout
    assert sorted(p.name for p in profile.parent.iterdir()) == ["profile.toml"]


@pytest.mark.slow
def test_tune_terminated_while_measuring_leaves_the_old_profile(tmp_path):
    home = tmp_path / "profile-home"
    home.mkdir()
    profile = _write(home / "profile.toml", ns_per_nlogn=2.0)
    old = profile.read_text()
    env = {**os.environ, "FFTCONV_CONFIG_DIR": str(home)}
    env.pop("FFTCONV_CONFIG", None)
    process = subprocess.Popen(_command("tune", "--suite", "tiny", "--repeat", "1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    try:
        deadline = time.monotonic() + 60
        for line in process.stderr:  # the first measurement's line: it is measuring now
            if line.startswith("fft N=") or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err
    assert profile.read_text() == old
    assert sorted(p.name for p in home.iterdir()) == ["profile.toml"]
