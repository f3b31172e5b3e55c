"""The CPU side of the device boundary: numpy arrays, BLAS, per-thread scratch.

The numpy and pyFFTW backends differ only in their transforms; the array
primitives and the CPU's tuning knobs live here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fftconv import _scratch
from fftconv.backends.base import Backend, DeviceTraits
from fftconv.backends.cupy_backend import modules_of
from fftconv.paths import blas

#: Thresholds measured on the development VM (2 AVX-512 cores, OpenBLAS):
#: below 32 channel pairs numpy's broadcast multiply-add beats a batched complex
#: matmul of such small matrices; below 16 channels per side the shifted GEMMs
#: are too thin for BLAS and gathering windows into one GEMM wins, but on
#: time-major data from 8 input channels and 2 output channels shifted GEMMs ran
#: 1.3-10x faster than windows gathered with a stride of Ci samples (1 or 2
#: input channels, or 1 output channel: windows up to 35x faster for 101-1001 taps).
#: Windows gathered from such time-major data took 2.1-2.4x as long as from
#: channels-first data (8-12 input channels, 3-16 output channels, 7-25 taps,
#: float32, 3 x 200000 samples).  The per-bin product's complex GEMMs (OpenBLAS,
#: 216-4096 channel pairs, 4097-15361 bins) took as long with 2 or 3 columns as
#: with 4 (3 columns up to 1.3x longer), one column about half that.
CPU_TRAITS = DeviceTraits(kind="cpu", matmul_min_pairs=32, shifted_min_channels=16,
                          shifted_min_in_channels_time_major=8, time_major_gather_factor=2.2,
                          gemm_min_columns=4)

#: Channel counts up to which :meth:`CPUBackend.assign` copies channel by channel.
FEW_CHANNELS = 4
#: Bytes of time-major source that :meth:`CPUBackend.assign` copies into rows at a
#: time: numpy fills one row after another, each read across every channel, so a
#: source larger than the caches was read once per row.  Pieces of 32-512 KB
#: gathered FFT blocks of 4-38 channels from time-major input 1.5-4.6x faster
#: (65536-sample float64 blocks of 9 channels: 8.9 -> 3.2 ms), and the direct
#: path's windows (1-47 channels, 3-16 taps, 20000-100000 outputs) 1.1-6.2x.
TIME_MAJOR_PIECE_BYTES = 1 << 16
#: Fewest samples of a piece (for hundreds of channels).
MIN_PIECE = 64


class CPUBackend(Backend):
    """Arrays in host memory: numpy, BLAS through ctypes, per-thread scratch buffers."""

    traits = CPU_TRAITS

    def _as_strided(self, x: np.ndarray, shape: tuple[int, ...],
                    strides: tuple[int, ...]) -> np.ndarray:
        return as_strided(x, shape, strides, writeable=False)

    def reshape_view(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return np.reshape(a, shape, copy=False)

    def gemm_accumulate(self, a: np.ndarray, b: np.ndarray, out: np.ndarray,
                        beta: float) -> None:
        blas.gemm_accumulate(a, b, out, beta)

    def scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return _scratch.scratch(name, shape, dtype)

    def assign(self, dst: np.ndarray, src: np.ndarray) -> None:
        """``dst[...] = src``, fast when `dst` is time-major with few channels.

        When channels are the fastest axis of `dst` but few, numpy's own copy runs
        its inner loop over them (a few elements at a time); copying channel by
        channel runs it along time instead, about 4x faster for two channels.
        When `dst`'s rows are contiguous but `src` (of the same shape) is strided
        along them and contiguous along another axis (time-major data, channels
        the fastest axis), the copy runs in pieces along the last axis that span
        :data:`TIME_MAJOR_PIECE_BYTES` of `src`, each read from the cache by
        every row.
        """
        if dst.ndim >= 3 and 1 < dst.shape[1] <= FEW_CHANNELS and dst.strides[1] == dst.itemsize:
            for c in range(dst.shape[1]):
                dst[:, c] = src[:, c]
        elif (dst.ndim >= 3 and src.shape == dst.shape and dst.strides[-1] == dst.itemsize
              and abs(src.strides[-1]) > src.itemsize and src.itemsize in src.strides):
            piece = max(MIN_PIECE, TIME_MAJOR_PIECE_BYTES // abs(src.strides[-1]))
            for start in range(0, dst.shape[-1], piece):
                dst[..., start:start + piece] = src[..., start:start + piece]
        else:
            dst[...] = src

    def owns(self, x: Any) -> bool:
        return isinstance(x, np.ndarray) and modules_of(x) is None

    def to_device(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)
