"""Element-wise activation functions, by Keras name.

Each function takes an array and returns a new array of the same shape. Floating inputs keep
their dtype; other inputs are converted to float64 first. The definitions follow Keras 2.14 with
default arguments. ``None`` and ``"linear"`` denote the identity; :func:`get` returns None for
them, so that the layer can skip the activation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from fftconv._arrays import array_module
from fftconv.backends.cupy_backend import modules_of

__all__ = [
    "derivative",
    "elu",
    "exponential",
    "gelu",
    "get",
    "hard_sigmoid",
    "leaky_relu",
    "relu",
    "relu6",
    "selu",
    "serialize",
    "sigmoid",
    "silu",
    "softplus",
    "softsign",
    "swish",
    "tanh",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _as_float(x: Any) -> np.ndarray:
    """Return ``x`` as an array, converted to float64 unless it is floating already.

    A GPU array stays on its device (numpy's functions below dispatch to CuPy).
    """
    x = array_module(x).asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def _like(result: Any, x: np.ndarray) -> np.ndarray:
    """Return ``result`` as an array of the dtype of ``x`` (on the device of ``x``)."""
    return array_module(x).asarray(result, dtype=x.dtype)


def _special(x: Any) -> Any:
    """The special functions for the array `x`: :mod:`scipy.special`, or the GPU's."""
    modules = modules_of(x)
    return special if modules is None else modules.special


def relu(x: Any) -> np.ndarray:
    """Rectified linear unit ``max(x, 0)``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.maximum(x, 0), x)


def relu6(x: Any) -> np.ndarray:
    """Rectified linear unit capped at 6: ``min(max(x, 0), 6)``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.clip(x, 0, 6), x)


def leaky_relu(x: Any) -> np.ndarray:
    """Leaky rectified linear unit ``x if x > 0 else 0.2 * x``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.where(x > 0, x, 0.2 * x), x)


def elu(x: Any) -> np.ndarray:
    """Exponential linear unit ``x if x > 0 else exp(x) - 1``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.where(x > 0, x, np.expm1(np.minimum(x, 0))), x)


def selu(x: Any) -> np.ndarray:
    """Scaled exponential linear unit ``scale * (x if x > 0 else alpha * (exp(x) - 1))``.

    With ``alpha = 1.67326...`` and ``scale = 1.05070...``; any shape, dtype preserved.
    """
    x = _as_float(x)
    negative = _SELU_ALPHA * np.expm1(np.minimum(x, 0))
    return _like(_SELU_SCALE * np.where(x > 0, x, negative), x)


def gelu(x: Any) -> np.ndarray:
    """Gaussian error linear unit, exact form ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    Any shape, dtype preserved.
    """
    x = _as_float(x)
    return _like(0.5 * x * (1 + _special(x).erf(x / np.sqrt(2).astype(x.dtype))), x)


def sigmoid(x: Any) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(_special(x).expit(x), x)


def hard_sigmoid(x: Any) -> np.ndarray:
    """Piecewise-linear sigmoid ``clip(0.2 * x + 0.5, 0, 1)`` (Keras 2), dtype preserved."""
    x = _as_float(x)
    return _like(np.clip(0.2 * x + 0.5, 0, 1), x)


def tanh(x: Any) -> np.ndarray:
    """Hyperbolic tangent, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.tanh(x), x)


def softplus(x: Any) -> np.ndarray:
    """Softplus ``log(1 + exp(x))``, computed without overflow; any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.logaddexp(0, x), x)


def softsign(x: Any) -> np.ndarray:
    """Softsign ``x / (1 + |x|)``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(x / (1 + np.abs(x)), x)


def swish(x: Any) -> np.ndarray:
    """Swish (SiLU) ``x * sigmoid(x)``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(x * _special(x).expit(x), x)


silu = swish


def exponential(x: Any) -> np.ndarray:
    """Exponential ``exp(x)``, any shape, dtype preserved."""
    x = _as_float(x)
    return _like(np.exp(x), x)


_BY_NAME: dict[str, Callable[[Any], np.ndarray]] = {
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": tanh,
    "softplus": softplus,
    "softsign": softsign,
    "swish": swish,
    "silu": silu,
    "exponential": exponential,
}
_NAMES = ["linear", *_BY_NAME]


