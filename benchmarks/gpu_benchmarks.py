#!/usr/bin/env python
"""Time fftconv on a CUDA GPU against GPU peers and the cuFFT lower bound.

The workloads are ``run_benchmarks.py``'s seven and batched versions of them
(``<name>-batch``), float32, channels_last, with input and kernel on the device
before timing.  For each workload the script times

* fftconv, ``method='auto'``, ``'direct'`` and ``'fft'``, on a CuPy input (the
  result stays on the device; ``direct`` is skipped above ``DIRECT_MAX_MACS``);
* ``cupyx.scipy.signal`` peers computing the same output: ``oaconvolve`` and
  ``fftconvolve`` (the broadcast form of ``run_benchmarks.py``), ``upfirdn``
  (strided layers with one filter) and ``convolve`` (one filter, no channel
  mixing: ``method='auto'`` on the rows);
* PyTorch on CUDA: ``conv1d`` / ``conv_transpose1d`` with ``cudnn.benchmark``
  on and TF32 off (its default, on, rounds the products to 10-bit mantissas:
  relative errors near 3e-4 on the H200), and ``torchaudio.functional.fftconvolve``
  where it applies, if importable;
* the cuFFT lower bound: the transforms alone that an ideal FFT path needs
  (``run_benchmarks.bound_transforms``), planned before timing.

Every call is timed with CUDA events after two warm-up calls (the first of
fftconv's ``auto`` plans for a one-off call, the second takes the steady plan;
cuDNN autotunes on its first); the callables of a workload take turns, and each
time is the median of ``--repeat`` (>= 20) calls.  A callable whose warm-up
takes longer than ``SLOW_CALL_S`` is timed ``SLOW_REPEAT`` times only (marked
``*``).  Outputs are cross-checked against fftconv in float64 on the device
(``method='fft'``; the peers are independent of it) within ``CHECK_TOLERANCE``
of ``max|y|``.  Prints one table and writes JSON (``--json``).

Needs CuPy and a GPU; PyTorch and torchaudio are optional; pyFFTW and soundfile
are not used.  Run from the repository root: ``python benchmarks/gpu_benchmarks.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import run_benchmarks as rb  # noqa: E402 - the workloads, peers' geometry, results

import fftconv  # noqa: E402

try:
    import cupy
    import cupyx.scipy.fft
    import cupyx.scipy.signal
except ImportError as err:  # reported by main()
    cupy = None
    CUPY_ERROR = str(err)

try:
    import torch
except ImportError:
    torch = None
try:
    import torchaudio.functional as torchaudio_f
except Exception:  # noqa: BLE001 - missing, or built for another torch
    torchaudio_f = None

DEFAULT_JSON = HERE / "results" / "gpu_latest.json"
#: fftconv ``direct`` is skipped above this many multiply-accumulates per call.
DIRECT_MAX_MACS = 2e10
#: Fewest timed calls per callable (the median of at least this many).
MIN_REPEAT = 20
#: A callable whose warm-up call takes longer than this (s) is timed SLOW_REPEAT times.
SLOW_CALL_S = 1.0
SLOW_REPEAT = 3
#: Relative tolerance of the cross-check: max|y - ref| / max|ref|.
CHECK_TOLERANCE = 1e-4
#: Batch sizes of the batched versions of the workloads.
BATCHES = {"reverb": 8, "filterbank": 64, "decimate": 128, "interpolate": 128,
           "analysis": 256, "synthesis": 256, "longfir": 32}
COLUMNS = ("auto", "direct", "fft", "oaconvolve", "fftconvolve", "upfirdn", "convolve",
           "torch", "torchaudio")
PEERS = COLUMNS[3:]


def workloads(quick: bool) -> list[rb.Workload]:
    """The standard workloads and their batched versions (smaller with `quick`)."""
    out = []
    for wl in rb.WORKLOADS:
        for one in (wl, replace(wl, name=f"{wl.name}-batch", batch=BATCHES[wl.name])):
            out.append(one.quick() if quick else one)
    return out


# -- timing ----------------------------------------------------------------------


def time_interleaved(fns: dict[str, Callable[[], Any]], repeat: int,
                     ) -> dict[str, tuple[Any, rb.Result]]:
    """Two warm-up calls each, then `repeat` rounds of one CUDA-event-timed call each."""
    outs: dict[str, Any] = {}
    done: dict[str, tuple[Any, rb.Result]] = {}
    first: dict[str, float] = {}
    for name, fn in fns.items():
        try:
            began = time.perf_counter()
            outs[name] = fn()
            cupy.cuda.Device().synchronize()
            first[name] = (time.perf_counter() - began) * 1e3
            fn()
        except Exception as exc:  # noqa: BLE001 - any failing callable shows n/a
            done[name] = (None, rb.failure(exc))
    cupy.cuda.Device().synchronize()
    runs = {name: repeat if first[name] <= SLOW_CALL_S * 1e3 else SLOW_REPEAT
            for name in first}
    times: dict[str, list[float]] = {name: [] for name in first}
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    for i in range(max(runs.values(), default=0)):
        for name in runs:
            if i < runs[name]:
                start.record()
                fns[name]()
                end.record()
                end.synchronize()
                times[name].append(cupy.cuda.get_elapsed_time(start, end))
    for name in runs:
        result = rb.Result("ok", statistics.median(times[name]), times[name], first[name],
                           min_ms=min(times[name]))
        result.short = runs[name] < repeat
        done[name] = (outs[name], result)
    return {name: done[name] for name in fns}


# -- the callables -------------------------------------------------------------


def fftconv_calls(wl: rb.Workload, x: Any, kernel: np.ndarray) -> tuple[dict, dict]:
    """fftconv's methods on the device input, and the ones not run (with why)."""
    calls, skipped = {}, {}
    for method in rb.METHODS:
        if method == "direct" and wl.macs > DIRECT_MAX_MACS:
            skipped[method] = rb.Result("skipped", note=f"{wl.macs:.2e} MACs > "
                                                        f"{DIRECT_MAX_MACS:.0e}")
            continue
        layer = rb.make_layer(wl, kernel, method, "channels_last")
        calls[method] = lambda layer=layer: layer(x)
    return calls, skipped


