"""`fftconv demo`, run as the installed console script, and its signal generators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile

from fftconv import demo

SCRIPT = Path(sys.executable).parent / "fftconv"
# One length for every run, so that later runs reuse the FFTW wisdom of the first.
SECONDS, SEED = 1.0, 3
FRAMES = round(SECONDS * demo.SAMPLERATE)
IR_FRAMES = round(demo.IR_SECONDS * demo.SAMPLERATE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: float32 FFTs and float32 samples: agreement to this fraction of max|y|.
RTOL = 1e-5


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fftconv.cli"]
    return subprocess.run(command + ["demo", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal shapes, values within :data:`RTOL` of ``max|expected|``."""
    assert actual.shape == expected.shape
    error = np.max(np.abs(actual - expected))
    assert error <= RTOL * np.max(np.abs(expected)), error


def read(path: Path) -> np.ndarray:
    return soundfile.read(path, dtype="float64", always_2d=True)[0]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One run with default output directory (the current one) and a short signal."""
    directory = tmp_path_factory.mktemp("demo")
    out = run("--seconds", str(SECONDS), "--seed", str(SEED), cwd=directory)
    assert out.returncode == 0, out.stderr
    return directory, out


@pytest.mark.slow
def test_demo_prints_the_plan_times_and_files(demo_run):
    directory, out = demo_run
    text = out.stdout
    assert "Plan: fft" in text and "candidates (estimated):" in text
    assert "first call" in text and "includes planning" in text and "repeat call" in text
    assert "scipy.signal.oaconvolve" in text and ": same output" in text
    assert "max |fftconv - oaconvolve| = " in text
    for name in (demo.DRY_FILE, demo.IR_FILE, demo.WET_FILE):
        assert f"  {name}  " in text
    assert out.stderr == ""


@pytest.mark.slow
def test_demo_writes_the_wavs(demo_run):
    directory, _ = demo_run
    for name, frames in [(demo.DRY_FILE, FRAMES), (demo.IR_FILE, IR_FRAMES),
                         (demo.WET_FILE, FRAMES + IR_FRAMES - 1)]:
        info = soundfile.info(str(directory / name))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            demo.SAMPLERATE, 2, frames, "FLOAT"), name


@pytest.mark.slow
def test_demo_writes_the_generated_signals(demo_run):
    directory, _ = demo_run
    dry = read(directory / demo.DRY_FILE)
    ir = read(directory / demo.IR_FILE)
    expected_dry = demo.demo_signal(SECONDS, demo.SAMPLERATE, SEED).astype(np.float32)
    expected_ir = demo.room_impulse_response(demo.IR_SECONDS, demo.SAMPLERATE, SEED)
    np.testing.assert_array_equal(dry, expected_dry)
    np.testing.assert_array_equal(ir, expected_ir.astype(np.float32))


@pytest.mark.slow
def test_demo_wet_is_the_full_convolution(demo_run):
    directory, _ = demo_run
    dry = read(directory / demo.DRY_FILE)
    ir = read(directory / demo.IR_FILE)
    wet = read(directory / demo.WET_FILE)
    reference = scipy.signal.fftconvolve(dry, ir, axes=0)
    peak = 10.0 ** (demo.PEAK_DBFS / 20.0)
    assert_close(wet, reference * (peak / np.max(np.abs(reference))))


@pytest.mark.slow
def test_demo_writes_a_png(demo_run):
    image = pytest.importorskip("matplotlib.image")
    directory, out = demo_run
    path = directory / demo.PLOT_FILE
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 500 and pixels.shape[1] > 500
    assert f"  {demo.PLOT_FILE}  " in out.stdout


@pytest.mark.slow
def test_demo_without_matplotlib(tmp_path):
    # None in sys.modules makes every import of matplotlib fail, as if not installed.
    args = ["demo", "--seconds", str(SECONDS), "--output-dir", str(tmp_path)]
    code = ("import sys; sys.modules['matplotlib'] = None; from fftconv.cli import main; "
            f"sys.exit(main({args!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert demo.NO_MATPLOTLIB_NOTE in out.stdout
    assert "pip install matplotlib" in out.stdout
    assert sorted(os.listdir(tmp_path)) == sorted([demo.DRY_FILE, demo.IR_FILE, demo.WET_FILE])


@pytest.mark.slow
def test_run_demo_without_plot(tmp_path):
    lines: list[str] = []
    result = demo.run_demo(tmp_path / "new" / "dir", seconds=SECONDS, plot=False, seed=1,
                           log=lines.append)
    directory = tmp_path / "new" / "dir"
    assert result.files == tuple(str(directory / name)
                                 for name in (demo.DRY_FILE, demo.IR_FILE, demo.WET_FILE))
    assert sorted(os.listdir(directory)) == sorted([demo.DRY_FILE, demo.IR_FILE, demo.WET_FILE])
    assert result.plot_note is None and result.agrees
    assert (result.dry_frames, result.ir_frames, result.wet_frames) == (
        FRAMES, IR_FRAMES, FRAMES + IR_FRAMES - 1)
    assert result.first_call > 0 and result.repeat_call > 0 and result.scipy_call > 0
    assert str(result.plan) in "\n".join(lines)
    assert not any(demo.NO_MATPLOTLIB_NOTE in line for line in lines)


@pytest.mark.parametrize(("args", "message"), [
    (["--seconds", "0"], "`seconds` must be between"),
    (["--seconds", "nan"], "`seconds` must be finite"),
    (["--seconds", "1e6"], "`seconds` must be between"),
    (["--seconds", "four"], "argument --seconds: invalid float value"),
    (["--seed", "-1"], "`seed` must be a non-negative integer"),
    (["--seed", "1.5"], "argument --seed: invalid int value"),
])
def test_demo_rejects_bad_values(tmp_path, args, message):
    out = run("--output-dir", str(tmp_path), *args)
    assert out.returncode == 2
    assert out.stderr.startswith("fftconv demo: error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("target", "message"), [
    ("file", "is a file"),
    ("file/sub", "cannot be created"),
])
def test_demo_rejects_an_output_dir_that_is_a_file(tmp_path, target, message):
    (tmp_path / "file").write_text("not a directory")
    out = run("--output-dir", str(tmp_path / target))
    assert out.returncode == 2
    assert out.stderr.startswith("fftconv demo: error: `output_dir` ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["file"] and out.stdout == ""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not stop root")
def test_demo_rejects_an_unwritable_output_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    out = run("--output-dir", str(locked))
    assert out.returncode == 2
    assert "is not writable" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_run_demo_reports_an_unwritable_output_dir(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(demo.tempfile, "TemporaryFile", refuse)
    with pytest.raises(ValueError, match="`output_dir` .* is not writable: Permission denied"):
        demo.run_demo(tmp_path, log=None)
    assert os.listdir(tmp_path) == []


def test_generators_are_deterministic():
    a = demo.demo_signal(0.5, demo.SAMPLERATE, seed=7)
    np.testing.assert_array_equal(a, demo.demo_signal(0.5, demo.SAMPLERATE, seed=7))
    assert not np.array_equal(a, demo.demo_signal(0.5, demo.SAMPLERATE, seed=8))
    assert a.shape == (24000, 2) and a.dtype == np.float64
    assert np.isclose(np.max(np.abs(a)), 10.0 ** (demo.PEAK_DBFS / 20.0))
    h = demo.room_impulse_response(0.5, demo.SAMPLERATE, seed=7)
    np.testing.assert_array_equal(h, demo.room_impulse_response(0.5, demo.SAMPLERATE, seed=7))
    assert h.shape == (24000, 2)
    assert not np.array_equal(h[:, 0], h[:, 1])  # its own noise per channel
    assert np.isclose(np.sqrt(np.sum(h**2, axis=0)).max(), 1.0)


def test_room_decays_faster_at_high_frequencies():
    h = demo.room_impulse_response(seed=0)[:, 0]
    late = slice(round(0.5 * demo.SAMPLERATE), None)
    spectrum_all = np.abs(np.fft.rfft(h)) ** 2
    spectrum_late = np.abs(np.fft.rfft(h[late], h.size)) ** 2
    frequency = np.fft.rfftfreq(h.size, 1.0 / demo.SAMPLERATE)
    low, high = frequency < 500, frequency > 4000
    # The share of each band's energy left after 0.5 s.
    assert (spectrum_late[low].sum() / spectrum_all[low].sum()
            > 10 * spectrum_late[high].sum() / spectrum_all[high].sum())
