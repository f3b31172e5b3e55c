"""Property test: the layer against the literal float64 reference on random layers."""

from __future__ import annotations

import numpy as np
import pytest
from devices import backend_params, on_device
from golden import RTOL, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_signal_conv1d
from strategies import geometry_options
from ways import WAYS

from fftconv import SignalConv1D
from fftconv.spec import ConvSpec

ACTIVATIONS = {None: lambda y: y, "relu": lambda y: np.maximum(y, 0), "tanh": np.tanh}


@st.composite
def layer_cases(draw, backends=("numpy", "pyfftw")):
    """A random layer configuration and an input long enough for it, on one of `backends`."""
    cfg = {
        "filters": draw(st.integers(1, 3)),
        "kernel_support": draw(st.one_of(st.integers(1, 9), st.integers(10, 40))),
        **draw(geometry_options()),
        "use_bias": draw(st.booleans()),
        "activation": draw(st.sampled_from(sorted(ACTIVATIONS, key=str))),
    }
    spec = ConvSpec.from_arguments(cfg["kernel_support"], cfg["corr"], cfg["strides_down"],
                                   cfg["strides_up"], cfg["padding"], cfg["extra_pad_end"])
    width = spec.min_input_width() + draw(st.integers(0, 24))
    batch = draw(st.integers(0, 2))
    c_in = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    method = draw(st.sampled_from(WAYS))
    backend = draw(st.sampled_from(backends))
    seed = draw(st.integers(0, 2**32 - 1))
    return cfg, (batch, width, c_in), dtype, method, backend, seed


@settings(max_examples=500, deadline=None)
@given(layer_cases())
def test_layer_matches_reference(case):
    _check(case)


@pytest.mark.parametrize("name", backend_params("cupy-standin", "cupy"))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_layer_matches_reference_on_the_gpu_backend(name, data):
    _check(data.draw(layer_cases((name,))))


def _check(case):
    """The layer of `case` on its backend against the float64 reference."""
    cfg, (batch, width, c_in), dtype, how, backend, seed = case
    rng = np.random.default_rng(seed)
    k, f = cfg["kernel_support"], cfg["filters"]
    c_out = c_in * f if cfg["channel_separable"] else f
    x = rng.standard_normal((batch, width, c_in))
    if cfg["data_format"] == "channels_first":
        x = x.transpose(0, 2, 1)
    kernel = rng.standard_normal((k, c_in, f)) / np.sqrt(k * c_in)
    bias = rng.standard_normal(c_out) if cfg["use_bias"] else None
    with on_device(backend) as device:
        layer = SignalConv1D(**cfg, kernel_parameter=kernel,
                             bias_parameter="variable" if bias is None else bias,
                             dtype=dtype, method=how, backend=device.backend)
        y = device.get(layer(device.put(x)))
    geometry = {key: cfg[key] for key in ("corr", "strides_down", "strides_up", "padding",
                                          "extra_pad_end", "channel_separable", "data_format")}
    expected = ACTIVATIONS[cfg["activation"]](
        reference_signal_conv1d(x, kernel, bias, **geometry))
    assert y.dtype == np.dtype(dtype)
    assert_close(y, expected, RTOL[np.dtype(dtype)])
