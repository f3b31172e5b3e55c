"""Vector-Jacobian products: tfc's gradients, the adjoint identity, finite differences."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
from devices import backend_params, on_device
from fft_chunks import gathered_rows, short_chunks
from golden import RTOL_TFC, array
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import geometry_options
from ways import WAYS, way

from fftconv import SignalConv1D, signal_conv1d, signal_conv1d_vjp
from fftconv.config import Config
from fftconv.spec import ConvSpec

FILE = "signalconv1d_grads_tfc.npz"
#: float64 adjoint identity, relative to ``|g| |J v|``.
RTOL_ADJOINT = 1e-8


@cache
def _grad_cases() -> tuple[dict, ...]:
    return tuple(json.loads(str(s)) for s in array(FILE, "configs"))


def assert_close_to_max(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """``max|actual - expected| <= rtol * max|expected|`` (exact zeros where it is all 0)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected), initial=0.0))
    err = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:g} * {scale:.3g}"


def test_forty_cases():
    assert len(_grad_cases()) == 40


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("case", _grad_cases(), ids=lambda c: c["id"])
def test_gradients_match_tfc(case, method):
    cid = case["id"]
    x, g = array(FILE, f"{cid}_x"), array(FILE, f"{cid}_g")
    layer = SignalConv1D(**case["layer"], method=method)
    layer.build(x.shape)
    assert layer.weight_names() == case["weight_names"]
    layer.set_weights([array(FILE, f"{cid}_w{j}") for j in range(case["n_weights"])])
    assert_close_to_max(layer(x), array(FILE, f"{cid}_y"), RTOL_TFC)
    dx, grads = layer.vjp(x, g)
    assert dx.dtype == np.float32
    assert_close_to_max(dx, array(FILE, f"{cid}_dx"), RTOL_TFC)
    assert len(grads) == case["n_weights"]
    for j, grad in enumerate(grads):
        assert grad.dtype == np.float32
        assert_close_to_max(grad, array(FILE, f"{cid}_dw{j}"), RTOL_TFC)


# -- the adjoint identity on every argument combination ------------------------------


@st.composite
def geometries(draw):
    """Layer arguments (tfc's refused combinations included) and a tiny input."""
    options = draw(geometry_options())
    k = draw(st.one_of(st.integers(1, 8), st.integers(9, 24)))
    spec = ConvSpec.from_arguments(k, options["corr"], options["strides_down"],
                                   options["strides_up"], options["padding"],
                                   options["extra_pad_end"], options["channel_separable"])
    width = spec.min_input_width() + draw(st.integers(0, 12))
    shape = (draw(st.integers(1, 2)), width, draw(st.integers(1, 3)))
    if options["data_format"] == "channels_first":
        shape = (shape[0], shape[2], shape[1])
    kernel_shape = (k, shape[2 if options["data_format"] == "channels_last" else 1],
                    draw(st.integers(1, 3)))
    return options, shape, kernel_shape, draw(st.sampled_from(WAYS)), draw(st.integers(0, 2**32))


@settings(max_examples=300, deadline=None)
@given(geometries())
def test_adjoint_identity(case):
    """``<g, J v> = <J^T g, v>`` for the input and the kernel (the layer is linear in each)."""
    options, shape, kernel_shape, how, seed = case
    rng = np.random.default_rng(seed)
    x, kernel = rng.standard_normal(shape), rng.standard_normal(kernel_shape)
    v, v_kernel = rng.standard_normal(shape), rng.standard_normal(kernel_shape)
    with way(how) as method:
        g = rng.standard_normal(signal_conv1d(x, kernel, method=method, **options).shape)
        dx, dkernel, dbias = signal_conv1d_vjp(x, kernel, g, method=method, **options)
        # Each product is taken before the next call, which may reuse the engine's buffers.
        along_x = _adjoint_gap(g, signal_conv1d(v, kernel, method=method, **options), dx, v)
        along_kernel = _adjoint_gap(g, signal_conv1d(x, v_kernel, method=method, **options),
                                    dkernel, v_kernel)
    assert dx.shape == x.shape and dkernel.shape == kernel.shape and dbias is None
    assert along_x <= RTOL_ADJOINT and along_kernel <= RTOL_ADJOINT


