"""Tests of fftconv.activations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fftconv import activations

X = np.linspace(-8.0, 8.0, 161)

NAMES = [
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "swish",
    "silu",
    "exponential",
]


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _selu(v: float) -> float:
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return scale * (v if v > 0 else alpha * (math.exp(v) - 1.0))


REFERENCE = {
    "relu": lambda v: max(v, 0.0),
    "relu6": lambda v: min(max(v, 0.0), 6.0),
    "leaky_relu": lambda v: v if v > 0 else 0.2 * v,
    "elu": lambda v: v if v > 0 else math.exp(v) - 1.0,
    "selu": _selu,
    "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda v: min(max(0.2 * v + 0.5, 0.0), 1.0),
    "tanh": math.tanh,
    "softplus": lambda v: math.log1p(math.exp(v)),
    "softsign": lambda v: v / (1.0 + abs(v)),
    "swish": lambda v: v * _sigmoid(v),
    "silu": lambda v: v * _sigmoid(v),
    "exponential": math.exp,
}


@pytest.mark.parametrize("name", NAMES)
def test_values_match_definitions(name: str) -> None:
    function = activations.get(name)
    assert function is getattr(activations, name)
    expected = np.array([REFERENCE[name](float(v)) for v in X])
    np.testing.assert_allclose(function(X), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_and_shape_preserved(name: str, dtype: type) -> None:
    x = X.reshape(7, 23).astype(dtype)
    y = activations.get(name)(x)
    assert isinstance(y, np.ndarray)
    assert y.dtype == dtype
    assert y.shape == x.shape
    tol = {np.float16: 3e-3, np.float32: 2e-6, np.float64: 1e-12}[dtype]
    expected = activations.get(name)(x.astype(np.float64))
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_non_float_input_becomes_float64(name: str) -> None:
    y = activations.get(name)(np.arange(-3, 4))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, activations.get(name)(np.arange(-3.0, 4.0)))


@pytest.mark.parametrize("name", NAMES)
def test_scalar_input(name: str) -> None:
    y = activations.get(name)(np.float32(0.5))
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float32


def test_extreme_inputs_do_not_overflow() -> None:
    x = np.array([-1000.0, 1000.0], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(activations.sigmoid(x), [0.0, 1.0])
        np.testing.assert_array_equal(activations.softplus(x), [0.0, 1000.0])
        np.testing.assert_array_equal(activations.swish(x), [-0.0, 1000.0])
        np.testing.assert_array_equal(activations.elu(x), [-1.0, 1000.0])


def test_input_not_modified() -> None:
    x = X.copy()
    for name in NAMES:
        activations.get(name)(x)
    np.testing.assert_array_equal(x, X)


def test_identity_and_callables() -> None:
    assert activations.get(None) is None
    assert activations.get("linear") is None

    def custom(x: np.ndarray) -> np.ndarray:
        return 2 * x

    assert activations.get(custom) is custom
    assert activations.get(np.tanh) is np.tanh


def test_get_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"`activation` must be None, a callable or one of \['linear', 'relu'.*"
        r"got 'foo'",
    ):
        activations.get("foo")
    with pytest.raises(ValueError, match="`activation`"):
        activations.get("ReLU")
    for bad in [1, 2.5, {"class_name": "relu"}, ["relu"]]:
        with pytest.raises(TypeError, match="`activation` must be None, a callable"):
            activations.get(bad)


@pytest.mark.parametrize("name", NAMES)
def test_serialize_round_trip(name: str) -> None:
    function = activations.get(name)
    serialized = activations.serialize(function)
    assert serialized == ("swish" if name == "silu" else name)
    assert activations.get(serialized) is function


def test_serialize_identity_and_errors() -> None:
    assert activations.serialize(None) == "linear"
    assert activations.get(activations.serialize(None)) is None
    with pytest.raises(TypeError, match="`activation`"):
        activations.serialize(lambda x: x)
    with pytest.raises(TypeError, match="`activation`"):
        activations.serialize(np.tanh)
