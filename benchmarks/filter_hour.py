#!/usr/bin/env python
"""Peak memory and speed of ``fftconv filter`` on a long stereo file.

Generates a stereo 48 kHz input (one hour by default, ``--minutes`` for less;
written in chunks as PCM_24 WAV) and a 10 s stereo impulse response (decaying
noise, FLOAT WAV) in a temporary directory, runs the installed ``fftconv filter``
console script on them in a subprocess (output FLOAT WAV), and prints the
subprocess's peak resident set size and the real-time factor (seconds of audio
per second of wall-clock time).  The directory is deleted afterwards.  The exit
status is 1 when the peak RSS exceeds ``--max-rss-mb`` (600 by default).

    python benchmarks/filter_hour.py                # the 1-hour case
    python benchmarks/filter_hour.py --minutes 5    # a shorter run
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

RATE = 48000
CHANNELS = 2
#: Frames generated and written at a time (keeps this script's own memory small).
CHUNK = 1 << 20


def _input_bytes(frames: int) -> int:
    """Disk space for the PCM_24 input and the FLOAT output."""
    return frames * CHANNELS * (3 + 4) + (1 << 20)


def _write_input(path: Path, frames: int, seed: int) -> None:
    """Noise with a slow amplitude envelope and a few tones, about -20 dBFS RMS."""
    rng = np.random.default_rng(seed)
    with soundfile.SoundFile(path, "w", RATE, CHANNELS, subtype="PCM_24") as sink:
        for start in range(0, frames, CHUNK):
            n = min(CHUNK, frames - start)
            t = (start + np.arange(n)) / RATE
            envelope = 0.5 + 0.4 * np.sin(2 * np.pi * 0.05 * t)
            tones = 0.05 * np.sin(2 * np.pi * np.outer(t, [220.0, 331.0]))
            block = 0.07 * envelope[:, None] * rng.standard_normal((n, CHANNELS)) + tones
            sink.write(block.astype(np.float32))


def _write_ir(path: Path, seconds: float, seed: int) -> None:
    """A stereo reverb-like IR: decorrelated noise with a 60 dB decay over `seconds`."""
    frames = int(seconds * RATE)
    decay = np.exp(-np.arange(frames) * (np.log(1000.0) / frames))[:, None]
    ir = np.random.default_rng(seed).standard_normal((frames, CHANNELS)) * decay
    ir *= 0.5 / np.sqrt(np.sum(ir**2, axis=0))  # unit-ish energy, some headroom
    soundfile.write(path, ir.astype(np.float32), RATE, subtype="FLOAT")


def _command() -> list[str]:
    script = shutil.which("fftconv", path=str(Path(sys.executable).parent))
    script = script or shutil.which("fftconv")
    return [script] if script else [sys.executable, "-m", "fftconv.cli"]


def _run(command: list[str], progress: bool) -> tuple[int, float, int, str]:
    """Run `command`; return (exit status, wall seconds, peak RSS in bytes, stdout)."""
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                          stderr=None if progress else subprocess.PIPE) as child:
        stdout, stderr = child.communicate()
        status = child.returncode
    wall = time.perf_counter() - started
    # RUSAGE_CHILDREN covers the waited-for children: only the fftconv process here.
    peak = _children_peak_rss()
    if status != 0 and stderr:
        sys.stderr.write(stderr)
    return status, wall, peak, stdout


def _children_peak_rss() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kilobytes on Linux


def _machine() -> str:
    import scipy

    import fftconv

    try:
        import pyfftw

        fft = f"pyFFTW {pyfftw.__version__}"
    except ImportError:
        fft = "scipy.fft"
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
            f"{fft}, soundfile {soundfile.__version__} (libsndfile "
            f"{soundfile.__libsndfile_version__}), fftconv {fftconv.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="input length (default 60)")
    parser.add_argument("--ir-seconds", type=float, default=10.0, help="IR length (default 10)")
    parser.add_argument("--block-size", type=int, default=65536, help="fftconv --block-size")
    parser.add_argument("--backend", default="auto", help="fftconv --backend")
    parser.add_argument("--method", default="auto", help="fftconv --method")
    parser.add_argument("--tmpdir", help="where to write the files (default: the system's)")
    parser.add_argument("--max-rss-mb", type=float, default=600.0,
                        help="fail (exit 1) above this peak RSS (default 600)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.ir_seconds <= 0:
        parser.error("--minutes and --ir-seconds must be positive")

    frames = int(round(args.minutes * 60 * RATE))
    print(f"machine: {_machine()}")
    with tempfile.TemporaryDirectory(prefix="fftconv-filter-bench-", dir=args.tmpdir) as tmp:
        free = shutil.disk_usage(tmp).free
        if free < _input_bytes(frames):
            print(f"error: {tmp} has {free / 2**30:.1f} GiB free, the run needs "
                  f"{_input_bytes(frames) / 2**30:.1f} GiB", file=sys.stderr)
            return 2
        source, ir, out = Path(tmp, "in.wav"), Path(tmp, "ir.wav"), Path(tmp, "out.wav")
        started = time.perf_counter()
        _write_input(source, frames, seed=1)
        _write_ir(ir, args.ir_seconds, seed=2)
        print(f"generated {args.minutes:g} min stereo {RATE} Hz PCM_24 input "
              f"({source.stat().st_size / 2**20:.0f} MiB) and a {args.ir_seconds:g} s stereo "
              f"IR in {time.perf_counter() - started:.1f} s")
        command = _command() + [
            "filter", str(source), str(ir), str(out), "--block-size", str(args.block_size),
            "--backend", args.backend, "--method", args.method]
        if args.no_progress:
            command.append("--no-progress")
        status, wall, peak, stdout = _run(command, progress=not args.no_progress)
        if status != 0:
            print(f"error: fftconv filter exited with status {status}", file=sys.stderr)
            return 2
        written = soundfile.info(str(out)).frames
        reported = re.search(r"([0-9.]+)x real time", stdout)
    audio_seconds = frames / RATE
    rows = [
        ("workload", f"{args.minutes:g} min stereo {RATE} Hz, {args.ir_seconds:g} s stereo IR, "
                     f"block {args.block_size}, backend {args.backend}, method {args.method}"),
        ("frames written", f"{written} (input {frames})"),
        ("wall time", f"{wall:.1f} s (process start to exit)"),
        ("real-time factor", f"{audio_seconds / wall:.1f}x (whole process); "
                             f"{reported.group(1) if reported else '?'}x (filter_file, "
                             f"as reported)"),
        ("peak RSS", f"{peak / 2**20:.0f} MiB (limit {args.max_rss_mb:g} MB = "
                     f"{args.max_rss_mb * 1e6 / 2**20:.0f} MiB)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0 if peak <= args.max_rss_mb * 1e6 else 1


if __name__ == "__main__":
    sys.exit(main())
