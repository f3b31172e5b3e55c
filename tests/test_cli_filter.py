"""`fftconv filter`, run as the installed console script on generated WAV and FLAC files."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_data import (
    RATE,
    STEP,
    assert_audio_close,
    decaying,
    noise,
    read,
    reference,
    with_nonfinite,
    write,
)

from fftconv import resample_poly

SCRIPT = shutil.which("fftconv", path=str(Path(sys.executable).parent)) or shutil.which("fftconv")


def run(*args: str | Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "fftconv.cli"]
    out = subprocess.run([*prefix, *command, "filter", *map(str, args)], capture_output=True,
                         timeout=120)
    # Decoded here: text=True would turn the progress bar's carriage returns into newlines.
    return subprocess.CompletedProcess(out.args, out.returncode, out.stdout.decode(),
                                       out.stderr.decode())


def visible(stderr: str) -> list[str]:
    """The non-blank lines of `stderr` as a terminal shows them (a carriage return rewrites)."""
    lines = [line.rsplit("\r", 1)[-1].strip() for line in stderr.split("\n")]
    return [line for line in lines if line]


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
        "nan": write(tmp_path / "nan.wav", with_nonfinite(noise(1000, 2, seed=10), 300, 1)),
        "mono": write(tmp_path / "mono.wav", noise(1000, 1, seed=11)),
        "folder": tmp_path / "folder",
    }
    paths["garbage"].write_bytes(b"fLaC but nothing else that makes sense" * 4)
    paths["folder"].mkdir()
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
    (("nan", "ir", "out.wav"), r"input file '.*nan.wav' has a non-finite sample: nan at frame "
                               r"300, channel 1 \(counting from 0\); .*--nonfinite pass"),
    (("stereo", "nan", "out.wav"), "IR file '.*nan.wav' has a non-finite sample: nan at frame "
                                   "300, channel 1"),
    (("nan", "ir", "out.wav", "--nonfinite", "pass", "--subtype", "PCM_16"),
     "cannot write non-finite samples to '.*out.wav' as PCM_16: only FLOAT and DOUBLE"),
    (("nan", "ir", "out.flac", "--nonfinite", "pass"),
     "cannot write non-finite samples to '.*out.flac' as PCM_24"),
    (("nan", "ir", "out.wav", "--nonfinite", "pass", "--normalize", "-1"),
     "cannot normalize '.*out.wav': the filtered signal has non-finite samples"),
    (("stereo", "ir", "out.wav", "--nonfinite", "drop"), "argument --nonfinite: invalid choice"),
    (("mono", "stereo", "out.wav"), r"IR file '.*in.wav' has 2 channels, which does not fit a "
                                    r"1-channel input; the input is mono; use a mono IR\.$"),
    (("stereo", "ir3", "out.wav"), r"use an IR with 1, 2 or 4 \(true stereo\) channels\.$"),
    (("stereo", "ir", "stereo"), r"output file '.*in.wav' is the input file '.*in.wav'; .* "
                                 r"\(--force\)\.$"),
    (("stereo", "ir", "ir"), "output file '.*ir.wav' is the IR file '.*ir.wav'"),
    (("folder", "ir", "out.wav"), r"input file '.*folder' is a directory\.$"),
    (("stereo", "folder", "out.wav"), r"IR file '.*folder' is a directory\.$"),
    (("stereo", "ir", "folder"), "output '.*folder' is a directory; give the name of the file"),
    (("stereo", "ir.wav/x.wav", "out.wav"),
     r"cannot open IR file '.*ir.wav/x.wav': '.*ir.wav' is not a directory\.$"),
    (("stereo", "ir", "in.wav/out.wav"),
     r"cannot write output file '.*in.wav/out.wav': '.*in.wav' is not a directory\.$"),
])
def test_bad_input_gives_one_line_and_leaves_no_output(tmp_path, case, message):
    paths = bad_inputs(tmp_path)
    before = sorted(os.listdir(tmp_path))
    args = [paths.get(a, tmp_path / a) if not a.startswith("-") and i < 3 else a
            for i, a in enumerate(case)]
    out = run(*args)
    assert out.returncode == 2
    lines = visible(out.stderr)  # a progress bar is cleared when an error stops it
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("fftconv filter: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert out.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary file



def test_nonfinite_pass_warns_and_reports_the_peak(tmp_path):
    x = write(tmp_path / "in.wav", with_nonfinite(noise(3000, 2, seed=12), 1000, 1))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=13))
    out = tmp_path / "out.wav"
    result = succeeded(run(x, ir, out, "--nonfinite", "pass", "--no-progress"), warns=True)
    bad = int(np.count_nonzero(~np.isfinite(read(out))))
    warning = visible(result.stderr)
    assert len(warning) == 1 and warning[0].startswith("fftconv filter: warning: input file ")
    assert "has 1 non-finite sample (NaN or Inf), the first: nan at frame 1000, channel 1" in (
        warning[0])
    assert f"the filtered signal has {bad} non-finite samples" in warning[0]
    assert f", peak nan ({bad} non-finite samples), " in result.stdout  # NaN is not ignored


def test_force_filters_a_file_in_place(tmp_path):
    data = noise(4000, 1, seed=14)
    x = write(tmp_path / "in.wav", data)
    ir = write(tmp_path / "ir.wav", decaying(500, 1, seed=15))
    stored = read(x)
    result = succeeded(run(x, ir, x, "--force", "--length", "full", "--no-progress"))
    assert ", 1 channel, " in result.stdout
    assert_audio_close(x, reference(stored, read(ir), "full"))
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "ir.wav"]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_termination_signal_removes_the_temporary_file(tmp_path, name):
    """The signal lands while OUTPUT is written: one-frame blocks make that take minutes."""
    signum = getattr(signal, name)
    x = write(tmp_path / "in.wav", noise(60 * RATE, 1, seed=16))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=17))
    out = write(tmp_path / "out.wav", np.full((10, 1), 0.5))  # an older output
    command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "fftconv.cli"]
    process = subprocess.Popen(
        command + ["filter", str(x), str(ir), str(out), "--block-size", "1", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not [n for n in os.listdir(tmp_path) if n.endswith(".part")]:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.01)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signum, stderr
    assert visible(stderr) == [f"fftconv filter: terminated by {name}"]
    assert stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "ir.wav", "out.wav"]  # no .part file
    np.testing.assert_array_equal(read(out), np.full((10, 1), 0.5))  # untouched


def without_privileges() -> tuple[str, ...]:
    """A command prefix under which file modes stop this process (root is not stopped)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return ()
    # Root passes permission checks through two capabilities; setpriv (util-linux)
    # runs a command without them.
    setpriv = shutil.which("setpriv")
    drop = "-dac_override,-dac_read_search"
    prefix = (setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--") if setpriv else ()
    if not prefix or subprocess.run([*prefix, "true"], capture_output=True).returncode:
        pytest.skip("running as root, whom file modes do not stop, and setpriv cannot drop "
                    "that privilege here")
    return prefix


@pytest.mark.parametrize("locked", ["in.wav", "ir.wav", "dir"])
def test_permission_denied_names_the_file_and_the_reason(tmp_path, locked):
    x = write(tmp_path / "in.wav", noise(1000, 2, seed=18))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=19))
    (tmp_path / "dir").mkdir()
    out = tmp_path / "dir" / "out.wav"
    message = {
        "in.wav": f"cannot open input file {str(x)!r}: permission denied.",
        "ir.wav": f"cannot open IR file {str(ir)!r}: permission denied.",
        "dir": f"cannot write output file {str(out)!r}: cannot create a file in "
               f"{str(out.parent)!r}: permission denied.",
    }[locked]
    prefix = without_privileges()
    path = tmp_path / locked
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0)
    try:
        result = run(x, ir, out, "--no-progress", prefix=prefix)
    finally:
        path.chmod(mode)
    assert result.returncode == 2, result.stderr
    assert visible(result.stderr) == [f"fftconv filter: error: {message}"]
    assert sorted(os.listdir(tmp_path)) == ["dir", "in.wav", "ir.wav"]
    assert os.listdir(out.parent) == []

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