def _adjoint_gap(g: np.ndarray, jv: np.ndarray, jtg: np.ndarray, v: np.ndarray) -> float:
    """``|<g, J v> - <J^T g, v>|`` relative to ``|g| |J v|``."""
    scale = np.linalg.norm(g) * np.linalg.norm(jv) + np.finfo(float).tiny
    return abs(np.vdot(g, jv) - np.vdot(jtg, v)) / scale


# -- bias, activations and parameters by finite differences --------------------------

FD_CASES = [
    dict(filters=2, kernel_support=5, corr=True, strides_down=2, padding="same_reflect",
         use_bias=True, activation="tanh", kernel_parameter="rdft"),
    dict(filters=1, kernel_support=4, strides_up=3, padding="valid", channel_separable=True,
         use_bias=True, activation="softplus", kernel_parameter="rdft",
         data_format="channels_first"),
    dict(filters=2, kernel_support=6, strides_up=2, strides_down=3, padding="same_zeros",
         use_bias=True, activation="gelu", kernel_parameter="variable"),
    dict(filters=2, kernel_support=3, padding="same_zeros", use_bias=True, activation="elu",
         kernel_parameter="variable", channel_separable=True),
]


@pytest.mark.parametrize("options", FD_CASES)
def test_finite_differences(options):
    rng = np.random.default_rng(7)
    layer = SignalConv1D(**options, dtype="float64", bias_initializer="random_normal")
    shape = (2, 11, 2) if options.get("data_format") != "channels_first" else (2, 2, 11)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(layer(x).shape)
    dx, grads = layer.vjp(x, g)
    weights = layer.get_weights()

    def loss(x_: np.ndarray, weights_: list[np.ndarray]) -> float:
        layer.set_weights(weights_)
        return float(np.vdot(layer(x_), g))

    h = 1e-6
    np.testing.assert_allclose(dx, _numeric_gradient(lambda e: loss(x + h * e, weights)
                                                     - loss(x - h * e, weights), x, h),
                               rtol=1e-6, atol=1e-7)
    for j, grad in enumerate(grads):
        def along(e, j=j):
            plus, minus = list(weights), list(weights)
            plus[j], minus[j] = weights[j] + h * e, weights[j] - h * e
            return loss(x, plus) - loss(x, minus)

        np.testing.assert_allclose(grad, _numeric_gradient(along, weights[j], h),
                                   rtol=1e-6, atol=1e-7)


def _numeric_gradient(difference, at: np.ndarray, h: float) -> np.ndarray:
    """Central differences: ``difference(e) / 2h`` for each unit array ``e`` of `at`'s shape."""
    out = np.zeros(at.shape)
    for index in np.ndindex(at.shape):
        e = np.zeros(at.shape)
        e[index] = 1.0
        out[index] = difference(e) / (2 * h)
    return out


# -- API --------------------------------------------------------------------------


def test_functional_returns_bias_gradient():
    rng = np.random.default_rng(0)
    x, kernel, bias = rng.standard_normal((2, 9, 3)), rng.standard_normal((3, 3, 2)), np.ones(2)
    g = rng.standard_normal(signal_conv1d(x, kernel, bias, padding="same_zeros").shape)
    dx, dkernel, dbias = signal_conv1d_vjp(x, kernel, g, bias, padding="same_zeros")
    np.testing.assert_allclose(dbias, g.sum(axis=(0, 1)))
    assert dx.dtype == dkernel.dtype == np.float64


