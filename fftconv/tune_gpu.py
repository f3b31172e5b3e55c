"""Measure and fit the ``[cupy]`` constants of the cost model on the current GPU.

``fftconv tune --backend cupy`` runs :func:`tune_cupy`, the CPU tuner's three
steps (:func:`fftconv.tune.tune_on`) on the GPU:

1. :func:`measure_cupy`: micro-benchmarks of a kernel launch, cuFFT block
   transforms of short and long lengths, the per-bin product in both its forms,
   a GEMM of the shifted direct path and a device copy, each timed to the end
   of its work on the device;
2. a suite of real layer calls run through the ``'cupy'`` backend, each
   candidate forced and timed to the end of its device work
   (:func:`fftconv.tune_suite.measure_suite`);
3. the fit of :data:`~fftconv.tune_fit.CUDA_FITTED_CONSTANTS` to the suite's
   regret (:func:`fftconv.tune_fit.fit_constants`).

The other constants of the section (planning, budgets, plan-cache bounds) are
kept from the base; the CPU's sections are not touched.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from math import log2
from typing import Any

import numpy as np

from fftconv.backends import Backend
from fftconv.config import Config
from fftconv.paths.fft import _per_bin_product, kernel_spectra
from fftconv.tune import TuneResult, tune_on

#: Points transformed per timing of the cuFFT constants (rows * N).
FFT_POINTS = 1 << 24
#: Lengths timed for ``cufft_ns_per_nlogn`` (short) and ``cufft_large_ns_per_nlogn``.
SHORT_LENGTHS = (512, 2048)
LONG_LENGTHS = (65536, 1 << 20)
#: Rows of the timed GEMM ``(rows, 64) @ (64, 64)`` and samples of the timed copy.
GEMM_ROWS = 1 << 20
COPY_SAMPLES = 1 << 26


def _median_ns(backend: Backend, fn: Callable[[], Any], repeat: int, calls: int = 1) -> float:
    """Median ns of `calls` calls of `fn`, each timing ended by a device synchronisation."""
    fn()
    backend.synchronize()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        backend.synchronize()
        times.append((time.perf_counter() - start) * 1e9 / calls)
    return float(np.median(times))


def _fft_ns_per_nlogn(backend: Backend, lengths: tuple[int, ...], repeat: int) -> float:
    rates = []
    for n in lengths:
        rows = max(1, FFT_POINTS // n)
        block = backend.block_fft(rows, rows, n, np.float32)
        block.real_in[...] = 1.0
        block.spectrum_in[...] = 1.0
        ns = _median_ns(backend, lambda b=block: (b.forward(), b.inverse()), repeat) / 2
        rates.append(ns / (rows * n * log2(n)))
    return float(np.median(rates))


def _product_ns(backend: Backend, c_in: int, c_out: int, repeat: int) -> float:
    xp = backend.xp
    batch, count, bins = 8, 64, 1025
    spec_in = xp.ones((batch, 1, c_in, count, bins), np.complex64)
    spectra = kernel_spectra(np.ones((1, c_out, c_in, 1), np.float32), 2 * (bins - 1),
                             backend)  # laid out as the path lays them out
    out = xp.empty((batch, 1, c_out, count, bins), np.complex64)
    ns = _median_ns(backend, lambda: _per_bin_product(spec_in, spectra, out, backend), repeat)
    return ns / (batch * c_in * c_out * count * bins)


def measure_cupy(base: Config, backend: Backend, repeat: int = 5,
                 log: Callable[[str], None] = print) -> Config:
    """`base` with the ``[cupy]`` constants measured on `backend`'s device (float32).

    Parameters
    ----------
    base : Config
    backend : Backend
        A ``'cupy'`` backend (:func:`fftconv.backends.get_backend`).
    repeat : int
        Timed runs per measurement, ``>= 1``; each constant is their median.
    log : callable
        Called with one line per measurement.

    Raises
    ------
    RuntimeError
        If a measured constant is not a finite number > 0.
    """
    xp = backend.xp
    with backend.activate():
        one = xp.zeros(1, np.float32)
        launch = _median_ns(backend, lambda: one.__iadd__(1), repeat, calls=100)
        log(f"kernel launch {launch / 1e3:.1f} us")
        short = _fft_ns_per_nlogn(backend, SHORT_LENGTHS, repeat)
        long = _fft_ns_per_nlogn(backend, LONG_LENGTHS, repeat)
        log(f"cuFFT {short:.3g} ns per N log2 N up to {SHORT_LENGTHS[-1]}, {long:.3g} beyond")
        product = _product_ns(backend, 8, 8, repeat)
        small = _product_ns(backend, 2, 1, repeat)
        log(f"per-bin product {product:.3g} ns per MAC (matmul), {small:.3g} (broadcast)")
        a = xp.ones((GEMM_ROWS, 64), np.float32)
        b = xp.ones((64, 64), np.float32)
        c = xp.zeros((GEMM_ROWS, 64), np.float32)  # accumulated into: no garbage
        gemm = _median_ns(backend, lambda: backend.gemm_accumulate(a, b, c, 1.0),
                          repeat) / (a.shape[0] * 64 * 64)
        log(f"GEMM {gemm:.3g} ns per MAC")
        src = xp.ones(COPY_SAMPLES, np.float32)
        dst = xp.empty_like(src)
        copy = _median_ns(backend, lambda: dst.__setitem__(Ellipsis, src), repeat) / src.nbytes
        log(f"copy {copy:.3g} ns per byte")
    measured = {"launch_overhead_ns": launch, "cufft_ns_per_nlogn": short,
                "cufft_large_ns_per_nlogn": long, "bin_product_ns_per_mac": product,
                "bin_small_product_ns_per_mac": small, "gemm_ns_per_mac": gemm,
                "copy_ns_per_byte": copy}
    bad = {key: value for key, value in measured.items() if not 0 < value < float("inf")}
    if bad:
        raise RuntimeError(f"GPU micro-benchmarks gave no usable time for {sorted(bad)}.")
    cupy = dataclasses.replace(base.cupy, **measured)
    return dataclasses.replace(base, cupy=cupy, source="<measured>")


def tune_cupy(base: Config, backend: Backend, suite: str = "quick", repeat: int = 5,
              seed: int = 0, log: Callable[[str], None] = print) -> TuneResult:
    """Fit the ``[cupy]`` constants of `base` to a suite of layer calls on `backend`'s GPU.

    The micro-benchmarks (:func:`measure_cupy`) give the first values; the
    suite is drawn with `base`'s GPU costs and the fit starts from both (see
    :func:`fftconv.tune.tune_on`).

    Parameters
    ----------
    backend : Backend
        A ``'cupy'`` backend (:func:`fftconv.backends.get_backend`).
    base, suite, repeat, seed, log
        As for :func:`fftconv.tune.tune_config`.

    Returns
    -------
    TuneResult
        Its configuration differs from `base` in ``[cupy]`` constants only.

    Raises
    ------
    TypeError, ValueError
        If an argument is of the wrong type or out of range, or `backend` is
        not a GPU's (ValueError).
    RuntimeError
        If a micro-benchmark or the whole suite failed to give a time.
    """
    if not isinstance(backend, Backend):
        raise TypeError(f"`backend` must be a Backend, got {backend!r}.")
    if backend.traits.kind != "cuda":
        raise ValueError(f"`backend` must be a 'cupy' backend, got {backend!r}.")
    return tune_on(base, lambda: measure_cupy(base, backend, repeat=repeat, log=log), backend,
                   suite=suite, repeat=repeat, seed=seed, log=log)
