#!/usr/bin/env python
"""Time `fftconv.StreamingConv1D` block by block against the real-time budget.

A 2 s impulse response at 48 kHz (96000 taps) filters a random float32 stream
delivered in blocks of 256 samples (partition 256: one block of latency), in
three channel layouts:

* ``mono``: one channel, one impulse response;
* ``stereo``: two channels, the same impulse response on each (channel separable);
* ``true-stereo``: a 2x2 matrix of impulse responses (each output sums both inputs);

with uniform and non-uniform partitioning.  Every ``process()`` call is timed
with ``time.process_time`` (CPU) and ``time.perf_counter`` (wall); the table
gives the median, 99th percentile and maximum per block after a warm-up, the
real-time budget (``256 / 48000`` s = 5.33 ms) and the ratio of the median and
p99 wall times to it.  Two more rows per layout put them in context:

* ``fft bound``: the transforms alone that uniform partitioning needs per block
  (one forward and one inverse real FFT of 512 points per channel), through the
  same FFT backend;
* ``lfilter``: the usual SciPy way of filtering in blocks,
  ``scipy.signal.lfilter`` with its state ``zi`` carried over (direct form,
  ``O(K)`` per sample), timed on fewer blocks.

Each streamed output is cross-checked against ``scipy.signal.fftconvolve``.
Results go to ``benchmarks/results/streaming_latency.json`` (git-ignored).
Run ``python benchmarks/streaming_latency.py --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.signal

try:
    import fftconv
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fftconv

from fftconv import StreamingConv1D
from fftconv.backends import get_backend

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "streaming_latency.json"
RATE = 48_000
LAYOUTS = ("mono", "stereo", "true-stereo")


def impulse_response(taps: int, channels: tuple[int, int], rng: np.random.Generator,
                     ) -> np.ndarray:
    """A decaying noise impulse response (a synthetic reverb), shape (taps, C_in, filters)."""
    decay = np.exp(-np.arange(taps) * (6.9 / taps))  # -60 dB at the end
    return (rng.standard_normal((taps, *channels)) * decay[:, None, None]
            / np.sqrt(taps / 4)).astype(np.float32)


def layout_arguments(layout: str, ir: np.ndarray) -> tuple[np.ndarray, bool]:
    """The kernel and `channel_separable` of a channel layout, from a (K, 2, 2) response."""
    if layout == "mono":
        return ir[:, :1, :1], False
    if layout == "stereo":
        return np.repeat(ir[:, :1, :1], 2, axis=1), True
    return ir, False


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "mean_ms": float(a.mean())}


def time_stream(stream: StreamingConv1D, x: np.ndarray, block: int, warmup: int,
                ) -> tuple[dict, np.ndarray]:
    """Stream `x` (n, C) in blocks; per-block CPU and wall times after `warmup` blocks."""
    cpu, wall, outputs = [], [], []
    first = None
    for i, start in enumerate(range(0, x.shape[0], block)):
        chunk = x[start:start + block]
        c0, w0 = time.process_time(), time.perf_counter()
        out = stream.process(chunk)
        c1, w1 = time.process_time(), time.perf_counter()
        outputs.append(out)
        if i == 0:
            first = w1 - w0
        if i >= warmup:
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
    outputs.append(stream.flush())
    return ({"cpu": percentiles(cpu), "wall": percentiles(wall), "blocks": len(wall),
             "first_block_ms": first * 1e3}, np.concatenate(outputs))


def fft_bound(backend_name: str, channels_in: int, channels_out: int, partition: int,
              repeat: int = 2000) -> dict:
    """Median time of the transforms alone of one uniform frame."""
    backend = get_backend(backend_name, threads=1)
    fft = backend.block_fft(channels_in, channels_out, 2 * partition, np.float32)
    rng = np.random.default_rng(0)
    times = []
    with fft.lock:
        for _ in range(repeat):
            fft.real_in[...] = rng.standard_normal(fft.real_in.shape)
            fft.spectrum_in[...] = 0
            t0 = time.perf_counter()
            fft.forward()
            fft.inverse()
            times.append(time.perf_counter() - t0)
    return percentiles(times)


def time_lfilter(kernel: np.ndarray, separable: bool, x: np.ndarray, block: int,
                 blocks: int) -> dict:
    """Per-block wall time of ``lfilter`` with carried state, every channel pair."""
    taps, c_in, filters = kernel.shape
    pairs = [(c, c * filters + f if separable else f, kernel[:, c, f])
             for c in range(c_in) for f in range(filters)]
    state = [np.zeros(taps - 1, np.float32) for _ in pairs]
    cpu, wall = [], []
    for i in range(blocks):
        chunk = x[i * block:(i + 1) * block]
        c0, w0 = time.process_time(), time.perf_counter()
        for j, (c, _, h) in enumerate(pairs):
            _, state[j] = scipy.signal.lfilter(h, 1.0, chunk[:, c], zi=state[j])
        c1, w1 = time.process_time(), time.perf_counter()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
    return {"cpu": percentiles(cpu), "wall": percentiles(wall), "blocks": blocks}


def cross_check(y: np.ndarray, x: np.ndarray, kernel: np.ndarray, separable: bool) -> float:
    """max |y - fftconvolve| / max |fftconvolve| over all output channels."""
    taps, c_in, filters = kernel.shape
    c_out = c_in * filters if separable else filters
    expected = np.zeros((x.shape[0] + taps - 1, c_out))
    for c in range(c_in):
        for f in range(filters):
            full = scipy.signal.fftconvolve(x[:, c].astype(np.float64),
                                            kernel[:, c, f].astype(np.float64))
            expected[:, c * filters + f if separable else f] += full
    return float(np.max(np.abs(y - expected)) / np.max(np.abs(expected)))


def machine_record(backend_name: str) -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    try:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = {k: (deps.get(k) or {}).get("name") for k in ("blas", "lapack")}
    except Exception:  # noqa: BLE001 - older numpy: no dict form
        blas = None
    versions = {"fftconv": fftconv.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__}
    try:
        import pyfftw
        versions["pyfftw"] = pyfftw.__version__
    except ImportError:
        versions["pyfftw"] = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cores_usable": cores, "cpu": model, "platform": platform.platform(),
            "python": sys.version.split()[0], "versions": versions, "blas": blas,
            "fft_backend": get_backend(backend_name, threads=1).name,
            "fftconv_path": str(Path(fftconv.__file__).resolve().parent),
            "loadavg_start": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="audio streamed per configuration (default 20 s)")
    parser.add_argument("--block", type=int, default=256, help="samples per block (256)")
    parser.add_argument("--taps", type=int, default=2 * RATE,
                        help="impulse response length (default 96000: 2 s at 48 kHz)")
    parser.add_argument("--only", default=",".join(LAYOUTS),
                        help=f"channel layouts to run, comma-separated ({','.join(LAYOUTS)})")
    parser.add_argument("--backend", default="auto", choices=("auto", "numpy", "pyfftw"))
    parser.add_argument("--lfilter-blocks", type=int, default=20,
                        help="blocks timed for the lfilter peer (0: skip it)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"results file (default {DEFAULT_JSON.relative_to(HERE.parent)})")
    args = parser.parse_args(argv)
    layouts = [name for name in args.only.split(",") if name]
    for name in layouts:
        if name not in LAYOUTS:
            parser.error(f"--only: unknown layout {name!r}; choose from {LAYOUTS}")

    budget_ms = args.block / RATE * 1e3
    rng = np.random.default_rng(2024)
    ir = impulse_response(args.taps, (2, 2), rng)
    n = int(args.seconds * RATE) // args.block * args.block
    signal = rng.standard_normal((n, 2)).astype(np.float32) * 0.1
    machine = machine_record(args.backend)
    if machine["loadavg_start"] and machine["loadavg_start"][0] > 0.5:
        print(f"warning: load average {machine['loadavg_start'][0]:.2f}: other work on the "
              f"machine inflates wall times (see the cpu columns)", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for layout in layouts:
        kernel, separable = layout_arguments(layout, ir)
        x = signal[:, :kernel.shape[1]]
        c_out = kernel.shape[1] * kernel.shape[2] if separable else kernel.shape[2]
        for partitioning in ("uniform", "non-uniform"):
            stream = StreamingConv1D(kernel, padding="full", channel_separable=separable,
                                     partition=args.block, partitioning=partitioning,
                                     dtype="float32", backend=args.backend)
            # Skip the first blocks of the largest level (plans, first big transforms).
            warmup = 2 * max(level.size for level in stream.levels) // args.block
            print(f"[{layout} {partitioning}] {stream!r}", file=sys.stderr)
            stats, y = time_stream(stream, x, args.block, warmup)
            rows.append({"layout": layout, "method": partitioning,
                         "levels": [[lv.size, lv.count] for lv in stream.levels],
                         "latency_samples": stream.latency, "state_bytes": stream.nbytes,
                         "error": cross_check(y, x, kernel, separable), **stats})
        rows.append({"layout": layout, "method": "fft bound",
                     "wall": fft_bound(args.backend, kernel.shape[1], c_out, args.block)})
        if args.lfilter_blocks:
            rows.append({"layout": layout, "method": "lfilter",
                         **time_lfilter(kernel, separable, x, args.block,
                                        min(args.lfilter_blocks, n // args.block))})

    print(f"\nStreaming {args.taps} taps ({args.taps / RATE:g} s at {RATE} Hz), blocks of "
          f"{args.block} ({budget_ms:.2f} ms real-time budget), float32, "
          f"{machine['fft_backend']}, {args.seconds:g} s of audio per row.")
    head = (f"{'layout':12s} {'method':12s} {'partitions':>18s} {'cpu med':>8s} "
            f"{'cpu p99':>8s} {'cpu max':>8s} {'wall med':>8s} {'wall p99':>8s} "
            f"{'wall max':>8s} {'med/bud':>8s} {'p99/bud':>8s} {'error':>8s}")
    print(head)
    print("-" * len(head))
    for row in rows:
        wall, cpu = row["wall"], row.get("cpu")
        levels = "+".join(f"{c}x{s}" for s, c in row.get("levels", [])) or "-"

        def cell(value: float | None, fmt: str = "8.3f") -> str:
            return "-".rjust(8) if value is None else format(value, fmt)

        print(f"{row['layout']:12s} {row['method']:12s} {levels:>18s} "
              f"{cell(cpu and cpu['median_ms'])} {cell(cpu and cpu['p99_ms'])} "
              f"{cell(cpu and cpu['max_ms'])} {cell(wall['median_ms'])} "
              f"{cell(wall['p99_ms'])} {cell(wall['max_ms'])} "
              f"{cell(wall['median_ms'] / budget_ms)} {cell(wall['p99_ms'] / budget_ms)} "
              f"{cell(row.get('error'), '8.1e')}")
    print("times in ms per block; med/bud and p99/bud: wall time over the budget; a wall "
          "max far above the cpu max is the process waiting for a core")

    machine["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {"taps": args.taps, "rate": RATE, "block": args.block, "seconds": args.seconds,
              "budget_ms": budget_ms, "machine": machine, "rows": rows,
              "median_over_budget": {f"{r['layout']}/{r['method']}":
                                     r["wall"]["median_ms"] / budget_ms for r in rows}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
