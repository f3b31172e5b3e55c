"""Direct path by shifted GEMMs: the accumulating BLAS call and the layer through it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from golden import RTOL, assert_close
from reference import reference_signal_conv1d

from fftconv import SignalConv1D
from fftconv.backends.cpu import CPU_TRAITS
from fftconv.config import load_config
from fftconv.paths.blas import gemm_accumulate
from fftconv.planner import Problem, direct_cost, direct_variant

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_accumulate_on_row_windows(dtype):
    big = RNG.standard_normal((40, 12)).astype(dtype)
    a = big[3:23, 2:9]  # row stride 12 > 7 columns
    b = RNG.standard_normal((7, 5)).astype(dtype)
    out = np.full((30, 8), np.nan, dtype)
    c = out[5:25, 1:6]
    gemm_accumulate(a, b, c, beta=0.0)  # old content (NaN) never read
    want = a.astype(np.float64) @ b
    assert_close(c, want, RTOL[np.dtype(dtype)])
    gemm_accumulate(a, b, c, beta=1.0)
    assert_close(c, 2 * want, RTOL[np.dtype(dtype)])
    assert np.isnan(out[:5]).all() and np.isnan(out[:, 6:]).all()  # nothing else written
    gemm_accumulate(a[:0], b, c[:0], beta=1.0)  # empty: nothing to do


@pytest.mark.parametrize(("a", "b", "c", "error", "words"), [
    (np.ones((4, 3), np.float32), np.ones((3, 2)), np.ones((4, 2), np.float32), TypeError,
     ["float32", "float64"]),
    (np.ones((4, 3)), np.ones((2, 2)), np.ones((4, 2)), ValueError, ["(4, 3)", "(2, 2)"]),
    (np.lib.stride_tricks.sliding_window_view(np.ones(10), 3), np.ones((3, 2)),
     np.ones((8, 2)), ValueError, ["`a`", "overlap"]),
    (np.ones((4, 6))[:, ::2], np.ones((3, 2)), np.ones((4, 2)), ValueError,
     ["`a`", "unit column stride"]),
])
def test_gemm_accumulate_rejects_bad_operands(a, b, c, error, words):
    with pytest.raises(error) as info:
        gemm_accumulate(a, b, c, beta=1.0)
    for word in words:
        assert word in str(info.value)


def _problem(groups, ci, co):
    return Problem(batch=1, groups=groups, in_channels=ci, out_channels=co, kernel_length=5,
                   outputs=100, itemsize=4)


def test_rule():
    wide = CPU_TRAITS.shifted_min_channels
    assert direct_variant(_problem(1, wide, wide)) == "direct-shifted"
    assert direct_variant(_problem(2, 64, 64)) == "direct-windows"  # grouped: gathered windows
    assert direct_variant(_problem(1, wide - 1, 64)) == "direct-windows"
    assert direct_variant(_problem(1, 64, wide - 1)) == "direct-windows"
    # Time-major data: shifted GEMMs from fewer channels, but not for grouped
    # problems, one or two input channels or one output channel ...
    few = CPU_TRAITS.shifted_min_in_channels_time_major
    assert direct_variant(_problem(1, few, 2), time_major=True) == "direct-shifted"
    assert direct_variant(_problem(1, few - 1, 64), time_major=True) == "direct-windows"
    assert direct_variant(_problem(1, 64, 1), time_major=True) == "direct-windows"
    assert direct_variant(_problem(2, 64, 64), time_major=True) == "direct-windows"
    # ... nor where the model puts the GEMM calls of a long kernel on a short
    # input above gathered windows.
    long = Problem(batch=1, groups=1, in_channels=few, out_channels=2, kernel_length=100001,
                   outputs=50, itemsize=4)
    assert direct_variant(long, time_major=True) == "direct-shifted"  # no model given
    assert direct_variant(long, time_major=True, config=load_config()) == "direct-windows"
    # On a GPU few channels run the FIR kernel, time-major or not.
    for time_major in (False, True):
        assert direct_variant(_problem(1, 1, 64), "cuda", time_major=time_major) == "direct-fir"
    # A method naming a variant forces it where it applies.
    assert direct_variant(_problem(1, 1, 1), method="direct-shifted") == "direct-shifted"
    assert direct_variant(_problem(1, 64, 64), method="direct-windows") == "direct-windows"
    assert direct_variant(_problem(3, 1, 1), method="direct-shifted") == "direct-windows"


@pytest.mark.parametrize("padding", ["valid", "same_zeros", "same_reflect"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(("strides_down", "strides_up", "corr"), [(1, 1, True), (2, 1, True),
                                                                   (1, 2, False), (3, 2, False)])
def test_layer_with_many_channels_uses_shifted_gemms(padding, data_format, strides_down,
                                                     strides_up, corr):
    c_in, filters, k, width = 12, 16, 7, 5000  # long enough for shifted GEMMs to pay
    x = RNG.standard_normal((3, width, c_in))
    if data_format == "channels_first":
        x = x.transpose(0, 2, 1)
    kernel = RNG.standard_normal((k, c_in, filters)) / np.sqrt(k * c_in)
    bias = RNG.standard_normal(filters)
    geometry = dict(corr=corr, strides_down=strides_down, strides_up=strides_up,
                    padding=padding, data_format=data_format)
    want = reference_signal_conv1d(x, kernel, bias, channel_separable=False,
                                   extra_pad_end=None, **geometry)
    for dtype in ("float64", "float32"):
        layer = SignalConv1D(filters, k, **geometry, method="direct", dtype=dtype, use_bias=True,
                             kernel_parameter=kernel, bias_parameter=bias)
        y = layer(x)
        assert y.flags.c_contiguous and y.dtype == np.dtype(dtype)
        assert_close(y, want, RTOL[np.dtype(dtype)])
    # Channels last: shifted GEMMs.  Channels first: 12 channels are below the
    # threshold, but the phases make Ci = S * 12 >= 16 ...
    plan = layer.plan_for(x.shape)
    shifted = data_format == "channels_last" or (
        strides_down > 1 and strides_up * filters >= CPU_TRAITS.shifted_min_channels)
    assert (plan.variant == "direct-shifted") == shifted  # ... or windows are gathered
    assert ("shifted GEMMs" in str(plan)) == shifted


def test_small_budget_blocks_rows():
    c_in, filters, k = 16, 16, 5
    x = RNG.standard_normal((2, 40, c_in))
    kernel = RNG.standard_normal((k, c_in, filters))
    layer = SignalConv1D(filters, k, padding="same_zeros", method="direct", use_bias=False,
                         dtype="float64", kernel_parameter=kernel)
    want = layer(x)
    assert "shifted GEMMs" in str(layer.plan_for(x.shape))
    small = SignalConv1D.from_config(layer.get_config())
    small.set_weights(layer.get_weights())
    budget = small.engine.config.memory.direct_bytes
    object.__setattr__(small.engine.config.memory, "direct_bytes", 1)  # one row per block
    try:
        assert_close(small(x), want, 1e-12)
    finally:
        object.__setattr__(small.engine.config.memory, "direct_bytes", budget)


def test_scratch_buffers_are_reused_per_thread():
    from concurrent.futures import ThreadPoolExecutor

    from fftconv._scratch import release, scratch

    a = scratch("test", (4, 8), np.float32)
    b = scratch("test", (2, 3), np.float64)  # smaller: same memory
    assert b.shape == (2, 3) and b.dtype == np.float64 and b.flags.c_contiguous
    assert np.shares_memory(a, b)
    c = scratch("test", (100, 8), np.float32)  # larger: a new buffer
    assert c.shape == (100, 8) and not np.shares_memory(a, c)
    assert not np.shares_memory(c, scratch("other", (100, 8), np.float32))
    with ThreadPoolExecutor(1) as pool:
        d = pool.submit(scratch, "test", (100, 8), np.float32).result()
    assert not np.shares_memory(c, d)  # another thread, another buffer
    release()
    assert not np.shares_memory(c, scratch("test", (100, 8), np.float32))
    release()


@pytest.mark.parametrize("method", ["direct-shifted", "direct-windows", "fft"])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("batch", [1, 2])
def test_a_result_is_never_overwritten_by_the_next_call(method, data_format, batch):
    # One output channel: the channels-first result of the shifted GEMMs' scratch
    # rows was a view of them (already contiguous), so the next call wrote into it.
    layer = SignalConv1D(1, 33, strides_up=16, padding="same_zeros", method=method,
                         data_format=data_format)
    shape = (batch, 16, 50) if data_format == "channels_first" else (batch, 50, 16)
    x1, x2 = RNG.standard_normal((2, *shape))
    y1 = layer(x1)
    kept = y1.copy()
    layer(x2)
    np.testing.assert_array_equal(y1, kept)


def test_gathered_windows_reuse_one_buffer_from_call_to_call(monkeypatch):
    # A fresh buffer per block faults its pages in again in every call (about
    # 4 MB of faults a call, 10 % of a 31 ms call with 39 input channels).
    from fftconv.backends import get_backend
    from fftconv.paths.direct import corr_valid_direct

    backend = get_backend("numpy")
    asked = []
    scratch = type(backend).scratch

    def counted(self, name, shape, dtype):
        buffer = scratch(self, name, shape, dtype)
        asked.append((name, buffer.__array_interface__["data"][0]))
        return buffer

    monkeypatch.setattr(type(backend), "scratch", counted)
    x = RNG.standard_normal((2, 6, 700))
    w = RNG.standard_normal((2, 4, 3, 9))
    want = corr_valid_direct(x, w, block_bytes=1 << 30)
    for _ in range(2):  # two calls of several blocks each: one buffer for all
        np.testing.assert_allclose(corr_valid_direct(x, w, 3000, backend=backend), want,
                                   rtol=1e-12, atol=1e-12)
    assert len(asked) > 2 and {name for name, _ in asked} == {"windows.gathered"}
    assert len({address for _, address in asked}) == 1


def test_thin_shifted_gemms_cost_more_per_product():
    """Shifted GEMMs with fewer channels on a side than ``shifted_min_channels``
    are estimated that many times slower per multiply-accumulate."""
    config = load_config()
    products_only = dataclasses.replace(config, direct=dataclasses.replace(
        config.direct, gather_ns_per_byte=0.0, call_overhead_ns=0.0))
    wide = CPU_TRAITS.shifted_min_channels

    def per_mac(ci, co):
        p = Problem(batch=1, groups=1, in_channels=ci, out_channels=co, kernel_length=5,
                    outputs=1000, itemsize=4)
        return direct_cost(p, products_only, "direct-shifted") / p.macs

    full = config.direct.ns_per_mac
    assert per_mac(wide, wide) == pytest.approx(full)
    assert per_mac(4 * wide, 2 * wide) == pytest.approx(full)
    assert per_mac(wide, 2) == pytest.approx(full * wide / 2)
    assert per_mac(4, 64) == pytest.approx(full * wide / 4)


def test_windows_gathered_from_time_major_data_cost_more_per_byte():
    """Windows read with a stride of Ci samples (time-major data, from
    ``shifted_min_in_channels_time_major`` input channels) are estimated
    ``time_major_gather_factor`` times dearer per gathered byte; fewer input
    channels, channels-first data and the other forms are not."""
    config = load_config()
    gather_only = dataclasses.replace(config, direct=dataclasses.replace(
        config.direct, ns_per_mac=0.0, call_overhead_ns=0.0))
    few = CPU_TRAITS.shifted_min_in_channels_time_major

    def gather_ns(ci, time_major=True):
        p = Problem(batch=2, groups=1, in_channels=ci, out_channels=3, kernel_length=5,
                    outputs=1000, itemsize=4)
        written = p.batch * p.out_channels * p.outputs * p.itemsize
        return (direct_cost(p, gather_only, "direct-windows", time_major)
                / config.direct.gather_ns_per_byte - written) / (ci * p.kernel_length)

    factor = CPU_TRAITS.time_major_gather_factor
    assert factor > 1
    assert gather_ns(few) == pytest.approx(factor * gather_ns(few, time_major=False))
    assert gather_ns(few - 1) == pytest.approx(gather_ns(few - 1, time_major=False))
    assert direct_cost(_problem(1, few, 3), config, "direct-shifted", True) \
        == direct_cost(_problem(1, few, 3), config, "direct-shifted", False)
