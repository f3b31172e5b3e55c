"""Hostile use: concurrent first calls, huge strides, odd dtypes and shapes, NaN/Inf."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from golden import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_signal_conv1d

from fftconv import SignalConv1D, signal_conv1d
from fftconv.reduction import check_fits
from fftconv.spec import ConvSpec


def _first_calls_at_once(layer: SignalConv1D, inputs: list) -> list:
    """Call an unbuilt `layer` on every input from its own thread, all released together."""
    outputs: list = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def call(i: int) -> None:
        barrier.wait()
        outputs[i] = layer(inputs[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outputs


def test_concurrent_first_calls_build_once():
    """Threads racing into an unbuilt layer all use the kernel the layer keeps."""
    for attempt in range(5):
        layer = SignalConv1D(4, 65, padding="same_zeros", dtype="float64")
        rng = np.random.default_rng(attempt)
        inputs = [rng.standard_normal((1, 200 + 7 * i, 2)) for i in range(8)]
        outputs = _first_calls_at_once(layer, inputs)
        kernel = layer.kernel
        for x, y in zip(inputs, outputs, strict=True):
            assert_close(y, reference_signal_conv1d(x, kernel, padding="same_zeros"), 1e-10)


@pytest.mark.parametrize("dtype", [np.float64, "f8", np.dtype("float64"), "float64", ">f8"])
def test_any_spelling_of_float64_is_accepted(dtype):
    layer = SignalConv1D(2, 3, dtype=dtype)
    assert layer.dtype == np.float64
    assert layer(np.ones((1, 5, 1))).dtype == np.float64
    assert SignalConv1D.from_config(layer.get_config()).dtype == np.float64


@pytest.mark.parametrize(("dtype", "error"), [
    ("float16", ValueError), (np.int32, ValueError), ("complex64", ValueError),
    ("floaty", TypeError), (None, TypeError), (3.5, TypeError)])
def test_other_dtypes_are_refused_by_name(dtype, error):
    with pytest.raises(error, match=r"`dtype` must be float32 or float64"):
        SignalConv1D(2, 3, dtype=dtype)


def test_ragged_input_says_rectangular():
    with pytest.raises(TypeError, match=r"`x` must be a rectangular array"):
        signal_conv1d([[[1.0, 2.0], [3.0]]], np.ones((1, 1, 1)))
    with pytest.raises(TypeError, match=r"`x` must be a rectangular array"):
        SignalConv1D(1, 1)([[[1.0], [2.0, 3.0]]])


@pytest.mark.parametrize(("data_format", "shape", "hint"), [
    ("channels_last", (10,), "x[None, :, None]"),
    ("channels_first", (10,), "x[None, None, :]"),
    ("channels_last", (2, 10), "x[:, :, None]"),
    ("channels_first", (2, 10), "x[:, None, :]"),
])
def test_wrong_rank_shows_the_reshape(data_format, shape, hint):
    with pytest.raises(ValueError, match=r"`x` must have rank 3.*" + hint.replace("[", r"\[")):
        signal_conv1d(np.ones(shape), np.ones((3, 1, 1)), data_format=data_format)
    if len(shape) == 1:  # and the hint is right
        x = np.arange(10.0)
        fixed = x[None, :, None] if data_format == "channels_last" else x[None, None, :]
        y = signal_conv1d(fixed, np.ones((3, 1, 1)), data_format=data_format)
        np.testing.assert_allclose(y.ravel(), np.convolve(x, np.ones(3), "valid"))


def test_torch_layout_mismatch_names_the_layout():
    x = np.ones((1, 20, 3))
    message = r"\(K, C_in, filters\) with C_in = 3.*transpose\(2, 1, 0\)"
    with pytest.raises(ValueError, match=message):
        signal_conv1d(x, np.ones((5, 2, 8)))
    torch_weight = np.ones((8, 3, 5))  # (C_out, C_in, K)
    layer = SignalConv1D(8, 5, kernel_parameter=torch_weight)
    with pytest.raises(ValueError, match=r"\(kernel_support, C_in, filters\).*transpose"):
        layer(x)
    assert signal_conv1d(x, torch_weight.transpose(2, 1, 0), corr=True).shape == (1, 16, 8)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 12), st.booleans(),
       st.sampled_from(["valid", "same_zeros", "same_reflect"]), st.booleans(),
       st.sampled_from(["direct", "fft"]), st.integers(0, 2**32 - 1))
def test_many_phases_match_reference(up, down, k, corr, padding, separable, method, seed):
    """Strides far above the kernel length: many phases, most of them without taps."""
    rng = np.random.default_rng(seed)
    spec = ConvSpec.from_arguments(k, corr, down, up, padding, None)
    x = rng.standard_normal((1, spec.min_input_width() + int(rng.integers(0, 6)), 2))
    kernel = rng.standard_normal((k, 2, 2))
    geometry = {"corr": corr, "strides_up": up, "strides_down": down, "padding": padding,
                "channel_separable": separable}
    y = signal_conv1d(x, kernel, method=method, **geometry)
    assert_close(y, reference_signal_conv1d(x, kernel, **geometry), 1e-10)


_HOSTILE = """
import time, numpy as np, fftconv
x, h = np.ones((1, 10, 1)), np.ones((3, 1, 1))
try:
    fftconv.signal_conv1d(x, h, strides_up=10**9, padding="same_zeros")
