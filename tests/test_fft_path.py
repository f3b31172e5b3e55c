"""The overlap-save FFT path against the direct path and an independent float64 FFT."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.signal
from golden import RTOL, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fftconv.backends import get_backend
from fftconv.paths.direct import corr_valid_direct
from fftconv.paths.fft import block_bytes, corr_valid_fft, kernel_spectra

BACKENDS = ["numpy", "pyfftw"]


@st.composite
def problems(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kp = draw(st.integers(1, 40))
    length = kp + draw(st.integers(0, 300))
    n_fft = draw(st.sampled_from([8, 16, 21, 48, 64, 105, 128, 512]).filter(lambda n: n >= kp)
                 | st.just(max(kp, 8)))
    budget = draw(st.sampled_from([1, 4096, 1 << 26]))  # 1 byte forces one block per chunk
    return draw(st.integers(0, 2)), groups, c_in, c_out, kp, length, n_fft, budget


@settings(max_examples=150, deadline=None)
@given(problems(), st.sampled_from(["float64", "float32"]), st.sampled_from(BACKENDS),
       st.integers(0, 2**32 - 1))
def test_fft_matches_direct(problem, dtype, backend_name, seed):
    b, groups, c_in, c_out, kp, length, n_fft, budget = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, groups * c_in, length)).astype(dtype)
    w = rng.standard_normal((groups, c_out, c_in, kp)).astype(dtype)
    backend = get_backend(backend_name)
    y = corr_valid_fft(x, kernel_spectra(w, n_fft, backend), kp, n_fft, backend, budget)
    expected = corr_valid_direct(x.astype(np.float64), w.astype(np.float64))
    assert y.dtype == np.dtype(dtype)
    assert_close(y, expected, RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("c_out, c_in", [(1, 1), (2, 3), (4, 7), (8, 8), (3, 16)])
def test_kernel_spectra_are_laid_out_for_the_product(c_out, c_in, backend_name):
    """Few channel pairs: each pair's bins contiguous (the broadcast product's reads);
    many pairs: contiguous (G, F, Co, Ci) for the batched GEMMs; the values the same."""
    backend = get_backend(backend_name)
    w = np.random.default_rng(c_out * c_in).standard_normal((2, c_out, c_in, 5))
    spectra = kernel_spectra(w, 16, backend)
    assert spectra.shape == (2, 9, c_out, c_in)
    if c_out * c_in < backend.traits.matmul_min_pairs:
        assert spectra.transpose(0, 2, 3, 1).flags.c_contiguous
    else:
        assert spectra.flags.c_contiguous
    expected = np.conj(np.fft.rfft(w, 16)).transpose(0, 3, 1, 2) / 16
    np.testing.assert_allclose(spectra, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("taps", [1000, 100_000])
def test_float32_long_kernel_accuracy(taps):
    """float32 FFT results stay within 1e-5 of max|y| of a float64 reference."""
    rng = np.random.default_rng(taps)
    x = rng.standard_normal((1, 1, 3 * taps))
    w = rng.standard_normal((1, 1, 1, taps)) / np.sqrt(taps)
    backend = get_backend("auto")
    n_fft = 4 * 65536 if taps > 50_000 else 4096
    y = corr_valid_fft(x.astype(np.float32), kernel_spectra(w.astype(np.float32), n_fft, backend),
                       taps, n_fft, backend)
    expected = scipy.signal.correlate(x[0, 0], w[0, 0, 0], mode="valid", method="fft")
    assert_close(y[0, 0], expected, 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_memory_bounded_by_block(backend_name):
    """Peak extra memory is the block budget plus the output, not the signal length."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 4_000_000)).astype(np.float32)  # 32 MB
    w = rng.standard_normal((1, 2, 2, 1000)).astype(np.float32)
    backend = get_backend(backend_name)
    n_fft, budget = 8192, 1 << 21
    spectra = kernel_spectra(w, n_fft, backend)
    corr_valid_fft(x[:, :, :100_000], spectra, 1000, n_fft, backend, budget)  # plans, warm-up
    tracemalloc.start()
    y = corr_valid_fft(x, spectra, 1000, n_fft, backend, budget)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bound = y.nbytes + 2 * max(budget, block_bytes(1, 2, 2, n_fft, 4))
    assert peak <= bound, (peak, bound)
    assert peak - y.nbytes < x.nbytes / 4  # far below a copy of the input
