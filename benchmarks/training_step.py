#!/usr/bin/env python
"""Time a training step of `fftconv.torch.SignalConv1d` against PyTorch's own layers.

A step is ``y = layer(x); y.backward(g)`` with the input and the weights
requiring gradients (a layer inside a network): the forward pass, the input
gradient and the kernel gradient.  Peers: ``torch.nn.Conv1d``, or
``torch.nn.ConvTranspose1d`` for the upsampling layer, with the same kernel.
Data are random float32, channels_first ``(batch, channels, width)``.

fftconv's step is also timed with ``keep_spectra=True`` (the forward's input
spectra kept for the kernel gradient); the table gives that time and the bytes
of the spectra kept from the forward to the backward pass.

Before timing, every workload is cross-checked on a short input: the output,
the input gradient and the kernel gradient of both layers agree to 1e-3 of
their largest magnitude.  Times are medians of timed calls that take turns
between the two layers, after two warm-up calls each, back to back as in a
training loop (no pause between calls, unlike ``run_benchmarks.py``).  Where
torch would take minutes per step, it is timed on a shorter input and its
time scaled by the output width (its direct convolution costs output width x
K per channel pair); such cells are marked ``~``.

Run ``python benchmarks/training_step.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import fftconv
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(HERE.parent))
    import fftconv

import run_benchmarks  # noqa: E402 - the machine record is shared
import torch  # noqa: E402

from fftconv.torch import SignalConv1d  # noqa: E402

#: Relative tolerance of the cross-check (float32, sums over up to 10^6 terms).
CHECK_TOLERANCE = 1e-3
#: Width of the cross-check input (plus the kernel support for `valid` layers).
CHECK_WIDTH = 4096
#: Untimed calls of each layer before the timed rounds.
WARM_CALLS = 2


@dataclass(frozen=True)
class Workload:
    """A layer, its input ``(batch, channels, width)`` and the ratio it should reach."""

    name: str
    batch: int
    channels: int
    filters: int
    kernel_support: int
    width: int
    corr: bool
    strides_down: int = 1
    strides_up: int = 1
    padding: str = "same_zeros"
    channel_separable: bool = False
    target: float = 0.5  # fftconv time / torch time
    torch_width: int | None = None  # time torch on this width and scale (None: `width`)

    @property
    def c_out(self) -> int:
        return self.channels * self.filters if self.channel_separable else self.filters


WORKLOADS = (
    Workload("filterbank", 8, 8, 16, 257, 65_536, corr=True),
    Workload("longfir", 4, 1, 1, 8191, 262_144, corr=True, padding="valid",
             torch_width=65_536),
    Workload("reverb", 1, 2, 1, 96_000, 480_000, corr=False, channel_separable=True,
             torch_width=12_000),
    Workload("analysis", 32, 64, 64, 9, 4096, corr=True, strides_down=2, target=1.2),
    Workload("synthesis", 32, 64, 64, 9, 2048, corr=False, strides_up=2, target=1.2),
)


def quick(wl: Workload) -> Workload:
    """The workload with widths divided by 8 (the kernels kept; 2048 valid outputs at least)."""
    def narrow(width: int) -> int:
        return max(width // 8, wl.kernel_support + 2047) if wl.padding == "valid" else width // 8

    return replace(wl, width=narrow(wl.width),
                   torch_width=None if wl.torch_width is None else narrow(wl.torch_width))


# -- the two layers ----------------------------------------------------------------


def fftconv_layer(wl: Workload, keep_spectra: bool = False) -> SignalConv1d:
    return SignalConv1d(wl.channels, wl.filters, wl.kernel_support, corr=wl.corr,
                        strides_down=wl.strides_down, strides_up=wl.strides_up,
                        padding=wl.padding, channel_separable=wl.channel_separable,
                        kernel_parameter="variable", keep_spectra=keep_spectra)


def torch_layer(wl: Workload, kernel: np.ndarray) -> torch.nn.Module:
    """torch's layer computing the same output as fftconv's with `kernel` ``(K, C_in, F)``."""
    k = wl.kernel_support
    if wl.strides_up > 1:  # tfc's convolution with upsampling is a transposed convolution
        assert wl.strides_down == 1 and not wl.corr and not wl.channel_separable
        layer = torch.nn.ConvTranspose1d(wl.channels, wl.filters, k, stride=wl.strides_up,
                                         padding=(k - 1) // 2,
                                         output_padding=wl.strides_up - 1, bias=False)
        weight = kernel.transpose(1, 2, 0)  # (C_in, F, K), taps as they are
    else:
        groups = wl.channels if wl.channel_separable else 1
        if wl.padding == "valid":
            padding: int | str = 0
        elif wl.strides_down == 1:
            padding = "same"  # centres an even kernel at (K-1)//2, as tfc's convolution does
        else:
            assert k % 2 == 1
            padding = k // 2
        layer = torch.nn.Conv1d(wl.channels, wl.c_out, k, stride=wl.strides_down,
                                padding=padding, groups=groups, bias=False)
        correlation = kernel if wl.corr else kernel[::-1]
        # (C_out, C_in/groups, K); separable output channel c*F + f is input c, filter f.
        weight = (correlation.transpose(1, 2, 0).reshape(wl.c_out, 1, k) if groups > 1
                  else correlation.transpose(2, 1, 0))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
    return layer


def kernel_gradient(wl: Workload, layer: torch.nn.Module) -> np.ndarray:
    """torch's weight gradient in fftconv's kernel layout ``(K, C_in, F)``."""
    grad = layer.weight.grad.numpy()
    if wl.strides_up > 1:
        return grad.transpose(2, 0, 1)
    if wl.channel_separable:
        grad = grad.reshape(wl.channels, wl.filters, -1).transpose(2, 0, 1)
    else:
        grad = grad.transpose(2, 1, 0)
    return grad if wl.corr else grad[::-1]


def step(layer: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """One training step: forward, and backward into the input and the weights."""
    x.grad = None
    layer.zero_grad(set_to_none=True)
    y = layer(x)
    y.backward(g)
    return y


def data(wl: Workload, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random input of `width` samples and a random cotangent for `wl`'s layer."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(wl.batch, wl.channels, width, generator=generator)
    n_out = fftconv.SignalConv1D(wl.filters, wl.kernel_support, strides_down=wl.strides_down,
                                 strides_up=wl.strides_up, padding=wl.padding).spec.output_width(
                                     width)
    g = torch.randn(wl.batch, wl.c_out, n_out, generator=generator)
    return x.requires_grad_(True), g


# -- checking and timing -----------------------------------------------------------


def cross_check(wl: Workload, ours: SignalConv1d, theirs: torch.nn.Module) -> float:
    """Largest relative difference of output, input gradient and kernel gradient."""
    x, g = data(wl, CHECK_WIDTH + (wl.kernel_support if wl.padding == "valid" else 0), seed=1)
    y0 = step(ours, x, g).detach().numpy()
    dx0, dk0 = x.grad.numpy().copy(), ours.kernel.grad.numpy()
    y1 = step(theirs, x, g).detach().numpy()
    dx1, dk1 = x.grad.numpy(), kernel_gradient(wl, theirs)
    return max(float(np.abs(a - b).max() / np.abs(b).max())
               for a, b in ((y0, y1), (dx0, dx1), (dk0, dk1)))


def run(wl: Workload, repeat: int, budget_s: float) -> dict:
    ours, kept = fftconv_layer(wl), fftconv_layer(wl, keep_spectra=True)
    kept.set_weights(ours.get_weights())
    theirs = torch_layer(wl, ours.kernel.detach().numpy())
    error = max(cross_check(wl, layer, theirs) for layer in (ours, kept))
    if error > CHECK_TOLERANCE:
        raise AssertionError(f"{wl.name}: fftconv and torch differ by {error:.2e}")
    x, g = data(wl, wl.width, seed=2)
    xt, gt = (x, g) if wl.torch_width is None else data(wl, wl.torch_width, seed=3)
    scale = g.shape[-1] / gt.shape[-1]
    with torch.no_grad():
        forward = median_ms({"fftconv": lambda: ours(x), "torch": lambda: theirs(xt)},
                            repeat, budget_s)
    steps = median_ms({"fftconv": lambda: step(ours, x, g), "kept": lambda: step(kept, x, g),
                       "torch": lambda: step(theirs, xt, gt)}, repeat, budget_s)
    times = {f"{name} {what}": ms * (scale if name == "torch" else 1.0)
             for what, medians in (("fwd", forward), ("step", steps))
             for name, ms in medians.items()}
    spectra = kept(x).grad_fn.kept  # what a backward pass would take, on the timed plan
    return {"workload": wl, "times": times, "scaled": scale != 1.0, "check": error,
            "kept_bytes": sum(a.nbytes for chunks in spectra.values() for a in chunks)}


def median_ms(calls: dict[str, Callable[[], object]], repeat: int,
              budget_s: float) -> dict[str, float]:
    """Median ms of each call over rounds in which the calls take turns.

    After :data:`WARM_CALLS` untimed calls each, up to `repeat` rounds run
    while the calls' total time stays within `budget_s` (one round at least).
    """
    for call in calls.values():
        for _ in range(WARM_CALLS):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    start = time.perf_counter()
    for _ in range(repeat):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - began)
        if time.perf_counter() - start > budget_s:
            break
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def render(rows: list[dict]) -> str:
    header = ("workload", "fftconv fwd", "fftconv step", "kept step", "kept MB", "torch fwd",
              "torch step", "step ratio", "target", "met")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        t, wl = row["times"], row["workload"]
        mark = "~" if row["scaled"] else ""
        ratio = t["fftconv step"] / t["torch step"]
        lines.append(" | ".join([
            wl.name, f"{t['fftconv fwd']:.1f}", f"{t['fftconv step']:.1f}",
            f"{t['kept step']:.1f}", f"{row['kept_bytes'] / 1e6:.1f}",
            f"{mark}{t['torch fwd']:.1f}", f"{mark}{t['torch step']:.1f}",
            f"{mark}{ratio:.2f}", f"<= {wl.target:g}", "yes" if ratio <= wl.target else "no"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per layer")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of timed calls per layer and workload")
    parser.add_argument("--quick", action="store_true",
                        help="widths divided by 8, 3 timed calls (about a minute)")
    args = parser.parse_args(argv)
    workloads = [quick(wl) for wl in WORKLOADS] if args.quick else list(WORKLOADS)
    if args.quick:
        args.repeat = min(args.repeat, 3)
    if args.only:
        names = set(args.only.split(","))
        workloads = [wl for wl in workloads if wl.name in names]
    machine = run_benchmarks.machine_record(torch.get_num_threads())
    print(f"# {machine['cpu']['model']}, {machine['cores_usable']} threads, "
          f"numpy {machine['versions']['numpy']}, pyfftw {machine['versions']['pyfftw']}, "
          f"torch {machine['versions']['torch']}, load average {machine['loadavg_start']}")
    rows = []
    for wl in workloads:
        run_benchmarks.log(f"{wl.name}: input {(wl.batch, wl.channels, wl.width)}, "
                           f"K={wl.kernel_support}")
        rows.append(run(wl, args.repeat, args.budget))
    print("Times in ms (medians); step = forward + backward (input and kernel gradients); "
          "kept: with keep_spectra, holding 'kept MB' of input spectra between the passes.")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