# Derivatives of the activations with respect to their input, as TensorFlow's gradients
# define them at the kinks (relu'(0) = 0, relu6 passes neither 0 nor 6, hard_sigmoid passes
# its end points).
_DERIVATIVES: dict[Callable[[Any], np.ndarray], Callable[[np.ndarray], Any]] = {
    relu: lambda x: x > 0,
    relu6: lambda x: (x > 0) & (x < 6),
    leaky_relu: lambda x: np.where(x > 0, 1, 0.2),
    elu: lambda x: np.where(x > 0, 1, np.exp(np.minimum(x, 0))),
    selu: lambda x: _SELU_SCALE * np.where(x > 0, 1, _SELU_ALPHA * np.exp(np.minimum(x, 0))),
    gelu: lambda x: (0.5 * (1 + special.erf(x / np.sqrt(2)))
                     + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)),
    sigmoid: lambda x: special.expit(x) * special.expit(-x),
    hard_sigmoid: lambda x: np.where(np.abs(x) <= 2.5, 0.2, 0),
    tanh: lambda x: 1 - np.tanh(x) ** 2,
    softplus: special.expit,
    softsign: lambda x: 1 / (1 + np.abs(x)) ** 2,
    swish: lambda x: special.expit(x) * (1 + x * special.expit(-x)),
    exponential: np.exp,
}


def derivative(activation: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
    """Return the derivative of one of this module's activations.

    Parameters
    ----------
    activation : callable
        One of the functions of this module (as :func:`get` returns them).

    Returns
    -------
    callable
        Maps the activation's input ``x`` (any shape) to ``d activation / dx``
        element-wise, as a new array of the dtype of ``x`` (float64 for
        non-floating input).

    Raises
    ------
    TypeError
        For any other callable: its derivative is unknown.
    """
    found = _DERIVATIVES.get(activation)
    if found is None:
        raise TypeError(f"`activation` {activation!r} has no known derivative: gradients need "
                        f"None or one of the named activations {_NAMES}.")

    def function(x: Any) -> np.ndarray:
        x = _as_float(x)
        return _like(found(x), x)

    return function


def get(identifier: Any) -> Callable[[Any], np.ndarray] | None:
    """Return the activation ``identifier`` describes.

    Parameters
    ----------
    identifier : None, str or callable
        None or ``"linear"`` (the identity), one of the names ``"relu"``, ``"relu6"``,
        ``"leaky_relu"``, ``"elu"``, ``"selu"``, ``"gelu"``, ``"sigmoid"``, ``"hard_sigmoid"``,
        ``"tanh"``, ``"softplus"``, ``"softsign"``, ``"swish"``, ``"silu"``, ``"exponential"``,
        or a callable (returned as is).

    Returns
    -------
    callable or None
        The activation function, or None for the identity.

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For any other type.
    """
    if identifier is None or callable(identifier):
        return identifier
    message = f"`activation` must be None, a callable or one of {_NAMES}, got {identifier!r}"
    if not isinstance(identifier, str):
        raise TypeError(message)
    if identifier == "linear":
        return None
    if identifier not in _BY_NAME:
        raise ValueError(message)
    return _BY_NAME[identifier]


def is_named(activation: Callable[[Any], np.ndarray] | None) -> bool:
    """Whether `activation` is None or one of the functions of this module (element-wise)."""
    return activation is None or any(activation is f for f in _BY_NAME.values())


def serialize(activation: Callable[[Any], np.ndarray] | None) -> str:
    """Return the name of ``activation``, ``"linear"`` for None.

    Parameters
    ----------
    activation : callable or None
        None or one of the functions of this module (``silu`` is named ``"swish"``).

    Raises
    ------
    TypeError
        For a callable that is not one of the functions of this module.
    """
    if activation is None:
        return "linear"
    for name, function in _BY_NAME.items():
        if activation is function:
            return name
    raise TypeError(
        f"`activation` must be None or one of the functions {_NAMES} to be serialised, "
        f"got {activation!r}"
    )