def test_downsampling_keeps_the_input_width():
    # Widths 9 and 10 give the same output width with strides_down=2.
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 1, 1))
    for width in (9, 10):
        x = rng.standard_normal((1, width, 1))
        g = np.ones(signal_conv1d(x, kernel, strides_down=2).shape)
        assert g.shape[1] == 4
        assert signal_conv1d_vjp(x, kernel, g, strides_down=2)[0].shape == x.shape


def test_fixed_kernel_has_no_weight_gradients():
    layer = SignalConv1D(2, 3, kernel_parameter=np.ones((3, 1, 2)), use_bias=True)
    x = np.ones((1, 8, 1), np.float32)
    dx, grads = layer.vjp(x, np.ones(layer(x).shape, np.float32))
    assert layer.weight_names() == ["bias"] and len(grads) == 1
    np.testing.assert_allclose(grads[0], [6.0, 6.0])
    assert dx.shape == x.shape


def test_wrong_cotangent_shape_raises():
    layer = SignalConv1D(2, 3)
    x = np.ones((1, 8, 1), np.float32)
    with pytest.raises(ValueError, match="`g` must have the shape of the output"):
        layer.vjp(x, np.ones((1, 8, 3)))


def test_unknown_activation_derivative_raises():
    layer = SignalConv1D(1, 3, activation=np.sin)
    x = np.ones((1, 8, 1), np.float32)
    with pytest.raises(TypeError, match="no known derivative"):
        layer.vjp(x, np.ones(layer(x).shape))


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_sub_problems_honour_method(method):
    layer = SignalConv1D(2, 33, strides_down=2, padding="same_zeros", method=method,
                         channel_separable=True)
    x = np.ones((1, 64, 3), np.float32)
    layer.vjp(x, np.ones(layer(x).shape, np.float32))
    (engine,) = layer._adjoint._engines.values()  # the input gradient's
    assert engine.method == method


@pytest.mark.parametrize("method", ["direct-windows", "direct-shifted", "fft"])
@pytest.mark.parametrize("separable", [False, True])
def test_empty_batch(method, separable):
    layer = SignalConv1D(3, 5, strides_down=2, padding="same_reflect", use_bias=True,
                         channel_separable=separable, method=method)
    x = np.zeros((0, 10, 2), np.float32)
    dx, grads = layer.vjp(x, np.zeros(layer.compute_output_shape(x.shape), np.float32))
    assert dx.shape == x.shape
    assert [g.shape for g in grads] == [w.shape for w in layer.get_weights()]
    assert not any(g.any() for g in grads)


DEVICE_CASES = [
    dict(filters=3, strides_down=2, padding="same_reflect"),
    dict(filters=2, strides_up=3, padding="same_zeros", channel_separable=True),
    dict(filters=3, padding="same_reflect", use_bias=True, activation="tanh",
         data_format="channels_first"),
]


