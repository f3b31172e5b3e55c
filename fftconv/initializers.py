"""Keras-compatible initializers returning NumPy arrays.

An initializer is called as ``initializer(shape, dtype)`` and returns a new array of that shape
and dtype. The definitions, names and configurations follow ``keras.initializers``, so that a
layer configuration written by Keras (e.g. ``{"class_name": "VarianceScaling", "config": {...}}``)
can be read with :func:`get`.

Random initializers own a ``numpy.random.Generator`` seeded with their ``seed`` (None: fresh
entropy). Successive calls draw successive values from that generator; two initializers built
with the same seed return the same sequence of arrays.
"""

from __future__ import annotations

import inspect
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fftconv._arrays import check_dtype, check_shape, finite_float
from fftconv._serialization import Configurable, object_from_dict

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "get",
    "serialize",
]

# Standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_STDDEV = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


def _check_seed(seed: Any) -> int | None:
    """Return ``seed`` as None or a non-negative int, or raise naming ``seed``."""
    if seed is None:
        return None
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"`seed` must be None or a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"`seed` must be None or a non-negative int, got {seed!r}")
    return int(seed)


def _compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight shape as Keras computes them.

    A scalar has fans ``(1, 1)``, a vector ``(n, n)``, a matrix ``(rows, cols)``; a convolution
    kernel ``(*spatial, C_in, C_out)`` has ``(C_in * rf, C_out * rf)`` with the receptive field
    ``rf = prod(spatial)``.
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal samples with those outside [-2, 2] redrawn, float64."""
    values = rng.standard_normal(shape)
    outside = np.flatnonzero(np.abs(values) > 2.0)
    flat = values.reshape(-1)
    while outside.size:
        flat[outside] = rng.standard_normal(outside.size)
        outside = outside[np.abs(flat[outside]) > 2.0]
    return values


class Initializer(Configurable, ABC):
    """Base class: ``initializer(shape, dtype)`` returns a new array."""

    @abstractmethod
    def __call__(self, shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
        """Return a new array.

        Parameters
        ----------
        shape : tuple or list of int
            Shape of the array.
        dtype : str or numpy.dtype, optional
            Its dtype.

        Returns
        -------
        numpy.ndarray
            Array of shape ``shape`` and dtype ``dtype``.
        """


class Zeros(Initializer):
    """Initializer of arrays of zeros."""

    def __call__(self, shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
        return np.zeros(check_shape(shape), check_dtype(dtype, "biuf"))


class Ones(Initializer):
    """Initializer of arrays of ones."""

    def __call__(self, shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
        return np.ones(check_shape(shape), check_dtype(dtype, "biuf"))


class Constant(Initializer):
    """Initializer of arrays filled with one value.

    Parameters
    ----------
    value : float, optional
        The fill value.
    """

    def __init__(self, value: float = 0.0) -> None:
        self.value = finite_float(value, "value")

    def __call__(self, shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
        return np.full(check_shape(shape), self.value, check_dtype(dtype, "biuf"))

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class _RandomInitializer(Initializer):
    """An initializer owning a random generator seeded with ``seed``."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = _check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    @abstractmethod
    def _sample(self, shape: tuple[int, ...]) -> np.ndarray:
        """Draw float64 samples of ``shape``."""

    def __call__(self, shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
        shape = check_shape(shape)
        dtype = check_dtype(dtype, "f")
        return np.asarray(self._sample(shape), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class RandomNormal(_RandomInitializer):
    """Initializer of normally distributed values.

    Parameters
    ----------
    mean : float, optional
        Mean of the distribution.
    stddev : float, optional
        Standard deviation, ``>= 0``.
    seed : int or None, optional
        Seed of the random generator; None draws fresh entropy.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = finite_float(mean, "mean")
        self.stddev = finite_float(stddev, "stddev")
        if self.stddev < 0:
            raise ValueError(f"`stddev` must be >= 0, got {stddev!r}")
        super().__init__(seed)

    def _sample(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._rng.normal(self.mean, self.stddev, shape)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(_RandomInitializer):
    """Initializer of values uniformly distributed in ``[minval, maxval)``.

    Parameters
    ----------
    minval : float, optional
        Lower bound.
    maxval : float, optional
        Upper bound, ``>= minval``.
    seed : int or None, optional
        Seed of the random generator; None draws fresh entropy.
    """

    def __init__(
        self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None
    ) -> None:
        self.minval = finite_float(minval, "minval")
        self.maxval = finite_float(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"`maxval` must be >= `minval` ({minval!r}), got {maxval!r}")
        super().__init__(seed)

    def _sample(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._rng.uniform(self.minval, self.maxval, shape)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Initializer of normal values, those more than two ``stddev`` from ``mean`` redrawn.

    Parameters
    ----------
    mean : float, optional
        Mean of the underlying normal distribution.
    stddev : float, optional
        Standard deviation of the underlying normal distribution (before truncation), ``>= 0``.
    seed : int or None, optional
        Seed of the random generator; None draws fresh entropy.
    """

    def _sample(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.mean + self.stddev * _truncated_normal(self._rng, shape)


class VarianceScaling(_RandomInitializer):
    """Initializer whose scale adapts to the fans of the shape, as Keras's ``VarianceScaling``.

    For a shape ``(*spatial, C_in, C_out)`` the fans are ``fan_in = C_in * rf`` and
    ``fan_out = C_out * rf`` with the receptive field ``rf = prod(spatial)`` (a vector ``(n,)``
    has both fans ``n``, a matrix ``(a, b)`` has ``a`` and ``b``). With ``n`` the fan selected by
    ``mode`` (``fan_avg``: the mean of both; at least 1), the samples have variance
    ``scale / n``:
    ``truncated_normal`` draws a normal with stddev ``sqrt(scale / n) / 0.8796...`` truncated at
    two stddev, ``untruncated_normal`` a normal with stddev ``sqrt(scale / n)``, ``uniform`` a
    uniform in ``[-limit, limit)`` with ``limit = sqrt(3 * scale / n)``.

    Parameters
    ----------
    scale : float, optional
        Scaling factor, ``> 0``.
    mode : {"fan_in", "fan_out", "fan_avg"}, optional
        Which fan divides ``scale``.
    distribution : {"truncated_normal", "untruncated_normal", "uniform", "normal"}, optional
        Distribution of the samples, case-insensitive; ``"normal"`` is ``"truncated_normal"``,
        as in Keras.
    seed : int or None, optional
        Seed of the random generator; None draws fresh entropy.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        self.scale = finite_float(scale, "scale")
        if self.scale <= 0:
            raise ValueError(f"`scale` must be a positive float, got {scale!r}")
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {list(_MODES)}, got {mode!r}")
        self.mode = mode
        allowed = [*_DISTRIBUTIONS, "normal"]
        if not isinstance(distribution, str) or distribution.lower() not in allowed:
            raise ValueError(f"`distribution` must be one of {allowed}, got {distribution!r}")
        lowered = distribution.lower()
        self.distribution = "truncated_normal" if lowered == "normal" else lowered
        super().__init__(seed)

    def _sample(self, shape: tuple[int, ...]) -> np.ndarray:
        fan_in, fan_out = _compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        scale = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / _TRUNCATED_STDDEV
            return stddev * _truncated_normal(self._rng, shape)
        if self.distribution == "untruncated_normal":
            return self._rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return self._rng.uniform(-limit, limit, shape)

    def get_config(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


class _VarianceScalingPreset(VarianceScaling):
    """A :class:`VarianceScaling` with fixed scale, mode and distribution."""

    _preset: tuple[float, str, str]

    def __init__(self, seed: int | None = None) -> None:
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class GlorotUniform(_VarianceScalingPreset):
    """Glorot (Xavier) uniform: ``VarianceScaling(1.0, "fan_avg", "uniform")``."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_VarianceScalingPreset):
    """Glorot (Xavier) normal: ``VarianceScaling(1.0, "fan_avg", "truncated_normal")``."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_VarianceScalingPreset):
    """He normal: ``VarianceScaling(2.0, "fan_in", "truncated_normal")``."""

    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_VarianceScalingPreset):
    """He uniform: ``VarianceScaling(2.0, "fan_in", "uniform")``."""

    _preset = (2.0, "fan_in", "uniform")


class LecunNormal(_VarianceScalingPreset):
    """LeCun normal: ``VarianceScaling(1.0, "fan_in", "truncated_normal")``."""

    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_VarianceScalingPreset):
    """LeCun uniform: ``VarianceScaling(1.0, "fan_in", "uniform")``."""

    _preset = (1.0, "fan_in", "uniform")


_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
}
_LOOKUP: dict[str, type[Initializer]] = {
    **_BY_NAME,
    **{cls.__name__: cls for cls in _BY_NAME.values()},
}


def get(identifier: Any, argument: str = "kernel_initializer") -> Callable[..., np.ndarray]:
    """Return the initializer ``identifier`` describes.

    Parameters
    ----------
    identifier : Initializer, callable, str, dict or Initializer subclass
        An initializer or any callable ``(shape, dtype) -> array`` (returned as is); an
        :class:`Initializer` subclass (instantiated with its defaults); a name, in Keras's
        snake_case (``"glorot_uniform"``) or as the class name (``"GlorotUniform"``); or a Keras
        serialisation ``{"class_name": ..., "config": {...}}`` (other keys, such as ``"module"``
        and ``"registered_name"``, are ignored).
    argument : str, optional
        Name of the argument ``identifier`` came from, used in error messages.

    Returns
    -------
    callable
        The initializer.

    Raises
    ------
    ValueError
        For an unknown name or class name.
    TypeError
        For any other type, or a configuration with unknown keys.
    """
    if isinstance(identifier, type):
        if issubclass(identifier, Initializer) and not inspect.isabstract(identifier):
            return identifier()
    elif callable(identifier):
        return identifier
    elif isinstance(identifier, str):
        if identifier not in _LOOKUP:
            raise ValueError(
                f"`{argument}` must be one of {list(_BY_NAME)} (or the class names "
                f"{[cls.__name__ for cls in _BY_NAME.values()]}), got {identifier!r}"
            )
        return _LOOKUP[identifier]()
    elif isinstance(identifier, dict):
        return object_from_dict(identifier, _LOOKUP, argument)
    raise TypeError(
        f"`{argument}` must be an initializer, a callable, a name in {list(_BY_NAME)} or a dict "
        f'{{"class_name": ..., "config": ...}}, got {identifier!r}'
    )


def serialize(initializer: Any) -> dict[str, Any]:
    """Return the Keras serialisation ``{"class_name": ..., "config": ...}`` of ``initializer``.

    Parameters
    ----------
    initializer : Initializer or object with ``get_config``

    Raises
    ------
    TypeError
        If ``initializer`` has no ``get_config`` method (e.g. a plain function).
    """
    if not callable(getattr(initializer, "get_config", None)):
        raise TypeError(
            f"`initializer` must have a get_config() method to be serialised, got {initializer!r}"
        )
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
