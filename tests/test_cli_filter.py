"""`fftconv filter`, run as the installed console script on generated WAV and FLAC files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_data import RATE, STEP, assert_audio_close, decaying, noise, read, reference, write

from fftconv import resample_poly

SCRIPT = shutil.which("fftconv", path=str(Path(sys.executable).parent)) or shutil.which("fftconv")


def run(*args: str | Path) -> subprocess.CompletedProcess:
    command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "fftconv.cli"]
    return subprocess.run(command + ["filter", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def succeeded(out: subprocess.CompletedProcess, warns: bool = False
              ) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stderr
    assert ("warning" in out.stderr) == warns, out.stderr
    assert out.stdout.startswith("wrote ") and "x real time" in out.stdout
    return out


@pytest.fixture(params=["wav", "flac"])
def files(request, tmp_path):
    """A stereo input and a mono, a stereo and a true-stereo IR, as WAV or FLAC."""
    ext = request.param
    subtype = "FLOAT" if ext == "wav" else "PCM_24"
    made = {"ext": ext, "subtype": subtype, "dir": tmp_path}
    made["input"] = write(tmp_path / f"in.{ext}", noise(20000, 2, seed=1), subtype=subtype)
    for name, channels in (("mono", 1), ("stereo", 2), ("true", 4)):
        ir = decaying(3000, channels, seed=channels, level=0.02)  # keeps FLAC from clipping
        made[name] = write(tmp_path / f"{name}.{ext}", ir, subtype=subtype)
    return made


@pytest.mark.parametrize(("ir", "length"), [("mono", "same"), ("stereo", "full"),
                                            ("true", "same"), ("true", "full")])
def test_filter_matches_fftconvolve(files, ir, length):
    out = files["dir"] / f"out.{files['ext']}"
    succeeded(run(files["input"], files[ir], out, "--length", length, "--no-progress"))
    assert_audio_close(out, reference(read(files["input"]), read(files[ir]), length),
                       files["subtype"])
    assert sorted(os.listdir(files["dir"])) == sorted(
        [f"{n}.{files['ext']}" for n in ("in", "mono", "stereo", "true", "out")])


def test_mix_gain_and_small_blocks(files):
    out = files["dir"] / "out.wav"
    succeeded(run(files["input"], files["stereo"], out, "--mix", "0.4", "--gain-db", "-3",
                  "--block-size", "700", "--length", "full"))
    expected = reference(read(files["input"]), read(files["stereo"]), "full", mix=0.4,
                         scale=10 ** (-3 / 20))
    assert_audio_close(out, expected)


def test_normalize(files):
    out = files["dir"] / f"out.{files['ext']}"
    result = succeeded(run(files["input"], files["true"], out, "--normalize", "-1",
                           "--no-progress"))
    assert "peak -1.0 dBFS" in result.stdout
    y = read(out)
    assert abs(np.max(np.abs(y)) - 10 ** (-1 / 20)) <= 1e-6 + STEP[files["subtype"]]
    expected = reference(read(files["input"]), read(files["true"]))
    assert_audio_close(out, expected * 10 ** (-1 / 20) / np.max(np.abs(expected)),
                       files["subtype"])


def test_progress_on_stderr_by_default(files):
    out = files["dir"] / "out.wav"
    result = succeeded(run(files["input"], files["mono"], out))
    assert "x real time" in result.stderr and "s [" in result.stderr


def test_pcm16_output_warns_that_it_clips(tmp_path):
    x = write(tmp_path / "in.wav", noise(5000, 2, seed=3))
    ir = write(tmp_path / "ir.wav", np.array([[4.0]]))
    out = tmp_path / "out.wav"
    result = succeeded(run(x, ir, out, "--subtype", "PCM_16", "--no-progress"), warns=True)
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "clipped to fit PCM_16" in warning[0]
    assert warning[0].startswith("fftconv filter: warning: ")
    assert_audio_close(out, np.clip(4 * read(x), -1, 1), "PCM_16")


def test_resample_ir(tmp_path):
    x = write(tmp_path / "in.flac", noise(15000, 2, seed=4), subtype="PCM_24")
    ir = write(tmp_path / "ir.wav", decaying(2000, 2, seed=5), rate=44100)
    out = tmp_path / "out.wav"
    succeeded(run(x, ir, out, "--resample", "--no-progress"))
    resampled = resample_poly(read(ir), 48000, 44100) * (44100 / 48000)
    assert soundfile.info(str(out)).samplerate == 48000
    assert_audio_close(out, reference(read(x), resampled))


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "stereo": write(tmp_path / "in.wav", noise(1000, 2, seed=6)),
        "ir": write(tmp_path / "ir.wav", decaying(100, 1, seed=7)),
        "ir3": write(tmp_path / "ir3.flac", decaying(100, 3, seed=8), subtype="PCM_16"),
        "ir44": write(tmp_path / "ir44.wav", decaying(100, 1, seed=9), rate=44100),
        "empty": write(tmp_path / "empty.wav", np.zeros((0, 2))),
        "garbage": tmp_path / "garbage.flac",
    }
    paths["garbage"].write_bytes(b"fLaC but nothing else that makes sense" * 4)
    return paths


@pytest.mark.parametrize(("case", "message"), [
    (("missing.wav", "ir", "out.wav"), "input file '.*missing.wav' does not exist"),
    (("stereo", "missing.wav", "out.wav"), "IR file '.*missing.wav' does not exist"),
    (("garbage", "ir", "out.wav"), "cannot read input file '.*garbage.flac'"),
    (("stereo", "garbage", "out.wav"), "cannot read IR file '.*garbage.flac'"),
    (("empty", "ir", "out.wav"), "input file '.*empty.wav' has no samples"),
    (("stereo", "ir", "out.mp4"), "unsupported output file extension '.mp4'"),
    (("stereo", "ir3", "out.wav"), "has 3 channels, which does not fit a 2-channel input"),
    (("stereo", "ir44", "out.wav"), "44100 Hz but the input is at 48000 Hz; .*--resample"),
    (("stereo", "ir", "out.wav", "--mix", "1.5"), r"`mix` must be in \[0.0, 1.0\]"),
    (("stereo", "ir", "out.wav", "--mix", "wet"), "argument --mix: invalid float value"),
    (("stereo", "ir", "out.wav", "--length", "valid"), "argument --length: invalid choice"),
    (("stereo", "ir", "out.wav", "--block-size", "0"), "`block_size`"),
    (("stereo", "ir", "out.wav", "--gain-db", "inf"), "`gain_db` must be finite"),
    (("stereo", "ir", "out.wav", "--normalize", "-1", "--gain-db", "2"), "cannot be combined"),
    (("stereo", "ir", "out.wav", "--subtype", "PCM_99"), "subtype 'PCM_99' is not available"),
    (("stereo", "ir", "out.flac", "--subtype", "FLOAT"), "subtype 'FLOAT' is not available"),
    (("stereo", "ir", "out.wav", "--backend", "gpu"), "argument --backend: invalid choice"),
    (("stereo", "ir"), "the following arguments are required: OUTPUT"),
])
def test_bad_input_gives_one_line_and_leaves_no_output(tmp_path, case, message):
    paths = bad_inputs(tmp_path)
    before = sorted(os.listdir(tmp_path))
    args = [paths.get(a, tmp_path / a) if not a.startswith("-") and i < 3 else a
            for i, a in enumerate(case)]
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("fftconv filter: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert out.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary file


@pytest.mark.slow
def test_thirty_seconds_of_stereo_through_a_ten_second_ir(tmp_path):
    """The path of benchmarks/filter_hour.py on a 30 s file: PCM_24 WAV in, FLOAT WAV out."""
    rng = np.random.default_rng(10)
    x = write(tmp_path / "in.wav", 0.1 * rng.standard_normal((30 * RATE, 2)), subtype="PCM_24")
    ir = write(tmp_path / "ir.wav", decaying(10 * RATE, 2, seed=11, level=0.01))
    out = tmp_path / "out.wav"
    result = succeeded(run(x, ir, out, "--no-progress"))
    assert "30.00 s, 2 channels, 48000 Hz, FLOAT" in result.stdout
    assert_audio_close(out, reference(read(x), read(ir)))
