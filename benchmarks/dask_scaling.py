#!/usr/bin/env python
"""Time `fftconv.SignalConv1D` on Dask arrays against one in-process call, and its memory.

Scaling: a float32 signal ``(1, W, 1)`` (``W = 2^26``; ``--quick``: ``2^24``)
filtered by an 8191-tap correlation (``padding='same_zeros'``), from memory into
memory, and from a zarr array (uncompressed, chunks of ``2^22`` samples) into
another:

* ``in-process``: one layer call on the whole signal (for zarr: read it all,
  call, write it all);
* ``dask threads``: ``layer(da.from_array(x, chunks=2^22))`` stored into an
  array, or ``layer(da.from_zarr(...)).to_zarr(...)``, on the threaded
  scheduler (one thread per core);
* ``dask N proc``: the zarr job on a ``distributed.LocalCluster`` of N worker
  processes with one thread each (cluster start-up not timed);
* ``oaconvolve threads``: the usual Dask way, ``map_overlap`` with a zero-filled
  halo of ``(K - 1) / 2`` samples and ``scipy.signal.oaconvolve(..., 'valid')``
  per chunk.

Each row is the median of ``--repeat`` runs after one warm-up run (which
builds the per-process layer, kernel spectra and FFT plans); every output is
checked against the in-process one.  The ratio is to ``in-process`` on the
same data source.

Memory: a subprocess filters a lazily generated ``2^27``-sample float32 signal
(``da.random``, chunks of ``2^22``; ``--quick``: ``2^25``) with a
``10^5``-tap kernel into a zarr array on the threaded scheduler and reports its
peak resident set size (``resource.getrusage``).

Pyfftw uses every core in each task, so the Dask rows run more FFT threads
than cores; run on a quiet machine.  ``python benchmarks/dask_scaling.py --help``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks  # noqa: E402 - the machine record is shared

import fftconv  # noqa: E402

try:
    import dask
    import dask.array as da
    import distributed
    import zarr
except ImportError as err:  # pragma: no cover - a clear message instead of a traceback
    sys.exit(f"dask_scaling needs dask[array], distributed and zarr ({err}).")

KERNEL = 8191
CHUNK = 2**22
MEMORY_KERNEL = 100_000
CHECK_TOLERANCE = 1e-4

_MEMORY_JOB = """
import json, resource, sys, time
import dask, dask.array as da, numpy as np, fftconv
width, chunk, taps, target = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
kernel = np.random.default_rng(1).standard_normal((taps, 1, 1), dtype=np.float32) / taps**0.5
x = da.random.default_rng(0).standard_normal((1, width, 1), chunks=(1, chunk, 1),
                                              dtype=np.float32)
start = time.perf_counter()
with dask.config.set(scheduler="threads"):
    fftconv.signal_conv1d(x, kernel, corr=True, padding="same_zeros").to_zarr(
        target, compressors=None, overwrite=True)
