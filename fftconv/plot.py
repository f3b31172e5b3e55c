"""Figures for the command line: the planner's estimated costs against kernel length.

matplotlib is optional: it is imported only when a figure is drawn, and only
``matplotlib.figure.Figure`` is used (no pyplot, so no GUI backend is chosen).
Without matplotlib, :func:`figure_class` raises an ImportError that says how to
install it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from fftconv.config import Config, load_config
from fftconv.planner import Plan, plan
from fftconv.spec import ConvSpec

#: What to run when matplotlib is missing.
INSTALL_HINT = "pip install matplotlib"

#: Colours of the two paths, used by every figure.
PATH_COLOURS = {"direct": "tab:orange", "fft": "tab:blue"}


def figure_class() -> Any:
    """matplotlib's ``Figure`` class.

    Raises
    ------
    ImportError
        If matplotlib is not installed; the message says how to install it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"plotting needs matplotlib, which is not installed "
                          f"({INSTALL_HINT})") from err
    return Figure


@dataclass(frozen=True)
class CostCurves:
    """Estimated costs of the direct path and the best FFT length over kernel lengths.

    Attributes
    ----------
    kernel_supports : ndarray of int, shape (n,)
        Kernel lengths ``K``, increasing; includes the layer's own.
    direct_ms, fft_ms : ndarray of float, shape (n,)
        Estimated time of one call (ms): the direct path, and the FFT path at
        its cheapest FFT length.
    fft_lengths : ndarray of int, shape (n,)
        That cheapest FFT length.
    kernel_support : int
        The layer's own ``K``.
    plan : Plan
        The plan at the layer's own ``K``.
    crossovers : tuple of float
        Kernel lengths where the cheaper path changes, interpolated on the log
        scale between neighbouring samples (empty when one path wins throughout).
    """

    kernel_supports: np.ndarray
    direct_ms: np.ndarray
    fft_ms: np.ndarray
    fft_lengths: np.ndarray
    kernel_support: int
    plan: Plan
    crossovers: tuple[float, ...]


def plan_cost_curves(spec: ConvSpec, input_shape: tuple[int, int, int], dtype: Any, *,
                     filters: int, config: Config | str | os.PathLike | None = None,
                     backend: str = "auto", threads: int = 1, span: float = 64.0,
                     points: int = 61, time_major: bool = False) -> CostCurves:
    """Plan the layer at kernel lengths around its own and collect the estimated costs.

    Parameters
    ----------
    spec : ConvSpec
        The layer; only its `kernel_support` is varied.
    input_shape : tuple of 3 int, (B, C_in, W)
        Channels first.
    dtype : float32 or float64
    filters : int
    config : Config, path or None
        Cost model (see :func:`fftconv.config.load_config`).
    backend : str
        Backend name recorded in the plans.
    threads : int
        Threads recorded in the plans.
    span : float
        Kernel lengths from ``K / span`` to ``K * span``, on a log scale (> 1).
    points : int
        Number of kernel lengths sampled (>= 2; duplicates after rounding merge).
    time_major : bool
        Inputs lie channels last in memory (see :func:`~fftconv.planner.plan`).

    Returns
    -------
    CostCurves
        Kernel lengths too long for the input width (``padding='valid'``) are left out.
    """
    if span <= 1:
        raise ValueError(f"`span` must be > 1, got {span!r}.")
    if points < 2:
        raise ValueError(f"`points` must be >= 2, got {points!r}.")
    config = load_config(config)
    own = spec.kernel_support
    width = input_shape[-1]
    grid = np.geomspace(max(1.0, own / span), own * span, points)
    ks = np.unique(np.concatenate([np.rint(grid).astype(np.int64), [own]]))
    rows = []
    own_plan = None
    for k in ks:
        spec_k = dataclasses.replace(spec, kernel_support=int(k))
        if spec_k.output_width(width) < 1:
            continue  # 'valid' with a kernel longer than the input
        p = plan(spec_k, input_shape, dtype, backend, config, filters=filters,
                 method="auto", threads=threads, time_major=time_major)
        direct = min(c.cost_ns for c in p.candidates if c.path == "direct")
        best_fft = min((c for c in p.candidates if c.path == "fft"), key=lambda c: c.cost_ns)
        rows.append((int(k), direct / 1e6, best_fft.cost_ns / 1e6, best_fft.n_fft))
        if k == own:
            own_plan = p
    assert own_plan is not None  # the layer's own K is valid for its input
    k_arr, direct_ms, fft_ms, lengths = (np.array(col) for col in zip(*rows, strict=True))
    return CostCurves(kernel_supports=k_arr, direct_ms=direct_ms, fft_ms=fft_ms,
                      fft_lengths=lengths, kernel_support=own, plan=own_plan,
                      crossovers=_crossovers(k_arr, direct_ms, fft_ms))