except ValueError as err:
    print("refused:", err)
y = fftconv.signal_conv1d(x, h, strides_up=10**6, padding="same_zeros")
print("shape", y.shape, "sum", y.sum())
"""


@pytest.mark.slow
def test_huge_strides_neither_hang_nor_exhaust_memory():
    """Work is bounded by the output, and an output beyond memory is refused at once."""
    # A hang guard, not a timing assertion: before the fix, the first call never returned.
    out = subprocess.run([sys.executable, "-c", _HOSTILE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    refused, result = out.stdout.splitlines()
    assert re.search(r"refused: strides_up=1000000000.*width 10: the output, shape .* = "
                     r"\(1, 1, 10000000000\), would need 74.5 GiB", refused), refused
    # Ten impulses, each meeting the three taps: every output but the first clipped one.
    assert result == "shape (1, 10000000, 1) sum 29.0"


def test_phase_kernels_beyond_memory_are_refused_naming_the_strides():
    spec = ConvSpec.from_arguments(3, False, 10**9, 10**9 + 1, "same_zeros", None)
    with pytest.raises(ValueError, match=r"strides_up=1000000001, strides_down=1000000000.*"
                                         r"phase kernels.*more than this machine's memory"):
        check_fits(spec, (1, 1, 10), 1, 4, memory=2**30)
    check_fits(spec, (1, 1, 10), 1, 4, memory=2**80)  # fits a large enough machine


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_direct_is_local_fft_spreads_over_its_blocks(bad):
    """What the README promises: direct keeps a NaN/Inf local, fft smears it over its blocks."""
    k, width, at = 9, 4000, 1500
    x = np.random.default_rng(0).standard_normal((1, width, 1))
    x[0, at, 0] = bad
    kernel = np.random.default_rng(1).standard_normal((k, 1, 1))
    window = set(range(at - k + 1, at + 1))  # outputs n with n <= at <= n + k - 1
    bad_outputs = {}
    for method in ("direct", "fft"):
        layer = SignalConv1D(1, k, corr=True, kernel_parameter=kernel, dtype="float64",
                             method=method)
        y = layer(x)[0, :, 0]
        bad_outputs[method] = set(np.flatnonzero(~np.isfinite(y)))
        assert np.isfinite(np.delete(y, sorted(bad_outputs[method]))).all()
    assert bad_outputs["direct"] == window
    block = layer.plan_for(x.shape)
    hit_blocks = [b for b in range(width // block.block + 1)
                  if b * block.block <= at < b * block.block + block.n_fft]
    spread = {n for b in hit_blocks for n in range(b * block.block, (b + 1) * block.block)}
    assert window <= bad_outputs["fft"] <= spread
    assert len(bad_outputs["fft"]) > len(window)  # the FFT path does smear it