@pytest.mark.parametrize("name", backend_params("cupy-standin", "cupy"))
@pytest.mark.parametrize("method", ["direct-windows", "direct-shifted", "fft"])
@pytest.mark.parametrize("options", DEVICE_CASES)
def test_gradients_on_the_device(name, method, options):
    """A device input gets the host's gradients, the input gradient left on the device."""
    rng = np.random.default_rng(3)
    host = SignalConv1D(kernel_support=5, **options, method=method, dtype="float64",
                        bias_initializer="random_normal")
    shape = (2, 4, 20) if options.get("data_format") == "channels_first" else (2, 20, 4)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(host(x).shape)
    dx, grads = host.vjp(x, g)
    with on_device(name) as device:
        layer = SignalConv1D(kernel_support=5, **options, method=method, dtype="float64",
                             backend=device.backend)
        layer.build(shape)
        layer.set_weights(host.get_weights())
        dx_device, grads_device = layer.vjp(device.put(x), device.put(g))
        np.testing.assert_allclose(device.get(dx_device), dx, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(grads_device, grads, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


# -- input spectra kept from the forward pass ------------------------------------------

#: float64 gradients with and without the kept spectra: the same arithmetic, to rounding.
RTOL_KEPT = 1e-12

KEPT_CASES = [
    dict(filters=3, kernel_support=9, strides_down=2, padding="same_reflect"),
    dict(filters=2, kernel_support=7, strides_up=3, padding="same_zeros", channel_separable=True),
    dict(filters=2, kernel_support=6, strides_up=2, strides_down=3, padding="valid",
         data_format="channels_first"),
    dict(filters=4, kernel_support=33, corr=True, padding="same_zeros"),
]


def _kept_case(options: dict, config: Config | None, backend: str, method: str = "fft",
               ) -> tuple[SignalConv1D, np.ndarray, np.ndarray]:
    """A float64 layer with an activation (its vjp runs the forward), an input and `g`."""
    rng = np.random.default_rng(5)
    layer = SignalConv1D(**options, activation="tanh", use_bias=True, method=method,
                         dtype="float64", config=config, backend=backend,
                         bias_initializer="random_normal")
    shape = (3, 2, 150) if options.get("data_format") == "channels_first" else (3, 150, 2)
    x = rng.standard_normal(shape)
    return layer, x, rng.standard_normal(layer.compute_output_shape(shape))


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("several_chunks", [False, True])
@pytest.mark.parametrize("options", KEPT_CASES)
def test_kept_spectra_give_the_same_gradients(name, several_chunks, options):
    with on_device(name) as device:
        layer, x, g = _kept_case(options, short_chunks() if several_chunks else None,
                                 device.backend)
        x, g = device.put(x), device.put(g)
        dx, grads = layer.vjp(x, g)
        dx_kept, grads_kept = layer.vjp(x, g, keep_spectra=True)
        np.testing.assert_allclose(device.get(dx_kept), device.get(dx), rtol=RTOL_KEPT)
    for ours, theirs in zip(grads_kept, grads, strict=True):
        assert_close_to_max(ours, theirs, RTOL_KEPT)


def test_functional_keeps_spectra():
    rng = np.random.default_rng(6)
    x, kernel = rng.standard_normal((2, 120, 2)), rng.standard_normal((9, 2, 3))
    options = dict(strides_down=2, padding="same_zeros", activation="tanh", method="fft")
    g = rng.standard_normal(signal_conv1d(x, kernel, **options).shape)
    expected = signal_conv1d_vjp(x, kernel, g, **options)
    kept = signal_conv1d_vjp(x, kernel, g, keep_spectra=True, **options)
    for ours, theirs in zip(kept[:2], expected[:2], strict=True):
        assert_close_to_max(ours, theirs, RTOL_KEPT)


@pytest.mark.parametrize("name", backend_params())
def test_kept_spectra_are_not_transformed_again(name, monkeypatch):
    rows = gathered_rows(monkeypatch)
    with on_device(name) as device:
        layer, x, g = _kept_case(KEPT_CASES[0], short_chunks(), device.backend)
        x, g = device.put(x), device.put(g)
        layer(x)
        forward = list(rows)
        rows.clear()
        layer.vjp(x, g)
        again = sum(rows)
        rows.clear()
        layer.vjp(x, g, keep_spectra=True)
    assert len(forward) > 1  # several chunks
    # Without the option the backward transforms the forward's blocks once more.
    assert again - sum(rows) == sum(forward)


def test_kept_spectra_unused_on_the_direct_path(monkeypatch):
    rows = gathered_rows(monkeypatch)
    layer, x, g = _kept_case(KEPT_CASES[0], None, "numpy", "direct-windows")
    dx, grads = layer.vjp(x, g)
    dx_kept, grads_kept = layer.vjp(x, g, keep_spectra=True)
    np.testing.assert_array_equal(dx_kept, dx)
    for ours, theirs in zip(grads_kept, grads, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not rows
