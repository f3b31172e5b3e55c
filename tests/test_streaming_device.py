"""A stream runs on the device of its first block (NumPy standing in for CuPy, ``device_standin``).

The stand-in refuses operations that mix host and device arrays or two devices,
so a stream whose state or kernel spectra stayed behind fails loudly.
"""

from __future__ import annotations

import numpy as np
import pytest
from device_standin import DeviceArray, use_device
from golden import RTOL, assert_close

from fftconv import SignalConv1D, StreamingConv1D, signal_conv1d

RNG = np.random.default_rng(21)
KERNEL = RNG.standard_normal((100, 2, 3)) / 20  # (K, C_in, filters)
BIAS = RNG.standard_normal(3)
X = RNG.standard_normal((2, 400, 2))  # (B, W, C_in)
CUTS = [0, 37, 37, 250]  # empty blocks among them
GEOMETRY = {"corr": True, "strides_down": 2, "padding": "same_zeros"}
LAYOUT = {"partition": 8, "partitioning": (8, 16, 32)}  # three levels


def _stream(backend="auto", dtype="float64"):
    return StreamingConv1D(KERNEL, bias=BIAS, **GEOMETRY, **LAYOUT, dtype=dtype,
                           backend=backend)


def _on(gpu, device, x):
    """`x` as a stand-in array on GPU `device`."""
    with use_device(device):
        return gpu.xp.asarray(x)


def _run(stream, blocks):
    """Each block through process(), then flush(): the outputs as they come."""
    return [stream.process(block) for block in blocks] + [stream.flush()]


def _joined(gpu, outputs):
    """Host and device outputs concatenated along time, on the host."""
    return np.concatenate([y if type(y) is np.ndarray else gpu.to_host(y) for y in outputs],
                          axis=1)


def _want():
    return signal_conv1d(X, KERNEL, BIAS, **GEOMETRY, dtype="float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", [0, 1])
def test_an_auto_stream_runs_on_the_device_of_its_first_block(gpu, device, dtype):
    blocks = np.split(X, CUTS, axis=1)
    outputs = _run(_stream(dtype=dtype), [_on(gpu, device, b) for b in blocks])
    assert all(type(y) is DeviceArray and y.device.id == device and y.dtype == dtype
               for y in outputs)
    y = _joined(gpu, outputs)
    assert_close(y, _want(), RTOL[y.dtype])
    assert_close(y, _joined(gpu, _run(_stream(dtype=dtype), blocks)), RTOL[y.dtype])


@pytest.mark.parametrize("backend, device", [("auto", 1), ("cupy", 0), ("cupy", 1)])
def test_a_gpu_stream_takes_host_and_device_blocks(gpu, backend, device):
    blocks = np.split(X, CUTS, axis=1)
    placed = [i % 2 == 0 for i in range(len(blocks))]  # the first on the device
    stream = _stream(backend)
    outputs = _run(stream, [_on(gpu, device, b) if on else b
                            for b, on in zip(blocks, placed, strict=True)])
    for y, on in zip(outputs, [*placed, placed[-1]], strict=True):  # flush: as the last block
        assert type(y) is (DeviceArray if on else np.ndarray)
        assert not on or y.device.id == device
    assert_close(_joined(gpu, outputs), _want(), RTOL[np.dtype("float64")])


def test_spectra_are_made_once_per_device(gpu, monkeypatch):
    made = []  # devices of the one-off transforms (the block transforms take plans)
    rfft = gpu.fft.rfft

    def counted(x, *args, plan=None, **kwargs):
        if plan is None:
            made.append(x.device.id)
        return rfft(x, *args, plan=plan, **kwargs)

    monkeypatch.setattr(gpu.fft, "rfft", counted)
    stream = _stream()
    for device in (0, 1, 0, 1):
        stream.reset()
        _run(stream, [_on(gpu, device, b) for b in np.split(X, CUTS, axis=1)])
    levels = len(stream.levels)
    assert levels == 3 and sorted(made) == [0] * levels + [1] * levels


def test_reset_then_host_blocks_run_on_the_cpu(gpu):
    stream = _stream()
    on_gpu = _joined(gpu, _run(stream, [_on(gpu, 1, X)]))
    stream.reset()
    assert type(stream.flush()) is np.ndarray  # a stream without blocks
    stream.reset()
    assert type(stream.process(X[:, :300])) is np.ndarray
    with pytest.raises(TypeError, match=r"on cuda:1, but this stream runs on the CPU"):
        stream.process(_on(gpu, 1, X[:, 300:]))
    stream.reset()
    assert_close(_joined(gpu, _run(stream, [X])), on_gpu, RTOL[np.dtype("float64")])


@pytest.mark.parametrize("backend, devices, match", [
    ("auto", [None, 1], r"on cuda:1, but this stream runs on the CPU \(chosen when it "
                        r"started\): call reset\(\) to start a new stream on cuda:1, use one "
                        r"stream per device"),
    ("auto", [0, None, 1], r"on cuda:1, but this stream runs on cuda:0 .*reset\(\).*one "
                           r"stream per device, or move `x` to cuda:0"),
    ("cupy", [None, 1], r"on cuda:1, but this stream runs on cuda:0"),
    ("cupy", [1, 0], r"on cuda:0, but this stream runs on cuda:1"),
    ("numpy", [1], r"GPU array on cuda:1 and backend='numpy' runs on the CPU"),
])
def test_a_block_on_another_device_is_refused(gpu, backend, devices, match):
    """`devices`: where each block is (None: the host); the last one is refused."""
    stream = _stream(backend)
    *taken, refused = devices
    for i, device in enumerate(taken):
        block = X[:, 50 * i:50 * (i + 1)]
        stream.process(block if device is None else _on(gpu, device, block))
    with pytest.raises(TypeError, match=match):
        stream.process(_on(gpu, refused, X[:, 200:]))


def test_from_layer_follows_the_device(gpu):
    layer = SignalConv1D(3, 31, corr=True, padding="same_zeros", use_bias=True,
                         bias_initializer="glorot_uniform", activation="tanh",
                         dtype="float64")
    want = layer(X)
    stream = StreamingConv1D.from_layer(layer, partition=8)
    outputs = _run(stream, [_on(gpu, 1, b) for b in np.split(X, CUTS, axis=1)])
    assert all(type(y) is DeviceArray and y.device.id == 1 for y in outputs)
    assert_close(_joined(gpu, outputs), want, RTOL[np.dtype("float64")])
