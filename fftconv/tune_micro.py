"""Micro-benchmarks: a first value of each cost constant on this machine.

Block FFTs, the per-bin product, a read of kernel spectra, a GEMM and a
window gather are timed; see :func:`measure_config`.  The first of the three
steps of ``fftconv tune`` (:mod:`fftconv.tune`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Callable, Sequence
from math import log2

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fftconv.backends import Backend, get_backend
from fftconv.config import FLOAT32_BYTES, Config
from fftconv.engine import backend_options
from fftconv.paths.fft import _per_bin_product, corr_valid_fft, kernel_spectra

#: FFT lengths timed for ``fft.ns_per_nlogn`` (each over about 2**21 samples).
FFT_LENGTHS = (256, 2048, 16384, 131072)
#: Row lengths timed for ``fft.large_ns_per_nlogn``, as multiples of the
#: longest float32 row of ``fft.large_row_bytes``.
LARGE_FFT_MULTIPLES = (2, 4)
#: Bytes read for ``fft.spectra_ns_per_byte``: more than the caches hold.
SPECTRA_READ_BYTES = 64 << 20


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: plans, caches, page faults
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _product_ns(batch: int, c_in: int, c_out: int, repeat: int) -> float:
    """ns per complex multiply-accumulate of the per-bin product for these channels."""
    count, bins = 16, 1025
    rng = np.random.default_rng(1)
    shape = (batch, 1, c_in, count, bins)
    spec_in = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    backend = get_backend("numpy")
    spectra = kernel_spectra(np.ones((1, c_out, c_in, 1), np.float32), 2 * (bins - 1),
                             backend)  # laid out as the path lays them out
    out = np.empty((batch, 1, c_out, count, bins), np.complex64)
    seconds = _median_seconds(lambda: _per_bin_product(spec_in, spectra, out, backend),
                              repeat)
    return seconds * 1e9 / (batch * c_in * c_out * count * bins)


def _fft_ns_per_nlogn(backend: Backend, lengths: Sequence[int], repeat: int,
                      log: Callable[[str], None]) -> float:
    """Median ns per N log2 N of float32 block FFTs (forward and inverse) of `lengths`."""
    rng = np.random.default_rng(0)
    per_nlogn = []
    for n in lengths:
        rows = max(1, (1 << 21) // n)
        block = backend.block_fft(rows, rows, n, np.float32)
        block.real_in[...] = rng.standard_normal(block.real_in.shape)
        block.spectrum_in[...] = 1.0
        seconds = _median_seconds(lambda b=block: (b.forward(), b.inverse()), repeat) / 2
        per_nlogn.append(seconds * 1e9 / (rows * n * log2(n)))
        log(f"fft N={n:<7d} {seconds * 1e3:8.3f} ms per {rows} transforms")
    return float(np.median(per_nlogn))


def check_repeat(repeat: object) -> int:
    """`repeat` (timed runs per measurement) as an int; TypeError/ValueError unless >= 1."""
    if isinstance(repeat, bool) or not isinstance(repeat, numbers.Integral):
        raise TypeError(f"`repeat` must be an integer >= 1, got {repeat!r}.")
    if repeat < 1:
        raise ValueError(f"`repeat` must be an integer >= 1, got {repeat}.")
    return int(repeat)


def cpu_backend(config: Config) -> Backend:
    """The CPU backend that engines running with `config` share."""
    return get_backend("auto", **backend_options(config))


def measure_config(base: Config, repeat: int = 5, log: Callable[[str], None] = print) -> Config:
    """Return `base` with its cost constants measured on this machine (float32).

    Times block FFTs of several lengths through the configured backend (rows
    within and beyond ``fft.large_row_bytes``, which is kept), the
    per-bin complex product, a streaming read (the kernel spectra), a float32
    GEMM and a window gather.  Memory budgets, FFTW options and the
    streaming costs are kept from `base`.

    Parameters
    ----------
    base : Config
        Configuration to start from (its FFTW options select the backend).
    repeat : int
        Timed runs per measurement, ``>= 1``; each constant is their median.
    log : callable
        Called with one line of text per measurement.

    Returns
    -------
    Config
        Every measured constant finite and > 0, so the result written with
        :meth:`Config.to_toml` loads with :func:`~fftconv.config.load_config`.

    Raises
    ------
    TypeError
        If `base` is not a Config or `repeat` not an integer.
    ValueError
        If `repeat` is smaller than 1.
    RuntimeError
        If a measured constant is not a finite number > 0 (a timer too coarse
        or a failed timing); nothing is returned then.
    """
    if not isinstance(base, Config):
        raise TypeError(f"`base` must be a Config, got {base!r}.")
    repeat = check_repeat(repeat)
    backend = cpu_backend(base)
    rng = np.random.default_rng(0)

    per_nlogn = _fft_ns_per_nlogn(backend, FFT_LENGTHS, repeat, log)
    threshold = base.fft.large_row_bytes // FLOAT32_BYTES
    large_per_nlogn = (_fft_ns_per_nlogn(backend, [m * threshold for m in LARGE_FFT_MULTIPLES],
                                         repeat, log)
                       if threshold else base.fft.large_ns_per_nlogn)
    # Fixed cost of one chunk of blocks: a one-block problem is all overhead.
    x1 = np.ones((1, 1, 16), np.float32)
    spectra1 = kernel_spectra(np.ones((1, 1, 1, 1), np.float32), 16, backend)
    overhead = _median_seconds(lambda: corr_valid_fft(x1, spectra1, 1, 16, backend), repeat) / 2

    product_ns = [_product_ns(8, 8, 16, repeat), _product_ns(8, 4, 1, repeat)]

    # The per-bin product streams each chunk's kernel spectra from memory once:
    # a read of an array larger than the caches.
    spectra = np.ones(SPECTRA_READ_BYTES // FLOAT32_BYTES, np.float32)
    read_ns = _median_seconds(lambda: spectra.sum(), repeat) * 1e9 / spectra.nbytes

    w = rng.standard_normal((64, 640)).astype(np.float32)
    cols = rng.standard_normal((640, 8192)).astype(np.float32)
    gemm_ns = _median_seconds(lambda: w @ cols, repeat) * 1e9 / (64 * 640 * 8192)

    x = rng.standard_normal((8, 64, 4096)).astype(np.float32)
    windows = sliding_window_view(x, 9, axis=-1)
    gather = _median_seconds(lambda: np.ascontiguousarray(windows.transpose(1, 3, 0, 2)),
                             repeat)
    gather_ns = gather * 1e9 / (windows.size * windows.itemsize)

    fft = dataclasses.replace(base.fft, ns_per_nlogn=per_nlogn,
                              large_ns_per_nlogn=large_per_nlogn,
                              call_overhead_ns=overhead * 1e9, product_ns_per_mac=product_ns[0],
                              small_product_ns_per_mac=product_ns[1],
                              spectra_ns_per_byte=read_ns)
    direct = dataclasses.replace(base.direct, ns_per_mac=gemm_ns, gather_ns_per_byte=gather_ns)
    for name, value in [("fft.ns_per_nlogn", fft.ns_per_nlogn),
                        ("fft.large_ns_per_nlogn", fft.large_ns_per_nlogn),
                        ("fft.call_overhead_ns", fft.call_overhead_ns),
                        ("fft.product_ns_per_mac", fft.product_ns_per_mac),
                        ("fft.small_product_ns_per_mac", fft.small_product_ns_per_mac),
                        ("fft.spectra_ns_per_byte", fft.spectra_ns_per_byte),
                        ("direct.ns_per_mac", direct.ns_per_mac),
                        ("direct.gather_ns_per_byte", direct.gather_ns_per_byte)]:
        log(f"{name:<28} {value:.6g}")
        if not (math.isfinite(value) and value > 0):
            raise RuntimeError(f"measured {name} = {value!r} is not a finite number > 0; "
                               f"the timings failed or the timer is too coarse here.")
    return dataclasses.replace(base, fft=fft, direct=direct, source="<measured>")
