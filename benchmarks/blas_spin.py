#!/usr/bin/env python
"""Time an FFT-path layer alone and right after a direct-path layer.

After a multi-threaded GEMM, OpenBLAS's worker threads spin for a while
(2**28 cycles, about 0.1 s) before they sleep.  On a machine with few cores the
spinning workers hold the cores that FFTW's threads need next, so an FFT-path
call right after a direct-path call (a model whose layers alternate paths)
waits for them.  ``OPENBLAS_THREAD_TIMEOUT=n`` (read when OpenBLAS loads, that
is before numpy is imported) makes the workers sleep after 2**n cycles;
``OMP_WAIT_POLICY=PASSIVE`` (read when FFTW's OpenMP runtime loads) makes
FFTW's workers sleep at once after their work instead of spinning first.

The script runs, each in a process of its own, with the environment as it is,
with ``OPENBLAS_THREAD_TIMEOUT=4`` and with ``OMP_WAIT_POLICY=PASSIVE``: a
16 -> 16 channel, 9-tap layer forced to the direct path and a 16 -> 16
channel, 1025-tap layer forced to the FFT path on a (1, 200000, 16) float32
input; ``--rounds`` times, the FFT layer alone (after a 0.3 s pause) and right
after a call of the direct layer (itself timed after a pause).  It prints the
fastest, median and slowest time of each and the ratio of the FFT layer's
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

#: The modes after the first: a variable set in the environment of the process.
MODES = (("OPENBLAS_THREAD_TIMEOUT", "4"), ("OMP_WAIT_POLICY", "PASSIVE"))
#: Pause before each timed call, seconds: longer than OpenBLAS's default spin.
PAUSE_S = 0.3


def child(rounds: int) -> dict[str, list[float]]:
    """Time the two layers in this process; milliseconds per call."""
    import numpy as np

    import fftconv

    x = np.random.default_rng(0).standard_normal((1, 200_000, 16)).astype(np.float32)
    direct = fftconv.SignalConv1D(16, 9, method="direct", padding="same_zeros")
    fft = fftconv.SignalConv1D(16, 1025, method="fft", padding="same_zeros")
    for _ in range(2):
        direct(x)
        fft(x)

    def timed(layer: fftconv.SignalConv1D) -> float:
        start = time.perf_counter()
        layer(x)
        return (time.perf_counter() - start) * 1e3

    times: dict[str, list[float]] = {"FFT layer alone": [], "FFT layer after direct": [],
                                     "direct layer": []}
    for _ in range(rounds):
        time.sleep(PAUSE_S)
        times["FFT layer alone"].append(timed(fft))
        time.sleep(PAUSE_S)
        times["direct layer"].append(timed(direct))
        times["FFT layer after direct"].append(timed(fft))
    return times


def run_mode(rounds: int, variable: tuple[str, str] | None) -> dict[str, list[float]]:
    env = dict(os.environ)
    if variable is not None:
        env[variable[0]] = variable[1]
    out = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(rounds)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed pairs per mode")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.child:
        print(json.dumps(child(args.rounds)))
        return 0
    print(f"{os.cpu_count()} cores; ms per call: fastest / median / slowest")
    as_is = ", ".join(f"{name}={os.environ.get(name, '(unset)')}" for name, _ in MODES)
    for label, variable in ((f"as is: {as_is}", None),
                            *((f"{name}={value}", (name, value)) for name, value in MODES)):
        times = run_mode(args.rounds, variable)
        cells, medians = [], {}
        for name, values in times.items():
            v = sorted(values)
            medians[name] = v[len(v) // 2]
            cells.append(f"{name} {v[0]:.1f} / {medians[name]:.1f} / {v[-1]:.1f}")
        ratio = medians["FFT layer after direct"] / medians["FFT layer alone"]
        print(f"{label}:\n  {'; '.join(cells)}; FFT layer after / alone {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
