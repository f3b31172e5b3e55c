#!/usr/bin/env python
"""Time `fftconv.SignalConv1D` against SciPy and PyTorch peers and FFT/GEMM lower bounds.

Every workload is a layer with a fixed random kernel and a random float32 input
(seeded, channels_last).  For each one the script times

* fftconv with ``method='auto'``, ``'direct'`` and ``'fft'`` (a method that raises
  shows ``n/a``; ``direct`` is skipped above ``DIRECT_MAX_MACS``);
* SciPy peers computing the same output: ``oaconvolve``, ``fftconvolve`` and,
  where the layer has strides, ``upfirdn``;
* PyTorch (when importable): ``conv1d``, or ``conv_transpose1d`` when upsampling;
* the FFT lower bound (the FFTs alone that an ideal FFT path needs) and, for the
  analysis/synthesis layers, the GEMM lower bound (one matmul of the layer's size);

cross-checks every output against a reference, prints one table and writes the
results as JSON.  Run ``python benchmarks/run_benchmarks.py --help`` for options;
see ``benchmarks/README.md`` for what the columns mean.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.fft
import scipy.signal

try:
    import fftconv
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fftconv

try:
    import torch
    import torch.nn.functional as torch_f
except ImportError:
    torch = None
    torch_f = None

try:  # the FFT bound's plans; gpu_benchmarks.py imports the workloads without it
    import pyfftw
    import pyfftw.builders
except ImportError:
    pyfftw = None

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
DEFAULT_WISDOM = HERE / "results" / "fftw_wisdom.json"

#: fftconv ``direct`` is skipped above this many multiply-accumulates per call
#: (about 30 s on a small machine).
DIRECT_MAX_MACS = 2e11
#: torch is skipped when its estimated time per call is above this (seconds) ...
TORCH_MAX_SECONDS = 60.0
#: ... and timed with one call only when the estimate is above this.
TORCH_SINGLE_CALL_SECONDS = 5.0
#: Multiply-accumulates of the reduced input used to estimate torch's time.
TORCH_CALIBRATION_MACS = 1e9
#: Relative tolerance of the cross-check: max|y - ref| / max|ref|.
CHECK_TOLERANCE = 1e-4
#: Idle seconds before every timed call (see `measure_interleaved`).
PAUSE_S = 0.25
#: Peers in table order.
PEERS = ("oaconvolve", "fftconvolve", "upfirdn", "torch")
METHODS = ("auto", "direct", "fft")


# -- workloads ---------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A layer and its input, channels_last ``(batch, width, channels)``."""

    name: str
    batch: int
    width: int
    channels: int
    filters: int
    kernel_support: int
    corr: bool
    strides_down: int = 1
    strides_up: int = 1
    padding: str = "same_zeros"
    channel_separable: bool = False
    shared_ir: bool = False  # the same filter on every input channel
    gemm_bound: bool = False
    note: str = ""

    # Geometry, computed here independently of fftconv so that the peers and the
    # bounds do not rely on the code under test.

    @property
    def c_out(self) -> int:
        return self.channels * self.filters if self.channel_separable else self.filters

    @property
    def c_in_per_output(self) -> int:
        return 1 if self.channel_separable else self.channels

    @property
    def same(self) -> bool:
        return self.padding == "same_zeros"

    @property
    def polyphase(self) -> bool:
        return self.strides_up > 1 or self.strides_down > 1

    @property
    def upsampled_width(self) -> int:
        """Length of the zero-inserted input (tfc's extra_pad_end: True for same)."""
        w, u = self.width, self.strides_up
        return w * u if self.same else (w - 1) * u + 1

    @property
    def width_out(self) -> int:
        length = self.upsampled_width
        if not self.same:
            length -= self.kernel_support - 1
        return -(-length // self.strides_down)

    @property
    def full_offset(self) -> int:
        """Index of output 0 in ``np.convolve(x_up, h)`` with ``h = conv_kernel``.

        ``h`` is the kernel for convolution and the reversed kernel for
        correlation; the layer output is ``full[offset :: strides_down][:width_out]``.
        """
        k = self.kernel_support
        if not self.same:
            return k - 1
        centre = k // 2 if self.corr else (k - 1) // 2  # of the correlation kernel
        return k - 1 - centre

    @property
    def macs(self) -> float:
        """Multiply-accumulates of a direct evaluation that skips inserted zeros."""
        return (self.batch * self.width_out * self.c_out * self.c_in_per_output
                * self.kernel_support / self.strides_up)

    def quick(self) -> Workload:
        """Smoke-run size: widths / 16, kernel support / 4."""
        return replace(self, width=max(1, self.width // 16),
                       kernel_support=max(1, self.kernel_support // 4))

    def describe(self) -> str:
        kind = "corr" if self.corr else "conv"
        parts = [f"in=({self.batch}, {self.width}, {self.channels})", f"filters={self.filters}",
                 f"K={self.kernel_support}", kind, self.padding]
        if self.strides_down > 1:
            parts.append(f"down={self.strides_down}")
        if self.strides_up > 1:
            parts.append(f"up={self.strides_up}")
        if self.channel_separable:
            parts.append("separable")
        return " ".join(parts)


WORKLOADS = (
    Workload("reverb", 1, 1_440_000, 2, 1, 96_000, corr=False, channel_separable=True,
             shared_ir=True, note="same IR on both channels"),
    Workload("filterbank", 8, 65_536, 8, 16, 257, corr=True),
    Workload("decimate", 8, 262_144, 1, 1, 127, corr=True, strides_down=4),
    Workload("interpolate", 8, 65_536, 1, 1, 127, corr=False, strides_up=4),
    Workload("analysis", 32, 4096, 64, 64, 9, corr=True, strides_down=2, gemm_bound=True),
    Workload("synthesis", 32, 2048, 64, 64, 9, corr=False, strides_up=2, gemm_bound=True),
    Workload("longfir", 4, 1_048_576, 1, 1, 8191, corr=True, padding="valid"),
)


def make_data(wl: Workload, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Input ``(B, W, C)`` and kernel ``(K, C, filters)``, float32, N(0,1)/sqrt(K*C_in)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((wl.batch, wl.width, wl.channels), dtype=np.float32)
    k = wl.kernel_support
    scale = np.float32(1.0 / math.sqrt(k * wl.c_in_per_output))
    if wl.shared_ir:
        one = rng.standard_normal((k, 1, wl.filters), dtype=np.float32) * scale
        kernel = np.ascontiguousarray(np.broadcast_to(one, (k, wl.channels, wl.filters)))
    else:
        kernel = rng.standard_normal((k, wl.channels, wl.filters), dtype=np.float32) * scale
    return x, kernel


def workload_seed(name: str) -> int:
    """A seed that depends on the workload name only (stable under --only)."""
    return zlib.crc32(name.encode())


# -- timing ------------------------------------------------------------------


@dataclass
class Result:
    """Outcome of one method on one workload."""

    status: str  # "ok", "n/a", "skipped"
    median_ms: float | None = None
    times_ms: list[float] | None = None
    first_call_ms: float | None = None
    note: str = ""
    min_ms: float | None = None
    short: bool = False  # fewer timed calls than --repeat
    check: str = ""

    def cell(self) -> str:
        if self.status != "ok":
            return self.status
        return _format_ms(self.median_ms) + ("*" if self.short else "")


def _format_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def measure(fn: Callable[[], Any], repeat: int, budget_s: float) -> tuple[Any, Result]:
    """Call `fn` once (warm-up; its output is returned), then time `repeat` more calls.

    When the warm-up call shows that `repeat` calls would take longer than
    `budget_s`, fewer calls are timed (at least one); the table marks such
    medians with ``*``.
    """
    return measure_interleaved({"fn": fn}, repeat, budget_s)["fn"]


def measure_interleaved(fns: dict[str, Callable[[], Any]], repeat: int, budget_s: float,
                        ) -> dict[str, tuple[Any, Result]]:
    """:func:`measure` for several functions whose timed calls take turns.

    After one warm-up call each, round ``i`` calls every function that still
    has calls left, so a slow spell of a shared machine slows all of them
    alike instead of the one being measured at the time.  Every timed call
    follows a pause of `PAUSE_S`: worker threads that the previous call left
    spinning (the OpenBLAS pools of NumPy and SciPy, FFTW's) would otherwise
    compete with it for the cores.  A function that raises shows ``n/a``.
    """
    outs: dict[str, Any] = {}
    done: dict[str, tuple[Any, Result]] = {}
    runs: dict[str, int] = {}
    times: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    for name, fn in fns.items():
        try:
            t0 = time.perf_counter()
            outs[name] = fn()
        except Exception as exc:  # noqa: BLE001 - any failing method shows n/a
            done[name] = (None, failure(exc))
            continue
        first[name] = time.perf_counter() - t0
        runs[name] = repeat if first[name] * repeat <= budget_s else max(
            1, int(budget_s // max(first[name], 1e-9)))
        times[name] = []
    for i in range(max(runs.values(), default=0)):
        for name in runs:
            if i < runs[name]:
                time.sleep(PAUSE_S)
                t0 = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t0)
    for name in runs:
        ms = [t * 1e3 for t in times[name]]
        result = Result("ok", statistics.median(ms), ms, first[name] * 1e3, min_ms=min(ms))
        result.short = runs[name] < repeat
        if result.short:
            result.note = f"{runs[name]} timed call(s) only (budget {budget_s:.0f} s)"
        done[name] = (outs[name], result)
    return {name: done[name] for name in fns}


def failure(exc: BaseException) -> Result:
    return Result("n/a", note=f"{type(exc).__name__}: {exc}"[:300])


# -- fftconv -----------------------------------------------------------------


def make_layer(wl: Workload, kernel: np.ndarray, method: str, data_format: str,
               dtype: str = "float32") -> fftconv.SignalConv1D:
    return fftconv.SignalConv1D(
        wl.filters, wl.kernel_support, corr=wl.corr, strides_down=wl.strides_down,
        strides_up=wl.strides_up, padding=wl.padding, channel_separable=wl.channel_separable,
        kernel_parameter=kernel, dtype=dtype, method=method, data_format=data_format)


def run_fftconv(wl: Workload, x: np.ndarray, kernel: np.ndarray, data_format: str,
                repeat: int, budget_s: float) -> dict[str, tuple[Any, Result]]:
    """Time every method of `METHODS`, their calls taking turns."""
    # A channels_first input is converted once, outside the timing.  The first
    # call of each layer plans and caches the kernel spectra; later calls are timed.
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    calls: dict[str, Callable[[], Any]] = {}
    results: dict[str, tuple[Any, Result]] = {}
    for method in METHODS:
        if method == "direct" and wl.macs > DIRECT_MAX_MACS:
            results[method] = (None, Result(
                "skipped", note=f"{wl.macs:.2e} MACs > {DIRECT_MAX_MACS:.0e}"))
            continue
        try:
            layer = make_layer(wl, kernel, method, data_format)
        except Exception as exc:  # noqa: BLE001 - any failing method shows n/a
            results[method] = (None, failure(exc))
            continue
        calls[method] = lambda layer=layer: layer(x)
    results.update(measure_interleaved(calls, repeat, budget_s))
    return {method: results[method] for method in METHODS}


# -- SciPy peers -------------------------------------------------------------


def conv_kernel(wl: Workload, kernel: np.ndarray) -> np.ndarray:
    """The kernel ``h`` with layer output = ``np.convolve(x_up, h)`` at `full_offset`."""
    return np.ascontiguousarray(kernel if not wl.corr else kernel[::-1])


def upsample(wl: Workload, x: np.ndarray, xp: Any = np) -> np.ndarray:
    """Zero insertion along the width: ``x_up[:, i*U] = x[:, i]`` (arrays of `xp`)."""
    u = wl.strides_up
    if u == 1:
        return x
    xu = xp.zeros((x.shape[0], wl.upsampled_width, x.shape[2]), dtype=x.dtype)
    xu[:, ::u] = x[:, : -(-wl.upsampled_width // u)]
    return xu


def scipy_fft_peer(wl: Workload, x: np.ndarray, kernel: np.ndarray, name: str,
                   signal: Any = scipy.signal, xp: Any = np) -> Callable[[], np.ndarray] | str:
    """``oaconvolve`` / ``fftconvolve`` over the whole batch, or the reason it is n/a.

    `signal` is the module of the function (``cupyx.scipy.signal`` on a GPU) and
    `xp` that of the arrays `x` (the kernel moves there).

    The input ``(B, W, C, 1)`` and the kernel ``(1, K, C, F)`` broadcast to
    ``(B, N, C, F)`` full convolutions along axis 1; a separable layer reshapes
    them to ``C*F`` output channels (``c*F + f``), a mixing layer sums over ``C``.
    That sum is the only way to express channel mixing with these functions; it
    costs ``C*F`` inverse transforms per batch item instead of ``F``, which is
    acceptable for the filterbank (128 signals of 66k) but not for the
    analysis/synthesis layers (4096 signals per item, > 4 GB of intermediates,
    and an FFT is a poor fit for K = 9), so those are n/a.
    """
    mixing = not wl.channel_separable and wl.channels > 1
    if mixing and wl.channels * wl.filters > 1024:
        return (f"no channel-mixing op; the broadcast form needs {wl.channels * wl.filters} "
                f"full-length products per batch item")
    conv = getattr(signal, name)
    h = xp.asarray(conv_kernel(wl, kernel)[None])  # (1, K, C, F)
    off, d, n = wl.full_offset, wl.strides_down, wl.width_out
    stop = off + (n - 1) * d + 1
    b, c, f = wl.batch, wl.channels, wl.filters

    def run() -> np.ndarray:
        xu = upsample(wl, x, xp)
        full = conv(xu[:, :, :, None], h, mode="full", axes=1)
        y = full[:, off:stop:d]
        return y.sum(axis=2) if mixing else y.reshape(b, n, c * f)

    return run


def upfirdn_peer(wl: Workload, x: np.ndarray, kernel: np.ndarray, signal: Any = scipy.signal,
                 xp: Any = np) -> Callable[[], np.ndarray] | str:
    """``upfirdn`` of `signal` with the layer's strides (one filter for all channels)."""
    if not wl.polyphase:
        return "no strides"
    if wl.filters != 1 or not (wl.channels == 1 or wl.shared_ir):
        return "upfirdn applies one filter to every channel"
    h = conv_kernel(wl, kernel)[:, 0, 0]
    u, d, off, n = wl.strides_up, wl.strides_down, wl.full_offset, wl.width_out
    # upfirdn returns full[m * D]; we need full[off + n * D]: delay the filter by
    # `pad` zeros so that off + pad is a multiple of D.
    pad = (-off) % d
    h = xp.asarray(np.concatenate([np.zeros(pad, dtype=h.dtype), h]))
    start = (off + pad) // d

    def run() -> np.ndarray:
        y = signal.upfirdn(h, x, up=u, down=d, axis=1)[:, start:start + n]
        if y.shape[1] < n:  # zeros past the end of the full convolution
            y = xp.pad(y, ((0, 0), (0, n - y.shape[1]), (0, 0)))
        return y

    return run


# -- torch peer --------------------------------------------------------------


def torch_peer(wl: Workload, x: np.ndarray, kernel: np.ndarray,
               threads: int, device: str = "cpu") -> Callable[[np.ndarray | None], Any] | str:
    """A function of an optional input (default: the workload input), or why it is n/a.

    torch runs channels_first on `device`: the input is converted once, outside
    the timing, and the output is left as torch returns it ``(B, C_out, W_out)``.
    Correlation and downsampling use ``conv1d``; upsampling uses
    ``conv_transpose1d``, which convolves the zero-inserted input (its output
    index ``o`` is ``full[o + padding]``).
    """
    if torch is None:
        return "torch not importable"
    torch.set_num_threads(threads)
    k, c, f = wl.kernel_support, wl.channels, wl.filters
    groups = c if wl.channel_separable else 1
    u, d = wl.strides_up, wl.strides_down
    h = conv_kernel(wl, kernel)  # full-convolution kernel (K, C, F)

    def to_torch(xn: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(xn.transpose(0, 2, 1))).to(device)

    default_x = to_torch(x)

    if u == 1:
        g = h[::-1]  # correlation kernel: conv1d correlates
        if wl.channel_separable:  # (C*F, 1, K), output channel c*F + f
            w = g.transpose(1, 2, 0).reshape(c * f, 1, k)
        else:  # (F, C, K)
            w = g.transpose(2, 1, 0)
        weight = torch.from_numpy(np.ascontiguousarray(w)).to(device)
        left = k - 1 - wl.full_offset  # centre of the correlation kernel, 0 for valid

        def run(xt: Any = None) -> Any:
            xt = default_x if xt is None else xt
            width = xt.shape[-1]
            n = _width_out(wl, width)
            right = max(0, (n - 1) * d + k - width - left)
            with torch.inference_mode():
                if right <= left:  # symmetric padding, extra outputs (if any) dropped
                    y = torch_f.conv1d(xt, weight, stride=d, padding=left, groups=groups)
                else:
                    xp = torch_f.pad(xt, (left, right))
                    y = torch_f.conv1d(xp, weight, stride=d, groups=groups)
                return y[:, :, :n]

        return run

    # conv_transpose1d: weight (C_in, C_out / groups, K), true convolution.
    w = h.transpose(1, 2, 0)  # (C, F, K)
    weight = torch.from_numpy(np.ascontiguousarray(w)).to(device)
    off = wl.full_offset

    def run(xt: Any = None) -> Any:
        xt = default_x if xt is None else xt
        width = xt.shape[-1]
        n = _width_out(wl, width)
        span = (n - 1) * d + 1  # samples of the full convolution needed from `off`
        natural = (width - 1) * u - 2 * off + k
        extra = span - natural
        with torch.inference_mode():
            if 0 <= extra < u and d == 1:
                return torch_f.conv_transpose1d(xt, weight, stride=u, padding=off,
                                                output_padding=extra, groups=groups)
            y = torch_f.conv_transpose1d(xt, weight, stride=u, groups=groups)
            y = y[:, :, off:off + span:d]
            if y.shape[-1] < n:
                y = torch_f.pad(y, (0, n - y.shape[-1]))
            return y

    return run


def _width_out(wl: Workload, width: int) -> int:
    return replace(wl, width=width).width_out


def run_torch(wl: Workload, x: np.ndarray, kernel: np.ndarray, threads: int,
              repeat: int, budget_s: float) -> tuple[Any, Result]:
    try:
        run = torch_peer(wl, x, kernel, threads)
        if isinstance(run, str):
            return None, Result("n/a", note=run)
        estimate = None
        if wl.macs > 3 * TORCH_CALIBRATION_MACS:
            # Estimate from a shorter input (the leading samples), scaled by MACs.
            per_sample = wl.macs / wl.width
            width = int(TORCH_CALIBRATION_MACS / per_sample)
            if not wl.same:  # 'valid' needs at least K samples for one output
                width += wl.kernel_support - 1
            width = min(wl.width, max(width, 64))
            small = torch.from_numpy(np.ascontiguousarray(x[:, :width].transpose(0, 2, 1)))
            run(small)
            t0 = time.perf_counter()
            run(small)
            t_small = time.perf_counter() - t0
            estimate = t_small * wl.macs / replace(wl, width=width).macs
        note = "" if estimate is None else f"estimated {estimate:.1f} s/call"
        if estimate is not None and estimate > TORCH_MAX_SECONDS:
            return None, Result("skipped", note=note)
        if estimate is not None and estimate > TORCH_SINGLE_CALL_SECONDS:
            t0 = time.perf_counter()
            out = run()  # one call, timed, after the calibration calls
            ms = (time.perf_counter() - t0) * 1e3
            return out, Result("ok", ms, [ms], ms, note + "; timed once", min_ms=ms,
                               short=repeat > 1)
        out, result = measure(run, repeat, budget_s)
        result.note = "; ".join(s for s in (note, result.note) if s)
        return out, result
    except Exception as exc:  # noqa: BLE001
        return None, failure(exc)


# -- lower bounds ------------------------------------------------------------


class Wisdom:
    """FFTW wisdom of the bound's plans, kept between runs (planning is slow).

    FFTW_MEASURE planning of some lengths takes minutes (1 536 000 for the
    reverb).  The wisdom is saved after each bound is planned and loaded before
    the next; it is kept per CPU model, core count and pyFFTW version.  It is
    forgotten again after each bound, so the fftconv layers of the next workload
    plan as in a fresh process.
    """

    def __init__(self, path: Path | None, key: dict) -> None:
        self.path, self.key = path, key

    def load(self) -> bool:
        if self.path is None or not self.path.exists():
            return False
        try:
            data = json.loads(self.path.read_text())
            if data.get("key") != self.key:
                return False
            pyfftw.import_wisdom(tuple(base64.b64decode(w) for w in data["wisdom"]))
            return True
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def save(self) -> None:
        if self.path is None:
            return
        wisdom = [base64.b64encode(w).decode() for w in pyfftw.export_wisdom()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"key": self.key, "wisdom": wisdom}))


def fft_bound(wl: Workload, threads: int, repeat: int,
              wisdom: Wisdom) -> tuple[Result, dict]:
    """Time the FFTs alone that an ideal FFT path needs.

    Counted: one real forward transform per input signal (``batch * C_in``) and
    one real inverse transform per output signal (``batch * C_out``), each as a
    single batched pyFFTW plan (FFTW_MEASURE, planned before timing), executed
    without normalisation.  Lengths:

    * no strides: both at ``next_fast_len(W*U + K - 1)`` (one transform covers the
      whole signal, no overlap-add blocks);
    * strides (polyphase layers): the forward at ``next_fast_len(W + ceil(K/U) - 1)``
      and the inverse at ``next_fast_len(W_out + ceil(K/U) - 1)``, i.e. the layer's
      own input and output lengths plus the length of a phase kernel.

    Not counted: the kernel spectra (cached by a layer), the spectral products
    (``C_in * C_out`` complex MACs per bin for a mixing layer), padding, copies,
    layout changes and normalisation.
    """
    (sig_in, n_fwd), (sig_out, n_inv) = bound_transforms(wl)
    info = {"forward": {"signals": sig_in, "length": n_fwd},
            "inverse": {"signals": sig_out, "length": n_inv}, "threads": threads}
    if pyfftw is None:
        return failure(ImportError("the FFT bound needs pyFFTW")), info
    try:
        info["wisdom_loaded"] = wisdom.load()
        a = pyfftw.empty_aligned((sig_in, n_fwd), dtype="float32")
        s = pyfftw.empty_aligned((sig_out, n_inv // 2 + 1), dtype="complex64")
        t0 = time.perf_counter()
        fwd = pyfftw.builders.rfft(a, n=n_fwd, threads=threads, planner_effort="FFTW_MEASURE",
                                   avoid_copy=True)
        inv = pyfftw.builders.irfft(s, n=n_inv, threads=threads, planner_effort="FFTW_MEASURE",
                                    avoid_copy=True, overwrite_input=True)
        info["planning_s"] = round(time.perf_counter() - t0, 3)
        wisdom.save()
        rng = np.random.default_rng(0)
        fwd.input_array[:] = rng.standard_normal(fwd.input_array.shape, dtype=np.float32)
        spectrum = (rng.standard_normal(inv.input_array.shape, dtype=np.float32)
                    + 1j * rng.standard_normal(inv.input_array.shape, dtype=np.float32))
        spectrum = spectrum.astype(np.complex64)
        times = []
        for i in range(repeat + 1):  # the first round is a warm-up
            inv.input_array[:] = spectrum  # a c2r transform destroys its input
            t0 = time.perf_counter()
            fwd.execute()
            inv.execute()
            if i:
                times.append((time.perf_counter() - t0) * 1e3)
        return Result("ok", statistics.median(times), times, min_ms=min(times)), info
    except Exception as exc:  # noqa: BLE001
        return failure(exc), info
    finally:
        pyfftw.forget_wisdom()


def bound_transforms(wl: Workload) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(signals, length)`` of the forward and of the inverse transforms of the FFT bound."""
    if wl.polyphase:
        kp = -(-wl.kernel_support // wl.strides_up)
        n_fwd = scipy.fft.next_fast_len(wl.width + kp - 1, real=True)
        n_inv = scipy.fft.next_fast_len(wl.width_out + kp - 1, real=True)
    else:
        n_fwd = n_inv = scipy.fft.next_fast_len(
            wl.width * wl.strides_up + wl.kernel_support - 1, real=True)
    return (wl.batch * wl.channels, n_fwd), (wl.batch * wl.c_out, n_inv)


def gemm_bound(wl: Workload, repeat: int) -> tuple[Result, dict]:
    """Time one float32 matmul shaped like the polyphase im2col GEMM of the layer.

    With ``g = gcd(U, D)``, ``P = U/g`` output phases, ``S = D/g`` input phases and
    phase kernels of ``Kp = ceil(K / (U*S))`` taps, a direct polyphase evaluation is
    ``(B*T, S*C_in*Kp) @ (S*C_in*Kp, P*F)`` with ``T = ceil(W_out / P)`` outputs per
    phase; its MACs are the layer's MAC count up to the rounding of ``Kp``.
    """
    g = math.gcd(wl.strides_up, wl.strides_down)
    p, s = wl.strides_up // g, wl.strides_down // g
    kp = -(-wl.kernel_support // (wl.strides_up * s))
    rows = wl.batch * -(-wl.width_out // p)
    inner = s * wl.c_in_per_output * kp
    cols = p * wl.filters
    info = {"shape": [rows, inner, cols], "macs": rows * inner * cols}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    b = rng.standard_normal((inner, cols), dtype=np.float32)
    out = np.empty((rows, cols), dtype=np.float32)
    _, result = measure(lambda: np.matmul(a, b, out=out), repeat, budget_s=600)
    return result, info


# -- cross-check -------------------------------------------------------------


def as_channels_last(name: str, y: Any, data_format: str) -> np.ndarray:
    if name == "torch":
        y = y.numpy().transpose(0, 2, 1)
    elif name in METHODS and data_format == "channels_first":
        y = y.transpose(0, 2, 1)
    return np.asarray(y)


def cross_check(outputs: dict[str, np.ndarray], results: dict[str, Result]) -> str | None:
    """Compare every output with a reference; fills ``Result.check``; returns the reference."""
    order = ("direct", "fftconvolve", "torch", "oaconvolve", "upfirdn", "auto", "fft")
    ref_name = next((n for n in order if n in outputs), None)
    if ref_name is None:
        return None
    ref = outputs[ref_name]
    scale = float(np.max(np.abs(ref))) or 1.0
    for name, y in outputs.items():
        if name == ref_name:
            results[name].check = "ref"
            continue
        if y.shape != ref.shape:
            results[name].check = f"ERROR shape {y.shape} != {ref.shape}"
            continue
        err = float(np.max(np.abs(y.astype(np.float64) - ref))) / scale
        results[name].check = "ok" if err < CHECK_TOLERANCE else f"ERROR rel {err:.2e}"
        results[name].note = "; ".join(s for s in (results[name].note, f"rel err {err:.1e}") if s)
    return ref_name


# -- one workload --------------------------------------------------------------


def run_workload(wl: Workload, threads: int, repeat: int, budget_s: float,
                 wisdom: Wisdom, data_format: str) -> dict:
    x, kernel = make_data(wl, workload_seed(wl.name))
    results: dict[str, Result] = {}
    outputs: dict[str, np.ndarray] = {}

    def keep(name: str, out: Any, result: Result) -> None:
        results[name] = result
        if out is not None:
            outputs[name] = as_channels_last(name, out, data_format)
        log(f"  {name:12s} {result.cell():>10s} ms  {result.note}")

    for method, (out, result) in run_fftconv(wl, x, kernel, data_format, repeat,
                                             budget_s).items():
        keep(method, out, result)

    with scipy.fft.set_workers(threads):
        for name in ("oaconvolve", "fftconvolve"):
            run = scipy_fft_peer(wl, x, kernel, name)
            if isinstance(run, str):
                keep(name, None, Result("n/a", note=run))
                continue
            try:
                keep(name, *measure(run, repeat, budget_s))
            except Exception as exc:  # noqa: BLE001
                keep(name, None, failure(exc))

    run = upfirdn_peer(wl, x, kernel)
    if isinstance(run, str):
        keep("upfirdn", None, Result("n/a", note=run))
    else:
        try:
            keep("upfirdn", *measure(run, repeat, budget_s))
        except Exception as exc:  # noqa: BLE001
            keep("upfirdn", None, failure(exc))

    keep("torch", *run_torch(wl, x, kernel, threads, repeat, budget_s))

    ref = cross_check(outputs, results)
    outputs.clear()
    gc.collect()

    bound, bound_info = fft_bound(wl, threads, repeat, wisdom)
    log(f"  {'FFT bound':12s} {bound.cell():>10s} ms  {bound_info}")
    gemm, gemm_info = (gemm_bound(wl, repeat) if wl.gemm_bound
                       else (Result("n/a", note="not computed for this workload"), {}))
    if wl.gemm_bound:
        log(f"  {'GEMM bound':12s} {gemm.cell():>10s} ms  {gemm_info}")

    peers = {n: results[n] for n in PEERS if results[n].status == "ok"}
    best = min(peers, key=lambda n: peers[n].median_ms) if peers else None
    auto = results["auto"].median_ms if results["auto"].status == "ok" else None

    def ratio(den: float | None) -> float | None:
        return None if auto is None or not den else auto / den

    return {
        "name": wl.name,
        "description": wl.describe(),
        "workload": asdict(wl),
        "output_shape": [wl.batch, wl.width_out, wl.c_out],
        "macs": wl.macs,
        "seed": workload_seed(wl.name),
        "results": {n: asdict(r) for n, r in results.items()},
        "reference": ref,
        "best_peer": best,
        "best_peer_ms": peers[best].median_ms if best else None,
        "fft_bound": {**asdict(bound), **bound_info},
        "gemm_bound": {**asdict(gemm), **gemm_info},
        "auto_over_best_peer": ratio(peers[best].median_ms if best else None),
        "auto_over_fft_bound": ratio(bound.median_ms if bound.status == "ok" else None),
        "auto_over_gemm_bound": ratio(gemm.median_ms if gemm.status == "ok" else None),
    }


# -- machine record ------------------------------------------------------------


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model() -> dict:
    info: dict[str, Any] = {"model": platform.processor() or platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields: dict[str, str] = {}
    for line in text.splitlines():  # the first processor's block is enough
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" in fields:
        info["model"] = fields["model name"]
    flags = set(fields.get("flags", "").split())
    info["simd"] = sorted(flags & {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni",
                                   "avx512_bf16", "avx512_fp16", "amx_tile"})
    return info


def blas_info() -> Any:
    try:
        import threadpoolctl
    except ImportError:
        pass
    else:
        return {"source": "threadpoolctl", "pools": threadpoolctl.threadpool_info()}
    try:
        config = np.show_config(mode="dicts")
        deps = config.get("Build Dependencies", {})
        return {"source": "numpy.show_config",
                "blas": deps.get("blas"), "lapack": deps.get("lapack")}
    except Exception as exc:  # noqa: BLE001 - older numpy: text form, trimmed
        import contextlib
        import io
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            np.show_config()
        return {"source": "numpy.show_config", "text": buffer.getvalue()[:2000],
                "error": str(exc)}


def machine_record(threads: int) -> dict:
    return {
        "cores_usable": threads,
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            "fftconv": getattr(fftconv, "__version__", None),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pyfftw": getattr(pyfftw, "__version__", None),
            "torch": torch.__version__ if torch is not None else None,
        },
        "fftconv_path": str(Path(fftconv.__file__).resolve().parent),
        "blas": blas_info(),
        "env": {name: os.environ.get(name) for name in (
            "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# -- output --------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def render_table(rows: list[dict]) -> str:
    header = ["workload", "auto", "direct", "fft", "best peer", *PEERS,
              "FFT bound", "GEMM bound", "auto/peer", "auto/bound", "auto/GEMM"]
    lines = []
    for row in rows:
        res = {n: Result(**r) for n, r in row["results"].items()}
        best = row["best_peer"]
        best_cell = f"{_format_ms(row['best_peer_ms'])} ({best})" if best else "n/a"
        bound = Result(**{k: row["fft_bound"][k] for k in Result.__dataclass_fields__})
        gemm = Result(**{k: row["gemm_bound"][k] for k in Result.__dataclass_fields__})
        lines.append([row["name"], *(res[m].cell() for m in METHODS), best_cell,
                      *(res[p].cell() for p in PEERS), bound.cell(), gemm.cell(),
                      *(_ratio(row[k]) for k in ("auto_over_best_peer", "auto_over_fft_bound",
                                                 "auto_over_gemm_bound"))])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i in (0, 4) else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines]
    return "\n".join(out)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_checks(rows: list[dict]) -> str:
    names = [*METHODS, *PEERS]
    lines = []
    for row in rows:
        cells = []
        for n in names:
            r = row["results"][n]
            cells.append(f"{n}={r['check'] or r['status']}")
        lines.append(f"{row['name']:12s} (ref {row['reference']}): " + "  ".join(cells))
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="",
                        help="comma-separated workload names (default: all): "
                             + ",".join(w.name for w in WORKLOADS))
    parser.add_argument("--data-format", choices=("channels_last", "channels_first"),
                        default="channels_last",
                        help="layout of fftconv's input and output (default channels_last, "
                             "the workloads' shapes and the layer's default); torch always "
                             "runs channels_first")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed calls per method after the warm-up call (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: widths / 16, kernel supports / 4")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"where to write the results (default {DEFAULT_JSON})")
    parser.add_argument("--wisdom", type=Path, default=DEFAULT_WISDOM,
                        help="FFTW wisdom file for the FFT bound's plans "
                             f"(default {DEFAULT_WISDOM})")
    parser.add_argument("--no-wisdom", action="store_true",
                        help="plan the FFT bound from scratch and save no wisdom")
    parser.add_argument("--budget", type=float, default=150.0,
                        help="seconds of timed calls per method; slower methods get fewer "
                             "than --repeat calls, marked '*' (default 150)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    known = {w.name for w in WORKLOADS}
    args.names = [n.strip() for n in args.only.split(",") if n.strip()] or [
        w.name for w in WORKLOADS]
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = usable_cores()
    if torch is not None:
        torch.set_num_threads(threads)
    machine = machine_record(threads)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            log(f"warning: {name}={os.environ[name]!r} is set; the documented run unsets it.")
    log(f"cores {threads}, {machine['cpu']['model']}, fftconv from {machine['fftconv_path']}")
    if machine["loadavg_start"] and machine["loadavg_start"][0] > 0.5:
        log(f"warning: load average {machine['loadavg_start'][0]:.2f} before the run; "
            f"other processes may distort the timings.")
    wisdom = Wisdom(None if args.no_wisdom else args.wisdom,
                    {"cpu": machine["cpu"]["model"], "threads": threads,
                     "pyfftw": pyfftw.__version__})

    rows = []
    for wl in WORKLOADS:
        if wl.name not in args.names:
            continue
        if args.quick:
            wl = wl.quick()
        log(f"{wl.name}: {wl.describe()}, {wl.macs:.2e} MACs")
        rows.append(run_workload(wl, threads, args.repeat, args.budget, wisdom,
                                 args.data_format))

    title = (f"SignalConv1D, float32, fftconv {args.data_format}, torch channels_first, "
             f"times in ms "
             f"(median of {args.repeat} calls after a warm-up), {threads} cores"
             f"{', --quick shapes' if args.quick else ''}")
    print(title)
    print(render_table(rows))
    print()
    print(f"cross-check (max|y - ref| / max|ref| < {CHECK_TOLERANCE:g}):")
    print(render_checks(rows))
    print("* fewer timed calls than --repeat (slow method); ratios < 1: fftconv auto is faster.")

    machine["loadavg_end"] = _loadavg()
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {"only": args.names, "repeat": args.repeat, "quick": args.quick,
                    "data_format": args.data_format,
                    "wisdom": None if args.no_wisdom else str(args.wisdom),
                    "budget_s": args.budget, "direct_max_macs": DIRECT_MAX_MACS,
                    "torch_max_s": TORCH_MAX_SECONDS, "check_tolerance": CHECK_TOLERANCE},
        "machine": machine,
        "workloads": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
