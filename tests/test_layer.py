"""The layer's API: parameters, weights, configuration, regularizers, functional form."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from golden import RTOL, assert_close
from reference import reference_signal_conv1d

from fftconv import RDFTParameter, SignalConv1D, VariableParameter, signal_conv1d

RNG = np.random.default_rng(1)
X = RNG.standard_normal((2, 20, 3))


def test_defaults_match_tfc():
    layer = SignalConv1D(4, 5)
    assert (layer.corr, layer.strides_down, layer.strides_up, layer.padding) == (
        False, 1, 1, "valid")
    assert layer.extra_pad_end is False and SignalConv1D(4, 5, padding="same_zeros").extra_pad_end
    assert (layer.use_bias, layer.kernel_parameter, layer.bias_parameter) == (
        False, "rdft", "variable")
    assert layer.data_format == "channels_last" and layer.activation is None
    assert layer.dtype == np.float32


def test_rdft_kernel_built_with_variance_scaling():
    layer = SignalConv1D(64, 31, use_bias=True)
    layer.build((1, 100, 32))
    assert isinstance(layer.kernel_parameter, RDFTParameter)
    kernel = layer.kernel
    assert kernel.shape == (31, 32, 64) and kernel.dtype == np.float32
    assert abs(kernel.std() / np.sqrt(1 / (31 * 32)) - 1) < 0.05  # fan_in scaling
    np.testing.assert_array_equal(layer.bias, np.zeros(64, np.float32))
    assert [w.shape for w in layer.get_weights()] == [(64,), (32, 64, 16), (32, 64, 16)]
    assert layer.count_params() == 64 + 2 * 32 * 64 * 16


def test_variable_kernel_weight_order():
    layer = SignalConv1D(2, 4, kernel_parameter="variable", use_bias=True,
                         bias_initializer="ones")
    layer.build((1, 10, 3))
    assert isinstance(layer.kernel_parameter, VariableParameter)
    assert [w.shape for w in layer.get_weights()] == [(4, 3, 2), (2,)]
    new = [RNG.standard_normal((4, 3, 2)), RNG.standard_normal(2)]
    layer.set_weights(new)
    np.testing.assert_allclose(layer.kernel, new[0].astype(np.float32))
    np.testing.assert_allclose(layer.bias, new[1].astype(np.float32))


def test_fixed_parameters_are_not_weights():
    layer = SignalConv1D(2, 4, kernel_parameter=np.ones((4, 3, 2)), use_bias=True,
                         bias_parameter=np.zeros(2))
    layer.build((1, 10, 3))
    assert layer.get_weights() == [] and layer.count_params() == 0


def test_callable_kernel_parameter():
    kernel = RNG.standard_normal((5, 3, 2))
    layer = SignalConv1D(2, 5, kernel_parameter=lambda: kernel, dtype="float64", corr=True)
    assert_close(layer(X), reference_signal_conv1d(X, kernel, corr=True), RTOL[layer.dtype])
    with pytest.raises(TypeError, match="`kernel_parameter`"):
        layer.get_config()


def test_rdft_parameter_object_is_shared_and_updates():
    kernel = RNG.standard_normal((6, 3, 2))
    param = RDFTParameter(kernel, dtype="float64")
    layer = SignalConv1D(2, 6, kernel_parameter=param, dtype="float64")
    y1 = layer(X)
    param.assign(2 * kernel)
    assert_close(layer(X), 2 * y1, 1e-10)


@pytest.mark.parametrize("kernel_parameter", ["rdft", "variable", "array"])
def test_config_round_trip(kernel_parameter):
    kp = RNG.standard_normal((7, 3, 2)) if kernel_parameter == "array" else kernel_parameter
    layer = SignalConv1D(2, 7, corr=True, strides_down=2, padding="same_reflect",
                         activation="relu", use_bias=True, kernel_parameter=kp,
                         bias_initializer="random_normal", kernel_regularizer="l2",
                         dtype="float64", method="direct", name="analysis")
    y = layer(X)
    copy = SignalConv1D.from_config(json.loads(json.dumps(layer.get_config())))
    copy.build(X.shape)
    copy.set_weights(layer.get_weights())
    np.testing.assert_array_equal(copy(X), y)
    assert copy.get_config() == layer.get_config()


def test_constructor_arguments_make_an_equal_layer():
    # By value: a callable parameter (which get_config refuses) and objects
    # pass as they are, and get_config is the same arguments serialised.
    kernel = RNG.standard_normal((5, 3, 2))
    layer = SignalConv1D(2, 5, corr=True, strides_up=2, padding="same_zeros",
                         activation="relu", use_bias=True, kernel_parameter=lambda: kernel,
                         kernel_regularizer="l1", dtype="float64", name="synthesis")
    arguments = layer.constructor_arguments()
    assert sorted(arguments) == sorted(inspect.signature(SignalConv1D).parameters)
    copy = SignalConv1D(**arguments)
    copy.build(X.shape)
    layer.build(X.shape)
    copy.set_weights(layer.get_weights())
    np.testing.assert_array_equal(copy(X), layer(X))
    array_layer = SignalConv1D(2, 5, kernel_parameter=kernel, dtype="float64")
    assert array_layer.get_config().keys() == array_layer.constructor_arguments().keys()


def test_regularizer_losses():
    layer = SignalConv1D(2, 3, use_bias=True, kernel_regularizer="l1",
                         bias_regularizer=lambda b: 7.0, bias_initializer="ones")
    assert layer.losses == []
    layer.build(X.shape)
    kernel_loss, bias_loss = layer.losses
    assert kernel_loss == pytest.approx(0.01 * np.abs(layer.kernel).sum(), rel=1e-5)
    assert bias_loss == 7.0


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softplus", np.sin])
def test_activation(activation):
    kernel = RNG.standard_normal((3, 3, 2))
    base = SignalConv1D(2, 3, kernel_parameter=kernel, dtype="float64")(X)
    layer = SignalConv1D(2, 3, kernel_parameter=kernel, dtype="float64", activation=activation)
    fn = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
          "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "softplus": lambda v: np.log1p(np.exp(v)),
          }.get(activation, activation)
    assert_close(layer(X), fn(base), 1e-10)


def test_use_explicit_does_not_change_results():
    kernel = RNG.standard_normal((4, 3, 2))
    a = SignalConv1D(2, 4, strides_up=2, kernel_parameter=kernel, use_explicit=True)(X)
    b = SignalConv1D(2, 4, strides_up=2, kernel_parameter=kernel, use_explicit=False)(X)
    np.testing.assert_array_equal(a, b)


def test_functional_form_matches_layer():
    kernel = RNG.standard_normal((9, 3, 4))
    bias = RNG.standard_normal(4)
    y = signal_conv1d(X, kernel, bias, corr=True, strides_up=3, strides_down=2,
                      padding="same_zeros")
    assert y.dtype == np.float64
    expected = reference_signal_conv1d(X, kernel, bias, corr=True, strides_up=3,
                                       strides_down=2, padding="same_zeros")
    assert_close(y, expected, RTOL[np.dtype("float64")])
    assert signal_conv1d(X.astype(np.float32), kernel.astype(np.float32)).dtype == np.float32


def test_tfc_notimplemented_combinations_work():
    """Channel-separable upsampling with several filters, even corr kernels, rational rates."""
    kernel = RNG.standard_normal((6, 3, 2))
    for kw in ({"channel_separable": True, "strides_up": 3},
               {"corr": True, "strides_up": 2},
               {"strides_up": 3, "strides_down": 2, "channel_separable": True}):
        y = signal_conv1d(X, kernel, padding="same_reflect", **kw)
        assert_close(y, reference_signal_conv1d(X, kernel, padding="same_reflect", **kw),
                     RTOL[np.dtype("float64")])


def test_reflect_pad_longer_than_input():
    x = RNG.standard_normal((1, 2, 1))
    kernel = RNG.standard_normal((9, 1, 1))
    y = signal_conv1d(x, kernel, padding="same_reflect")
    xe = np.pad(x[0, :, 0], 4, mode="reflect")
    assert_close(y[0, :, 0], np.convolve(xe, kernel[:, 0, 0], mode="valid"), 1e-12)


def test_plan_for_takes_the_layers_layout_and_names_a_bad_shape():
    last = SignalConv1D(3, 5, dtype="float64")
    first = SignalConv1D(3, 5, dtype="float64", data_format="channels_first")
    assert last.plan_for((2, 1000, 4)).problem == first.plan_for((2, 4, 1000)).problem
    with pytest.raises(ValueError, match="`input_shape` must be known in full"):
        last.plan_for((2, None, 4))
    with pytest.raises(ValueError, match="`input_shape` width 3 is too short"):
        last.plan_for((2, 3, 4))
    with pytest.raises(TypeError, match="`input_shape` must be a sequence of integers"):
        last.plan_for((2, "x", 4))
    with pytest.raises(ValueError, match="`input_shape` must have rank 3"):
        last.plan_for((2, 1000))