def row_filter(wl: rb.Workload) -> str | None:
    """Why the one-filter-per-row peers (`convolve`, torchaudio) do not apply, or None."""
    if wl.filters != 1 or not (wl.channels == 1 or wl.shared_ir):
        return "one filter for every channel only"
    return None


def row_peer(wl: rb.Workload, x: Any, kernel: np.ndarray,
             convolve: Callable[[Any, Any], Any], to_array: Callable[[Any], Any],
             ) -> Callable[[], Any]:
    """A full convolution of each row ``(B*C, W_up)`` with the one filter, cropped.

    `convolve(rows, h)` takes arrays of one library, the filter as ``(1, K)``
    (both peers want operands of the same dimension), and returns one; `to_array`
    makes one of a CuPy array (DLPack for torch).
    """
    h = to_array(cupy.asarray(rb.conv_kernel(wl, kernel)[None, :, 0, 0]))
    off, d, n = wl.full_offset, wl.strides_down, wl.width_out
    b, c = wl.batch, wl.channels
    rows = to_array(cupy.ascontiguousarray(rb.upsample(wl, x, cupy).transpose(0, 2, 1)
                                           ).reshape(b * c, -1))

    def run() -> Any:
        full = convolve(rows, h)
        return full[:, off:off + (n - 1) * d + 1:d].reshape(b, c, n)

    return run


def peer_calls(wl: rb.Workload, x: Any, kernel: np.ndarray) -> tuple[dict, dict]:
    """The peers' callables on the device input, and the peers that do not apply (why)."""
    calls: dict[str, Callable[[], Any]] = {}
    na: dict[str, rb.Result] = {}

    def add(name: str, run: Callable[[], Any] | str) -> None:
        if isinstance(run, str):
            na[name] = rb.Result("n/a", note=run)
        else:
            calls[name] = run

    for name in ("oaconvolve", "fftconvolve"):
        add(name, rb.scipy_fft_peer(wl, x, kernel, name, cupyx.scipy.signal, cupy))
    add("upfirdn", rb.upfirdn_peer(wl, x, kernel, cupyx.scipy.signal, cupy))
    why = row_filter(wl)
    add("convolve", why or row_peer(wl, x, kernel, cupyx.scipy.signal.convolve, lambda a: a))
    if torch is None:
        add("torch", "torch not importable")
    elif not torch.cuda.is_available():
        add("torch", "torch has no CUDA")
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False  # float32 products, as every other column
        add("torch", rb.torch_peer(wl, cupy.asnumpy(x), kernel, threads=1, device="cuda"))
    if torchaudio_f is None or torch is None or not torch.cuda.is_available():
        add("torchaudio", "torchaudio not importable")
    else:
        add("torchaudio", why or row_peer(wl, x, kernel, torchaudio_f.fftconvolve,
                                          torch.from_dlpack))
    return calls, na


