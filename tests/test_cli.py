"""The ``fftconv`` command line, run as the installed console script."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fftconv import cli
from fftconv.config import load_config, read_config

DEFAULT = load_config()
SCRIPT = Path(sys.executable).parent / "fftconv"


def run(*args: str) -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fftconv.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=120)


def test_plan_from_flags():
    out = run("plan", "--filters", "1", "--kernel-support", "8191", "--corr",
              "--input-shape", "4,1048576,1")
    assert out.returncode == 0, out.stderr
    assert "Plan: fft" in out.stdout and "direct" in out.stdout
    assert "(4, 1040386, 1)" in out.stdout  # valid output shape


def test_plan_from_json_file(tmp_path):
    layer = {"filters": 64, "kernel_support": 9, "corr": True, "strides_down": 2,
             "padding": "same_zeros", "data_format": "channels_first"}
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(layer))
    out = run("plan", "--layer", str(path), "--input-shape", "32,64,4096")
    assert out.returncode == 0, out.stderr
    assert "candidates" in out.stdout and "(32, 64, 2048)" in out.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--filters", "1", "--input-shape", "1,100,1"], "`kernel_support` is required"),
    (["--filters", "1", "--kernel-support", "9", "--padding", "same", "--input-shape",
      "1,100,1"], "`padding`"),
    (["--filters", "1", "--kernel-support", "9", "--input-shape", "1,4,1"], "too short"),
    (["--filters", "1", "--kernel-support", "9", "--input-shape", "1,100,1", "--config",
      "/nonexistent.toml"], "/nonexistent.toml"),
    (["--filters", "1", "--kernel-support", "3", "--input-shape", "1,10,0"],
     "argument --input-shape: need three positive sizes (>= 1), got '1,10,0'"),
    (["--filters", "1", "--kernel-support", "3", "--input-shape", "0,10,1"],
     "argument --input-shape: need three positive sizes"),
])
def test_plan_errors(args, message):
    out = run("plan", *args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_plan_refuses_a_config_with_nan_costs(tmp_path):
    path = tmp_path / "nan.toml"
    path.write_text(re.sub(r"(?m)^ns_per_nlogn = .*$", "ns_per_nlogn = nan", DEFAULT.to_toml()))
    out = run("plan", "--filters", "1", "--kernel-support", "9", "--input-shape", "1,100,1",
              "--config", str(path))
    assert out.returncode == 2 and "nan ms" not in out.stdout
    assert out.stderr == (f"fftconv plan: error: {path}: key 'fft.ns_per_nlogn' must be a "
                          "finite number > 0, got nan.\n")


@pytest.mark.slow
def test_tune_writes_a_loadable_config(tmp_path):
    path = tmp_path / "tuned.toml"
    path.write_text(DEFAULT.to_toml())  # an existing configuration is replaced
    out = run("tune", "--output", str(path), "--repeat", "1", "--suite", "tiny")
    assert out.returncode == 0, out.stderr
    tuned = read_config(path)
    assert tuned.fft.ns_per_nlogn > 0 and tuned.direct.ns_per_mac > 0
    assert tuned.fft != DEFAULT.fft
    assert "fft.ns_per_nlogn" in out.stderr and "suite tiny" in out.stderr
    assert dict(tuned.machine)["suite"] == "tiny"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize("repeat", ["0", "-2", "two"])
def test_tune_refuses_repeat_below_one(tmp_path, repeat):
    path = tmp_path / "tuned.toml"
    out = run("tune", "--output", str(path), "--repeat", repeat)
    assert out.returncode == 2 and not path.exists()
    assert "argument --repeat:" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("repeat", "error"), [(0, ValueError), (-1, ValueError),
                                               (1.5, TypeError), (True, TypeError)])
def test_measure_config_refuses_repeat_below_one(repeat, error):
    from fftconv.tune_micro import measure_config

    with pytest.raises(error, match=r"`repeat` must be an integer >= 1"):
        measure_config(DEFAULT, repeat=repeat, log=lambda line: None)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 0.0])
def test_measure_config_never_returns_a_non_finite_constant(monkeypatch, seconds):
    from fftconv import tune_micro

    monkeypatch.setattr(tune_micro, "_median_seconds", lambda fn, repeat: seconds)
    with pytest.raises(RuntimeError, match=r"measured fft\.ns_per_nlogn = .* is not a finite "
                                           r"number > 0"):
        tune_micro.measure_config(DEFAULT, repeat=1, log=lambda line: None)


@pytest.mark.parametrize("large_row_bytes", [524288, 0])
def test_measure_config_times_rows_beyond_the_cache_for_the_large_rate(monkeypatch,
                                                                        large_row_bytes):
    from fftconv import tune_micro

    timed = []

    def rate(backend, lengths, repeat, log):
        timed.append(list(lengths))
        return 0.5 if lengths == tune_micro.FFT_LENGTHS else 0.75

    monkeypatch.setattr(tune_micro, "_fft_ns_per_nlogn", rate)
    base = dataclasses.replace(DEFAULT, fft=dataclasses.replace(
        DEFAULT.fft, large_row_bytes=large_row_bytes))
    measured = tune_micro.measure_config(base, repeat=1, log=lambda line: None)
    assert measured.fft.ns_per_nlogn == 0.5
    if large_row_bytes:  # float32 rows of 1 and 2 MB
        assert timed == [list(tune_micro.FFT_LENGTHS), [262144, 524288]]
        assert measured.fft.large_ns_per_nlogn == 0.75
    else:  # no large rows: the rate is kept
        assert timed == [list(tune_micro.FFT_LENGTHS)]
        assert measured.fft.large_ns_per_nlogn == DEFAULT.fft.large_ns_per_nlogn
    assert measured.fft.large_row_bytes == large_row_bytes


# -- tune's output file (measurements replaced by a stand-in) -----------------

@pytest.fixture
def measured(monkeypatch):
    """Replace the measurements by the base configuration; records the calls."""
    calls = []

    from fftconv import tune, tune_fit

    def fake(base, suite="quick", repeat=5, seed=0, log=print):
        calls.append(repeat)
        config = dataclasses.replace(base, fft=dataclasses.replace(base.fft, ns_per_nlogn=0.5),
                                     source="<measured>")
        stats = tune_fit.RegretStats(1.0, 1.0, 1.0)
        return tune.TuneResult(config=config, suite=suite, problems=1, timings=2,
                               regret={"fitted": stats}, seconds=0.1, backend="pyfftw")

    monkeypatch.setattr("fftconv.tune.tune_config", fake)
    return calls


def _tune(capsys, *args):
    status = cli.main(["tune", *args])
    return status, capsys.readouterr().err


def test_tune_does_not_replace_a_file_that_is_not_a_config(tmp_path, capsys, measured):
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    status, err = _tune(capsys, "--output", str(path))
    assert status == 2 and path.read_text() == "my notes\n" and measured == []
    assert err == (f"fftconv tune: error: --output {path} exists and is not a fftconv "
                   "configuration; use --force to replace it.\n")
    assert _tune(capsys, "--output", str(path), "--force")[0] == 0
    assert read_config(path).fft.ns_per_nlogn == 0.5


def test_tune_replaces_an_existing_config(tmp_path, capsys, measured):
    path = tmp_path / "tuned.toml"
    path.write_text(DEFAULT.to_toml())
    path.chmod(0o640)
    assert _tune(capsys, "--output", str(path))[0] == 0
    assert read_config(path).fft.ns_per_nlogn == 0.5
    assert path.stat().st_mode & 0o777 == 0o640  # the replaced file's permissions are kept
    assert list(tmp_path.iterdir()) == [path]


def test_tune_new_file_has_ordinary_permissions(tmp_path, capsys, measured):
    path = tmp_path / "tuned.toml"
    assert _tune(capsys, "--output", str(path))[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("output", ["existing", "existing/", "new/", "missing/tuned.toml"])
def test_tune_refuses_a_directory_or_a_missing_one(tmp_path, capsys, measured, output):
    (tmp_path / "existing").mkdir()
    status, err = _tune(capsys, "--output", f"{tmp_path}/{output}", "--force")
    assert status == 2 and measured == []
    assert ("is a directory" in err or "does not exist" in err) and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert list((tmp_path / "existing").iterdir()) == []


def test_interrupted_tune_leaves_the_old_file_and_no_partial_one(tmp_path, capsys, measured,
                                                                 monkeypatch):
    path = tmp_path / "tuned.toml"
    path.write_text(DEFAULT.to_toml())

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    status, err = _tune(capsys, "--output", str(path))
    assert status == 130 and "interrupted" in err
    assert path.read_text() == DEFAULT.to_toml()
    assert list(tmp_path.iterdir()) == [path]
    path.unlink()
    assert _tune(capsys, "--output", str(path))[0] == 130
    assert list(tmp_path.iterdir()) == []


def test_tune_writes_nothing_when_a_measurement_fails(tmp_path, capsys, monkeypatch):
    def failed(base, repeat=5, log=print):
        raise RuntimeError("measured fft.ns_per_nlogn = nan is not a finite number > 0.")

    monkeypatch.setattr("fftconv.tune.measure_config", failed)
    path = tmp_path / "tuned.toml"
    status, err = _tune(capsys, "--output", str(path))
    assert status == 2 and not path.exists()
    assert err.startswith("fftconv tune: error: measured fft.ns_per_nlogn = nan")
    assert "Nothing was written" in err and err.count("\n") == 1
