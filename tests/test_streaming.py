"""Streaming convolution: any split of the input gives the one-shot result."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from devices import backend_params, on_device
from golden import RTOL, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fftconv import SignalConv1D, StreamingConv1D, signal_conv1d
from fftconv.spec import ConvSpec
from fftconv.streaming import PADDINGS, partition_levels


def reference(x, kernel, bias=None, *, padding, corr=False, strides_down=1, strides_up=1,
              extra_pad_end=None, channel_separable=False):
    """The one-shot float64 result, shape (B, W_out, C_out); empty when undefined.

    ``valid``/``same_zeros``: :func:`fftconv.signal_conv1d`; ``full``: per channel
    pair ``scipy.signal.upfirdn`` with the kernel (reversed when `corr`).
    """
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    batch, width, c_in = x.shape
    k, _, filters = kernel.shape
    c_out = c_in * filters if channel_separable else filters
    if padding != "full":
        spec = ConvSpec.from_arguments(k, corr, strides_down, strides_up, padding,
                                       extra_pad_end)
        if width < 1 or spec.output_width(width) < 1:
            return np.zeros((batch, 0, c_out))
        return signal_conv1d(x, kernel, bias, corr=corr, strides_down=strides_down,
                             strides_up=strides_up, padding=padding,
                             extra_pad_end=extra_pad_end,
                             channel_separable=channel_separable, dtype="float64")
    if width < 1:
        return np.zeros((batch, 0, c_out))
    h = kernel[::-1] if corr else kernel
    n_out = ((width - 1) * strides_up + k - 1) // strides_down + 1
    y = np.zeros((batch, n_out, c_out))
    for b in range(batch):
        for c in range(c_in):
            for f in range(filters):
                out = scipy.signal.upfirdn(h[:, c, f], x[b, :, c], strides_up, strides_down)
                y[b, :, c * filters + f if channel_separable else f] += out
    return y if bias is None else y + bias


def stream_all(stream, x, cuts):
    """Feed `x` (B, W, C) or (W, C) cut at `cuts` (sorted; repeats give empty blocks),
    then flush; the concatenated outputs."""
    time = x.ndim - 2
    outputs = [stream.process(block) for block in np.split(x, cuts, axis=time)]
    outputs.append(stream.flush())
    return np.concatenate(outputs, axis=time)


@st.composite
def streams(draw):
    """A random layer, input, split and partitioning."""
    k = draw(st.one_of(st.integers(1, 12), st.integers(13, 300)))
    padding = draw(st.sampled_from(PADDINGS))
    geometry = {
        "corr": draw(st.booleans()),
        "strides_down": draw(st.integers(1, 3)),
        "strides_up": draw(st.integers(1, 3)),
        "channel_separable": draw(st.booleans()),
        "extra_pad_end": None if padding == "full" else draw(st.sampled_from([None, None,
                                                                               True, False])),
    }
    batch, c_in, filters = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    width = draw(st.integers(0, 2 * k // geometry["strides_up"] + 80))
    cuts = sorted(draw(st.lists(st.integers(0, width), max_size=8)))
    partition = draw(st.sampled_from([4, 5, 8, 16, 32, 64]))
    partitioning = draw(st.sampled_from(["uniform", "non-uniform", "ratio2", "ratio4"]))
    if partitioning.startswith("ratio"):  # explicit multi-level layouts
        r = int(partitioning[-1])
        partitioning = tuple(partition * r**i for i in range(5))
    options = {
        "partition": partition,
        "partitioning": partitioning,
        "dtype": draw(st.sampled_from(["float64", "float32"])),
        "backend": draw(st.sampled_from(["numpy", "pyfftw"])),
    }
    use_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return k, padding, geometry, (batch, width, c_in, filters), cuts, options, use_bias, seed


@settings(max_examples=500, deadline=None)
@given(streams())
def test_any_split_matches_one_shot(case):
    k, padding, geometry, (batch, width, c_in, filters), cuts, options, use_bias, seed = case
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((k, c_in, filters)) / np.sqrt(k * c_in)
    c_out = c_in * filters if geometry["channel_separable"] else filters
    bias = rng.standard_normal(c_out) if use_bias else None
    x = rng.standard_normal((batch, width, c_in))
    stream = StreamingConv1D(kernel, padding=padding, bias=bias, **geometry, **options)
    expected = reference(x, kernel, bias, padding=padding, **geometry)
    if batch == 1 and seed % 2:  # 2-D blocks
        y = stream_all(stream, x[0], cuts)[None]
    else:
        y = stream_all(stream, x, cuts)
    assert y.dtype == np.dtype(options["dtype"])
    assert_close(y, expected, RTOL[y.dtype])


@pytest.mark.parametrize("name", backend_params("cupy-standin", "cupy"))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_split_matches_one_shot_on_the_gpu_backend(name, data):
    """A stream with its state on the GPU: device blocks give device outputs, host ones host."""
    k, padding, geometry, (batch, width, c_in, filters), cuts, options, use_bias, seed = (
        data.draw(streams()))
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((k, c_in, filters)) / np.sqrt(k * c_in)
    c_out = c_in * filters if geometry["channel_separable"] else filters
    bias = rng.standard_normal(c_out) if use_bias else None
    x = rng.standard_normal((batch, width, c_in))
    on_host = seed % 2 == 1
    with on_device(name) as device:
        stream = StreamingConv1D(kernel, padding=padding, bias=bias, **geometry,
                                 **{**options, "backend": "cupy"})
        outputs = []
        for block in np.split(x, cuts, axis=1):
            y = stream.process(block if on_host else device.put(block))
            outputs.append(y if on_host else device.get(y))
        y = stream.flush()
        outputs.append(y if on_host else device.get(y))
    y = np.concatenate(outputs, axis=1)
    assert y.dtype == np.dtype(options["dtype"]) and all(type(o) is np.ndarray for o in outputs)
    assert_close(y, reference(x, kernel, bias, padding=padding, **geometry), RTOL[y.dtype])


def test_a_cpu_stream_refuses_gpu_blocks():
    with on_device("cupy-standin") as device:
        stream = StreamingConv1D(np.ones((5, 1, 1)), backend="numpy")
        with pytest.raises(TypeError, match="GPU array on cuda:0 and backend='numpy' runs on "
                                            "the CPU"):
            stream.process(device.put(np.ones((10, 1))))


def test_multi_level_layouts_are_exercised():
    # The explicit layouts of the property test really have several levels.
    levels = partition_levels(300, 4, (4, 8, 16, 32, 64))
    assert [lv.size for lv in levels] == [4, 8, 16, 32, 64]
    for lv in levels:
        assert lv.start >= lv.size - 4  # each block's output is in time
    assert sum(lv.count * lv.size for lv in levels) >= 300


@pytest.mark.parametrize("kernel_length, partition", [(1, 4), (300, 4), (5000, 64),
                                                      (96000, 256), (100000, 1024)])
def test_partition_levels_cover_the_kernel(kernel_length, partition):
    for partitioning in ("uniform", "non-uniform"):
        levels = partition_levels(kernel_length, partition, partitioning)
        assert levels[0].size == partition and levels[0].start == 0
        for a, b in zip(levels, levels[1:], strict=False):
            assert b.start == a.start + a.count * a.size
            assert b.size > a.size and b.size % partition == 0
            assert b.start >= b.size - partition
        last = levels[-1]
        assert last.start < kernel_length <= last.start + last.count * last.size
    assert len(partition_levels(96000, 256, "non-uniform")) > 1


def test_non_uniform_long_kernel_matches_fftconvolve():
    rng = np.random.default_rng(0)
    h = rng.standard_normal(20000) / 100
    x = rng.standard_normal(30000)
    stream = StreamingConv1D(h[:, None, None], padding="full", partition=64,
                             partitioning="non-uniform", dtype="float64")
    assert len(stream.levels) > 1
    cuts = np.cumsum(rng.integers(0, 700, 80))
    y = stream_all(stream, x[:, None], cuts[cuts < x.size])
    assert_close(y[:, 0], scipy.signal.fftconvolve(x, h), RTOL[np.dtype("float64")])


def test_long_kernel_float32_matches_fftconvolve():
    # A 10^5-tap kernel over 10^6 samples, in blocks of varying sizes (< 1 s).
    rng = np.random.default_rng(1)
    h = (rng.standard_normal(100_000) * np.exp(-np.arange(100_000) / 20_000)).astype(np.float32)
    x = rng.standard_normal(1_000_000).astype(np.float32)
    stream = StreamingConv1D(h[:, None, None], padding="full", partitioning="non-uniform",
                             dtype="float32")
    cuts = np.cumsum(rng.integers(1, 6000, 400))
    y = stream_all(stream, x[:, None], cuts[cuts < x.size])
    expected = scipy.signal.fftconvolve(x.astype(np.float64), h.astype(np.float64))
    assert_close(y[:, 0], expected, RTOL[np.dtype("float32")])


def test_stereo_cases():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3000, 2))
    # One impulse response for both channels: channel separable, kernel repeated.
    ir = rng.standard_normal(700) / 20
    mono = StreamingConv1D(np.repeat(ir[:, None, None], 2, axis=1), padding="full",
                           channel_separable=True, partition=32, dtype="float64")
    y = stream_all(mono, x, [100, 101, 2000])
    for c in range(2):
        assert_close(y[0, :, c], np.convolve(x[0, :, c], ir), 1e-10)
    # "True stereo": a 2x2 matrix of impulse responses, outputs sum over inputs.
    irs = rng.standard_normal((700, 2, 2)) / 20
    matrix = StreamingConv1D(irs, padding="full", partition=32, partitioning="non-uniform",
                             dtype="float64")
    y = stream_all(matrix, x, [1, 1, 1500])
    for f in range(2):
        expected = sum(np.convolve(x[0, :, c], irs[:, c, f]) for c in range(2))
        assert_close(y[0, :, f], expected, 1e-10)


@pytest.mark.parametrize("padding, corr, up, down, k", [
    ("full", False, 1, 1, 100), ("full", True, 2, 3, 37), ("same_zeros", False, 1, 1, 33),
    ("same_zeros", True, 3, 2, 50), ("valid", False, 1, 1, 20), ("valid", False, 2, 1, 9),
])
def test_latency_is_when_the_first_output_comes(padding, corr, up, down, k):
    rng = np.random.default_rng(3)
    stream = StreamingConv1D(rng.standard_normal((k, 1, 1)), padding=padding, corr=corr,
                             strides_up=up, strides_down=down, partition=8)
    fed = 0
    while fed < 400:
        fed += 1
        if stream.process(rng.standard_normal((1, 1))).shape[0]:
            break
    assert fed == stream.latency


def test_latency_of_a_causal_filter_is_one_partition():
    stream = StreamingConv1D(np.ones((5000, 1, 1)), padding="full", partition=256,
                             partitioning="non-uniform")
    assert stream.latency == stream.partition == 256
    # Frames end on the caller's block boundaries: every block of 256 gives 256 outputs.
    for _ in range(5):
        assert stream.process(np.ones((256, 1))).shape == (256, 1)


def test_state_does_not_grow_with_the_stream():
    rng = np.random.default_rng(4)
    stream = StreamingConv1D(rng.standard_normal((3000, 2, 1)), padding="full",
                             channel_separable=True, partition=64, partitioning="non-uniform")
    block = rng.standard_normal((1, 64, 2)).astype(np.float32)
    for _ in range(100):
        stream.process(block)
    size = stream.nbytes
    for _ in range(1000):
        stream.process(block)
    assert stream.nbytes == size


def test_flush_ends_the_stream_and_reset_restarts_it():
    rng = np.random.default_rng(5)
    kernel = rng.standard_normal((40, 1, 2))
    x = rng.standard_normal((2, 300, 1))
    stream = StreamingConv1D(kernel, partition=8, dtype="float64")
    first = stream_all(stream, x, [10, 200])
    assert stream.finished
    with pytest.raises(ValueError, match="finished"):
        stream.process(x[:, :5])
    with pytest.raises(ValueError, match="finished"):
        stream.flush()
    stream.reset()
    assert not stream.finished
    assert_close(stream_all(stream, x, [150]), first, 1e-12)
    stream.reset()  # a new stream may have another batch size
    assert stream_all(stream, x[:1], [7]).shape == (1, 300, 2)


def test_empty_streams():
    stream = StreamingConv1D(np.ones((5, 2, 3)), padding="valid")
    assert stream.flush().shape == (0, 3)
    stream.reset()
    assert stream.process(np.zeros((1, 0, 2))).shape == (1, 0, 3)
    assert stream.process(np.zeros((1, 4, 2))).shape == (1, 0, 3)
    assert stream.flush().shape == (1, 0, 3)  # 4 < K samples: no valid output


def test_from_layer():
    rng = np.random.default_rng(6)
    layer = SignalConv1D(3, 31, corr=True, strides_down=2, strides_up=3, padding="same_zeros",
                         extra_pad_end=False, channel_separable=True, use_bias=True,
                         activation="tanh", bias_initializer="glorot_uniform",
                         data_format="channels_first", dtype="float64")
    x = rng.standard_normal((2, 200, 2))
    expected = layer(x.transpose(0, 2, 1)).transpose(0, 2, 1)
    stream = StreamingConv1D.from_layer(layer, partition=4, partitioning="non-uniform")
    assert (stream.input_channels, stream.output_channels) == (2, 6)
    assert stream.dtype == np.float64
    assert_close(stream_all(stream, x, [3, 3, 77]), expected, 1e-10)
    with pytest.raises(ValueError, match="built"):
        StreamingConv1D.from_layer(SignalConv1D(2, 3))
    with pytest.raises(TypeError, match="layer"):
        StreamingConv1D.from_layer("layer")
    with pytest.raises(TypeError, match="padding"):
        StreamingConv1D.from_layer(layer, padding="valid")


@pytest.mark.parametrize("arguments, error, match", [
    ({"kernel": np.ones((3, 1))}, ValueError, "kernel"),
    ({"kernel": np.ones((0, 1, 1))}, ValueError, "kernel"),
    ({"kernel": "abc"}, TypeError, "kernel"),
    ({"padding": "same_reflect"}, ValueError, "same_reflect"),
    ({"padding": "circular"}, ValueError, "padding"),
    ({"padding": 3}, TypeError, "padding"),
    ({"padding": "full", "extra_pad_end": True}, ValueError, "extra_pad_end"),
    ({"strides_up": 0}, ValueError, "strides_up"),
    ({"strides_down": 1.5}, TypeError, "strides_down"),
    ({"corr": "yes"}, TypeError, "corr"),
    ({"channel_separable": 2}, TypeError, "channel_separable"),
    ({"bias": np.ones(3)}, ValueError, "bias"),
    ({"partition": 0}, ValueError, "partition"),
    ({"partition": True}, TypeError, "partition"),
    ({"partitioning": "random"}, ValueError, "partitioning"),
    ({"partitioning": (8, 12)}, ValueError, "partitioning"),
    ({"partitioning": (8, 32), "partition": 4}, ValueError, "partitioning"),
    ({"partitioning": (8, 32.0)}, TypeError, "partitioning"),
    ({"partitioning": 8}, TypeError, "partitioning"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"dtype": "nonsense"}, TypeError, "dtype"),
    ({"backend": "cuda"}, ValueError, "backend"),
    ({"activation": "nope"}, ValueError, "activation"),
])
def test_bad_arguments(arguments, error, match):
    arguments = {"kernel": np.ones((3, 1, 2)), **arguments}
    with pytest.raises(error, match=match):
        StreamingConv1D(**arguments)


def test_bad_blocks():
    stream = StreamingConv1D(np.ones((3, 2, 1)))
    for block, match in [(np.ones(5), "shape"), (np.ones((1, 1, 5, 2)), "shape"),
                         (np.ones((5, 3)), "channels"), (np.ones((0, 5, 2)), "batch")]:
        with pytest.raises(ValueError, match=match):
            stream.process(block)
    with pytest.raises(TypeError, match="x"):
        stream.process(np.ones((5, 2), complex))
    stream.process(np.ones((2, 5, 2)))
    with pytest.raises(ValueError, match="batch"):
        stream.process(np.ones((5, 2)))


def test_layout_costs_come_from_the_config():
    import dataclasses

    from fftconv.config import load_config

    default = load_config()
    assert len(partition_levels(96000, 256, "non-uniform")) > 1
    # Larger blocks save per-bin products: when those are free, uniform wins.
    free_products = dataclasses.replace(default.streaming, ns_per_mac=1e-6)
    assert len(partition_levels(96000, 256, "non-uniform", costs=free_products)) == 1
    config = dataclasses.replace(default, streaming=free_products)
    stream = StreamingConv1D(np.ones((96000, 1, 1)), partition=256,
                             partitioning="non-uniform", config=config)
    assert len(stream.levels) == 1