def fft_bound(wl: rb.Workload, repeat: int) -> tuple[rb.Result, dict]:
    """The forward and inverse cuFFT transforms alone, with plans made before timing."""
    (sig_in, n_fwd), (sig_out, n_inv) = rb.bound_transforms(wl)
    info = {"forward": {"signals": sig_in, "length": n_fwd},
            "inverse": {"signals": sig_out, "length": n_inv}}
    try:
        rng = cupy.random.default_rng(0)
        a = rng.standard_normal((sig_in, n_fwd), dtype=cupy.float32)
        s = (rng.standard_normal((sig_out, n_inv // 2 + 1), dtype=cupy.float32)
             + 1j * rng.standard_normal((sig_out, n_inv // 2 + 1), dtype=cupy.float32)
             ).astype(cupy.complex64)
        fft = cupyx.scipy.fft
        forward = fft.get_fft_plan(a, shape=(n_fwd,), axes=(-1,), value_type="R2C")
        inverse = fft.get_fft_plan(s, shape=(n_inv,), axes=(-1,), value_type="C2R")

        def run() -> None:
            fft.rfft(a, n=n_fwd, plan=forward)
            fft.irfft(s, n=n_inv, norm="forward", overwrite_x=True, plan=inverse)

        _, result = time_interleaved({"bound": run}, repeat)["bound"]
        return result, info
    except Exception as exc:  # noqa: BLE001
        return rb.failure(exc), info


# -- one workload --------------------------------------------------------------


def as_channels_last(name: str, y: Any) -> np.ndarray:
    """A peer's or fftconv's output as a host array ``(B, W_out, C_out)``."""
    if name in ("torch", "torchaudio"):
        y = y.detach().cpu().numpy()
    else:
        y = cupy.asnumpy(y)
    if name in ("torch", "convolve", "torchaudio"):  # (B, C_out, W_out)
        y = y.transpose(0, 2, 1)
    return y


def run_workload(wl: rb.Workload, repeat: int) -> dict:
    x_host, kernel = rb.make_data(wl, rb.workload_seed(wl.name))
    x = cupy.asarray(x_host)
    del x_host
    results: dict[str, rb.Result] = {}
    checks: dict[str, float | str] = {}
    reference = rb.make_layer(wl, kernel.astype(np.float64), "fft", "channels_last", "float64")
    ref = cupy.asnumpy(reference(x.astype(cupy.float64)))
    scale = float(np.max(np.abs(ref))) or 1.0
    layer = rb.make_layer(wl, kernel, "auto", "channels_last")  # its GPU plan, steady state
    plan = str(fftconv.planner.plan(layer.spec, (wl.batch, wl.channels, wl.width), np.float32,
                                    "cupy", layer.config, filters=wl.filters,
                                    time_major=True))
    fft_calls, skipped = fftconv_calls(wl, x, kernel)
    others, na = peer_calls(wl, x, kernel)
    results.update(skipped)
    results.update(na)
    for name, (out, result) in time_interleaved({**fft_calls, **others}, repeat).items():
        results[name] = result
        if out is None:
            continue
        y = as_channels_last(name, out)
        del out
        if y.shape != ref.shape:
            checks[name] = f"ERROR shape {y.shape} != {ref.shape}"
        else:
            err = float(np.max(np.abs(y.astype(np.float64) - ref))) / scale
            checks[name] = err
            result.check = "ok" if err < CHECK_TOLERANCE else f"ERROR rel {err:.2e}"
    del x, ref
    cupy.get_default_memory_pool().free_all_blocks()
    bound, bound_info = fft_bound(wl, repeat)
    ok = {n: results[n] for n in PEERS if n in results and results[n].status == "ok"}
    best = min(ok, key=lambda n: ok[n].median_ms) if ok else None
    auto = results["auto"].median_ms if results["auto"].status == "ok" else None
    return {
        "name": wl.name, "description": wl.describe(), "workload": asdict(wl),
        "output_shape": [wl.batch, wl.width_out, wl.c_out], "macs": wl.macs,
        "plan": plan, "results": {n: asdict(r) for n, r in results.items()},
        "check_rel_err": checks, "best_peer": best,
        "best_peer_ms": ok[best].median_ms if best else None,
        "fft_bound": {**asdict(bound), **bound_info},
        "auto_over_best_peer": auto / ok[best].median_ms if auto and best else None,
        "auto_over_fft_bound": (auto / bound.median_ms if auto and bound.status == "ok"
                                else None),
    }


# -- machine, table, main --------------------------------------------------------


def machine_record() -> dict:
    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    return {
        "gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "gpu_memory_bytes": device.mem_info[1], "gpu_count": cupy.cuda.runtime.getDeviceCount(),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "platform": platform.platform(), "python": sys.version.split()[0],
        "versions": {"fftconv": fftconv.__version__, "cupy": cupy.__version__,
                     "numpy": np.__version__,
                     "torch": torch.__version__ if torch is not None else None,
                     "torchaudio": getattr(sys.modules.get("torchaudio"), "__version__", None)},
        "cudnn": (torch.backends.cudnn.version() if torch is not None
                  and torch.cuda.is_available() else None),
    }


def render_table(rows: list[dict]) -> str:
    head = ["workload", *COLUMNS, "cuFFT bound", "auto/peer", "auto/bound"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["name"]]
        for name in COLUMNS:
            r = row["results"].get(name, {"status": "n/a"})
            ms = rb._format_ms(r.get("median_ms")) if r["status"] == "ok" else r["status"]
            cells.append(ms + ("*" if r.get("short") else "")
                         + (" ERR" if str(r.get("check", "")).startswith("ERROR") else ""))
        bound = row["fft_bound"]
        cells.append(rb._format_ms(bound["median_ms"]) if bound["status"] == "ok" else "n/a")
        for key in ("auto_over_best_peer", "auto_over_fft_bound"):
            cells.append("n/a" if row[key] is None else f"{row[key]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated workload names (default: all)")
    parser.add_argument("--repeat", type=int, default=MIN_REPEAT,
                        help=f"timed calls per callable, >= {MIN_REPEAT} (default "
                             f"{MIN_REPEAT}; --quick allows fewer)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: widths / 16, kernel supports / 4")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file")
    parser.add_argument("--max-seconds", type=float, default=float("inf"),
                        help="skip the workloads left once this many seconds have passed")
    args = parser.parse_args(argv)
    if cupy is None:
        print(f"gpu_benchmarks: CuPy is needed ({CUPY_ERROR})", file=sys.stderr)
        return 2
    if args.repeat < (1 if args.quick else MIN_REPEAT):
        parser.error(f"--repeat must be >= {MIN_REPEAT}, got {args.repeat}")
    chosen = workloads(args.quick)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {w.name for w in chosen})
        if unknown:
            parser.error(f"unknown workloads {unknown}")
        chosen = [w for w in chosen if w.name in names]
    began = time.perf_counter()
    record = {"machine": machine_record(), "repeat": args.repeat, "quick": args.quick,
              "check_tolerance": CHECK_TOLERANCE, "workloads": [], "skipped": []}
    print(json.dumps(record["machine"]), file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for wl in chosen:
        if time.perf_counter() - began > args.max_seconds:
            record["skipped"].append(wl.name)
            continue
        print(f"{wl.name}: {wl.describe()}", file=sys.stderr, flush=True)
        row = run_workload(wl, args.repeat)
        record["workloads"].append(row)
        for name, r in row["results"].items():
            print(f"  {name:12s} {r['status']:8s} {rb._format_ms(r.get('median_ms')):>8s} ms "
                  f"{r.get('check', '')} {r.get('note', '')}", file=sys.stderr, flush=True)
        record["seconds"] = round(time.perf_counter() - began, 1)
        args.json.write_text(json.dumps(record, indent=1))  # kept if a later one is killed
    record["seconds"] = round(time.perf_counter() - began, 1)
    args.json.write_text(json.dumps(record, indent=1))
    print(render_table(record["workloads"]))
    if record["skipped"]:
        print(f"skipped (time budget): {', '.join(record['skipped'])}")
    errors = [(row["name"], n) for row in record["workloads"]
              for n, r in row["results"].items() if str(r.get("check", "")).startswith("ERROR")]
    if errors:
        print(f"cross-check errors: {errors}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