seconds = time.perf_counter() - start
try:  # this process image's own peak (ru_maxrss may keep the forking parent's)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak * 1024}))
"""


def median_seconds(run: Callable[[], None], repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_input(path: Path, width: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((1, width, 1), dtype=np.float32)
    z = zarr.create_array(store=str(path), shape=x.shape, chunks=(1, CHUNK, 1),
                          dtype="float32", compressors=None, overwrite=True)
    z[...] = x
    return x


def scaling(width: int, repeat: int, workdir: Path) -> list[dict]:
    """Rows of the scaling table: job, data, seconds, ratio to in-process, max error."""
    source, target = workdir / "in.zarr", workdir / "out.zarr"
    x = write_input(source, width)
    kernel = np.random.default_rng(1).standard_normal((KERNEL, 1, 1), dtype=np.float32)
    kernel /= np.sqrt(KERNEL)
    layer = fftconv.SignalConv1D(1, KERNEL, corr=True, padding="same_zeros",
                                 kernel_parameter=kernel)
    expected = layer(x)
    in_memory = np.empty_like(expected)
    rows = []

    def in_process() -> None:
        z = zarr.create_array(store=str(target), shape=expected.shape, chunks=(1, CHUNK, 1),
                              dtype="float32", compressors=None, overwrite=True)
        z[...] = layer(zarr.open_array(str(source))[...])

    def to_zarr(y: da.Array) -> None:
        y.to_zarr(str(target), overwrite=True, compressors=None)

    def oaconvolve(x: da.Array) -> da.Array:
        taps = kernel[::-1, 0, 0][None, :, None]  # correlation: the reversed kernel
        return x.map_overlap(lambda b: scipy.signal.oaconvolve(b, taps, mode="valid", axes=1),
                             depth={1: KERNEL // 2}, boundary=0, trim=False, chunks=x.chunks,
                             dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))

    def record(job: str, data: str, run: Callable[[], None]) -> None:
        run_benchmarks.log(f"{job}, {data} ...")
        seconds = median_seconds(run, repeat)
        got = in_memory if data == "memory" else zarr.open_array(str(target))[...]
        error = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
        rows.append({"job": job, "data": data, "seconds": seconds, "max_rel_error": error})

    def in_memory_job(make: Callable[[da.Array], da.Array]) -> Callable[[], None]:
        return lambda: da.store(make(da.from_array(x, chunks=(1, CHUNK, 1))), in_memory,
                                lock=False)

    record("in-process", "memory", lambda: np.copyto(in_memory, layer(x)))
    record("in-process", "zarr", in_process)
    with dask.config.set(scheduler="threads"):
        record("dask threads", "memory", in_memory_job(layer))
        record("oaconvolve threads", "memory", in_memory_job(oaconvolve))
        record("dask threads", "zarr", lambda: to_zarr(layer(da.from_zarr(str(source)))))
        record("oaconvolve threads", "zarr", lambda: to_zarr(oaconvolve(da.from_zarr(
            str(source)))))
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            record(f"dask {workers} proc", "zarr",
                   lambda: to_zarr(layer(da.from_zarr(str(source)))))
    base = {row["data"]: row["seconds"] for row in rows if row["job"] == "in-process"}
    for row in rows:
        row["ratio"] = row["seconds"] / base[row["data"]]
    return rows


def memory(width: int, workdir: Path) -> dict:
    """Peak RSS and time of the lazily generated long-kernel job, in a fresh process."""
    command = [sys.executable, "-c", _MEMORY_JOB, str(width), str(CHUNK), str(MEMORY_KERNEL),
               str(workdir / "memory.zarr")]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return {"width": width, "kernel": MEMORY_KERNEL, "chunk": CHUNK,
            **json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2^24 samples (memory job: 2^25) instead of 2^26 (2^27)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    width, memory_width = (2**24, 2**25) if args.quick else (2**26, 2**27)
    machine = run_benchmarks.machine_record(run_benchmarks.usable_cores())
    machine["versions"].update(dask=dask.__version__, distributed=distributed.__version__,
                               zarr=zarr.__version__)
    with tempfile.TemporaryDirectory(prefix="fftconv-dask-") as tmp:
        run_benchmarks.log("memory job ...")
        mem = memory(memory_width, Path(tmp))
        rows = scaling(width, args.repeat, Path(tmp))
    machine["loadavg_end"] = run_benchmarks._loadavg()

    print(f"long FIR: (1, {width}, 1) float32, K={KERNEL} corr same_zeros, zarr chunks "
          f"{CHUNK}; median of {args.repeat}; {machine['cores_usable']} cores, load "
          f"{machine['loadavg_start']} -> {machine['loadavg_end']}")
    print(f"{'job':<20} {'data':<7} {'seconds':>9} {'vs in-process':>14} {'max rel error':>14}")
    for row in rows:
        print(f"{row['job']:<20} {row['data']:<7} {row['seconds']:9.3f} {row['ratio']:13.2f}x "
              f"{row['max_rel_error']:14.2e}")
    print(f"memory: (1, {mem['width']}, 1) float32 from da.random, K={mem['kernel']}, chunks "
          f"{mem['chunk']} -> zarr: peak RSS {mem['peak_rss_bytes'] / 2**20:.0f} MiB, "
          f"{mem['seconds']:.1f} s")
    failed = [r["job"] for r in rows if r["max_rel_error"] > CHECK_TOLERANCE]
    if failed:
        print(f"cross-check FAILED for {failed}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "scaling": rows, "memory": mem},
                                        indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