def _crossovers(ks: np.ndarray, direct: np.ndarray, fft: np.ndarray) -> tuple[float, ...]:
    """Where ``log(direct / fft)`` changes sign, interpolated linearly in ``log K``."""
    gap = np.log(direct) - np.log(fft)
    out = []
    for i in np.flatnonzero(np.sign(gap[:-1]) * np.sign(gap[1:]) < 0):
        a, b = np.log(ks[i]), np.log(ks[i + 1])
        t = gap[i] / (gap[i] - gap[i + 1])
        out.append(float(np.exp(a + t * (b - a))))
    return tuple(out)


def plan_cost_figure(curves: CostCurves, title: str = "") -> Any:
    """Draw :class:`CostCurves`: both paths' estimated time against kernel length.

    The top panel shows the estimated time of the direct path and of the FFT
    path at its best length (log-log), the layer's own ``K`` and the plan
    chosen there, and every crossover; the bottom panel the best FFT length.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = figure_class()
    fig = figure(figsize=(8, 6.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ks = curves.kernel_supports
    top.plot(ks, curves.direct_ms, color=PATH_COLOURS["direct"], label="direct")
    top.plot(ks, curves.fft_ms, color=PATH_COLOURS["fft"], label="fft (best FFT length)")
    # Shade where each path is the cheaper one, split at the crossovers.
    edges = [float(ks[0]), *curves.crossovers, float(ks[-1])]
    first_cheaper = "direct" if curves.direct_ms[0] < curves.fft_ms[0] else "fft"
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        path = first_cheaper if i % 2 == 0 else ({"direct", "fft"} - {first_cheaper}).pop()
        top.axvspan(lo, hi, color=PATH_COLOURS[path], alpha=0.07, linewidth=0)
    if curves.crossovers:
        where = ", ".join(f"K ≈ {_round_k(k)}" for k in curves.crossovers)
        for i, k in enumerate(curves.crossovers):
            top.axvline(k, color="0.35", linestyle="--", linewidth=1,
                        label=f"crossover: {where}" if i == 0 else None)
    own = curves.kernel_support
    chosen = curves.plan
    what = "direct" if chosen.path == "direct" else f"fft, N={chosen.n_fft}"
    top.axvline(own, color="black", linewidth=1.2, label=f"this layer: K={own} → {what}")
    index = int(np.flatnonzero(ks == own)[0])
    for path, values in (("direct", curves.direct_ms), ("fft", curves.fft_ms)):
        chosen_here = path == chosen.path
        top.plot([own], [values[index]], marker="o", markersize=7 if chosen_here else 5,
                 color=PATH_COLOURS[path], markeredgecolor="black" if chosen_here else "none")
    top.set(xscale="log", yscale="log", ylabel="estimated time per call (ms)")
    top.grid(True, which="both", alpha=0.25)
    top.legend(loc="upper left", fontsize=8)
    if title:
        top.set_title(title, fontsize=9)

    bottom.step(ks, curves.fft_lengths, where="mid", color=PATH_COLOURS["fft"], marker=".",
                markersize=3)
    bottom.axvline(own, color="black", linewidth=1.2)
    bottom.set(xscale="log", xlabel="kernel_support K (log scale)", ylabel="best FFT length")
    bottom.set_yscale("log", base=2)
    bottom.grid(True, which="both", alpha=0.25)
    return fig


def _round_k(k: float) -> str:
    """A kernel length to about three significant digits."""
    if k < 10:
        return f"{k:.1f}"
    return str(int(round(k, min(0, 2 - int(math.floor(math.log10(k)))))))


def describe_layer(spec: ConvSpec, input_shape: tuple[int, int, int], dtype: Any,
                   filters: int, config: Config) -> str:
    """A one-line title for :func:`plan_cost_figure`."""
    parts = [f"filters={filters}", "corr" if spec.corr else "conv", spec.padding]
    if spec.strides_down > 1:
        parts.append(f"down={spec.strides_down}")
    if spec.strides_up > 1:
        parts.append(f"up={spec.strides_up}")
    if spec.channel_separable:
        parts.append("separable")
    batch, c_in, width = input_shape
    return (f"estimated cost by kernel length: input (B={batch}, C_in={c_in}, W={width}), "
            f"{np.dtype(dtype).name}, {', '.join(parts)}\nconfig: {config.source}")
