"""Keras-compatible weight regularizers.

A regularizer is called on an array and returns its penalty as a Python float. The definitions,
names and configurations follow ``keras.regularizers``: ``L1(l1)`` is ``l1 * sum(|x|)``,
``L2(l2)`` is ``l2 * sum(x ** 2)`` and ``L1L2(l1, l2)`` their sum. Penalties are computed in
float64.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from fftconv._arrays import as_real_array, finite_float
from fftconv._serialization import Configurable, object_from_dict

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "serialize"]


class Regularizer(Configurable, ABC):
    """Base class: ``regularizer(x)`` returns the penalty of the array ``x`` as a float."""

    @abstractmethod
    def __call__(self, x: Any) -> float:
        """Return the penalty of ``x``.

        Parameters
        ----------
        x : array_like
            Real-valued array, any shape.

        Returns
        -------
        float
            The penalty.
        """


class L1(Regularizer):
    """L1 penalty ``l1 * sum(|x|)``.

    Parameters
    ----------
    l1 : float, optional
        Penalty factor.
    """

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = finite_float(l1, "l1")

    def __call__(self, x: Any) -> float:
        return self.l1 * float(np.sum(np.abs(as_real_array(x, "x", np.float64, kinds="fiu"))))

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    """L2 penalty ``l2 * sum(x ** 2)``.

    Parameters
    ----------
    l2 : float, optional
        Penalty factor.
    """

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = finite_float(l2, "l2")

    def __call__(self, x: Any) -> float:
        return self.l2 * float(np.sum(np.square(as_real_array(x, "x", np.float64, kinds="fiu"))))

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """Sum of the L1 and L2 penalties ``l1 * sum(|x|) + l2 * sum(x ** 2)``.

    Parameters
    ----------
    l1 : float, optional
        L1 penalty factor.
    l2 : float, optional
        L2 penalty factor.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = finite_float(l1, "l1")
        self.l2 = finite_float(l2, "l2")

    def __call__(self, x: Any) -> float:
        x = as_real_array(x, "x", np.float64, kinds="fiu")
        return self.l1 * float(np.sum(np.abs(x))) + self.l2 * float(np.sum(np.square(x)))

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


_CLASSES: dict[str, type[Regularizer]] = {"L1": L1, "L2": L2, "L1L2": L1L2}
_SNAKE_NAMES: dict[str, type[Regularizer]] = {"l1": L1, "l2": L2, "l1_l2": L1L2}
_LOOKUP: dict[str, type[Regularizer]] = {**_SNAKE_NAMES, **_CLASSES}


def _from_name(name: str) -> Regularizer:
    if name == "l1_l2":
        # As in Keras: the name "l1_l2" stands for both penalties at 0.01, unlike L1L2().
        return L1L2(l1=0.01, l2=0.01)
    return _LOOKUP[name]()


def get(identifier: Any, argument: str = "kernel_regularizer") -> Callable[[Any], float] | None:
    """Return the regularizer ``identifier`` describes.

    Parameters
    ----------
    identifier : None, Regularizer, callable, str, dict or Regularizer subclass
        None (no regularization); a regularizer or any callable ``array -> float`` (returned as
        is); a :class:`Regularizer` subclass (instantiated with its defaults); a name, ``"l1"``,
        ``"l2"``, ``"l1_l2"`` (both factors 0.01, as in Keras) or a class name ``"L1"``, ``"L2"``,
        ``"L1L2"`` (default factors); or a Keras serialisation
        ``{"class_name": ..., "config": {...}}`` (other keys are ignored).
    argument : str, optional
        Name of the argument ``identifier`` came from, used in error messages.

    Returns
    -------
    callable or None
        The regularizer, or None.

    Raises
    ------
    ValueError
        For an unknown name or class name.
    TypeError
        For any other type, or a configuration with unknown keys.
    """
    if identifier is None:
        return None
    if isinstance(identifier, type):
        if issubclass(identifier, Regularizer) and not inspect.isabstract(identifier):
            return identifier()
    elif callable(identifier):
        return identifier
    elif isinstance(identifier, str):
        if identifier not in _LOOKUP:
            raise ValueError(
                f"`{argument}` must be None, a callable or one of {list(_LOOKUP)}, "
                f"got {identifier!r}"
            )
        return _from_name(identifier)
    elif isinstance(identifier, dict):
        return object_from_dict(identifier, _LOOKUP, argument)
    raise TypeError(
        f"`{argument}` must be None, a regularizer, a callable, a name in {list(_LOOKUP)} or a "
        f'dict {{"class_name": ..., "config": ...}}, got {identifier!r}'
    )


def serialize(regularizer: Any) -> dict[str, Any] | None:
    """Return the Keras serialisation ``{"class_name": ..., "config": ...}``, None for None.

    Parameters
    ----------
    regularizer : Regularizer, object with ``get_config``, or None

    Raises
    ------
    TypeError
        If ``regularizer`` has no ``get_config`` method (e.g. a plain function).
    """
    if regularizer is None:
        return None
    if not callable(getattr(regularizer, "get_config", None)):
        raise TypeError(
            f"`regularizer` must be None or have a get_config() method to be serialised, "
            f"got {regularizer!r}"
        )
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
