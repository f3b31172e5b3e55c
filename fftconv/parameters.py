"""Parameterisations of the kernel and bias of a ``SignalConv1D`` layer.

A parameter object owns the stored state of one array and reconstructs the array when called.

- :class:`RDFTParameter` stores a kernel ``(K, C_in, filters)`` as its orthonormal real DFT along
  the kernel axis, two real arrays ``real`` and ``imag`` of shape ``(C_in, filters, K // 2 + 1)``,
  exactly as ``tensorflow_compression.RDFTParameter`` does, so weights exported from a
  ``tensorflow_compression`` layer load unchanged.
- :class:`VariableParameter` stores the array itself (any shape).

Both carry a :attr:`version` counter that increases whenever the value changes, so that derived
data (e.g. cached kernel spectra) can detect staleness cheaply. The stored arrays are read-only;
the value changes only through ``set_weights`` and ``assign``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from fftconv._arrays import as_real_array, check_dtype, check_shape

__all__ = [
    "RDFTParameter",
    "VariableParameter",
    "deserialize_parameter",
    "serialize_parameter",
]

def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str, got {name!r}")
    return name


def _check_kernel_shape(shape: tuple[int, ...], argument: str) -> tuple[int, ...]:
    """Check that ``shape`` is a kernel shape ``(K, C_in, filters)`` with ``K >= 1``."""
    if len(shape) != 3 or shape[0] < 1:
        raise ValueError(
            f"`{argument}` must have a kernel shape (K, C_in, filters) with K >= 1, got {shape}"
        )
    return shape


def _real_array(value: Any, argument: str) -> np.ndarray:
    """Return ``value`` as a float64 array, or raise TypeError naming ``argument``."""
    return as_real_array(value, argument, np.float64)


def _initial_array(initial_value: Any, shape: Any) -> np.ndarray:
    """`initial_value` as float64, or zeros of `shape` when it is None; both must agree."""
    if initial_value is None:
        if shape is None:
            raise ValueError("`shape` must be given when `initial_value` is None, got None")
        return np.zeros(check_shape(shape, "shape"))
    value = _real_array(initial_value, "initial_value")
    if shape is not None and check_shape(shape, "shape") != value.shape:
        raise ValueError(
            f"`shape` must equal the shape of `initial_value` {value.shape}, got {shape!r}"
        )
    return value


def _frozen(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return a read-only C-contiguous copy of ``array`` in ``dtype``."""
    result = np.array(array, dtype=dtype, order="C", copy=True)
    result.flags.writeable = False
    return result


class _Parameter(ABC):
    """State shared by the parameterisations: name, dtype, shape and version."""

    def __init__(self, name: str, dtype: Any) -> None:
        self._name = _check_name(name)
        self._dtype = check_dtype(dtype, "f")
        self._shape: tuple[int, ...] = ()
        self._version = 0

    @property
    def name(self) -> str:
        """The parameter's name."""
        return self._name

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the stored arrays and of the value."""
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the value returned by calling the parameter."""
        return self._shape

    @property
    def version(self) -> int:
        """A counter, 0 at construction, increased by one on every change of the value."""
        return self._version

    @abstractmethod
    def _weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the stored arrays, in the order of ``get_weights``."""

    @abstractmethod
    def _weight_names(self) -> list[str]:
        """Names of the stored arrays, in the order of ``get_weights``."""

    @abstractmethod
    def _load_weights(self, arrays: list[np.ndarray]) -> None:
        """Store ``arrays`` (float64, validated shapes), in the order of ``get_weights``."""

    @abstractmethod
    def _load_value(self, value: np.ndarray) -> None:
        """Store the state representing ``value`` (float64, shape ``self.shape``)."""

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the stored arrays, in the order of :meth:`get_weights`.

        Parameters
        ----------
        weights : list or tuple of array_like
            One real-valued array per stored array, with the shapes :meth:`get_weights` returns.
            Copies cast to :attr:`dtype` are stored.

        Raises
        ------
        ValueError
            If ``weights`` is not a list or tuple of that many arrays of those shapes.
        """
        shapes = self._weight_shapes()
        expected = ", ".join(
            f"{name} {shape}" for name, shape in zip(self._weight_names(), shapes, strict=True)
        )
        if not isinstance(weights, (list, tuple)) or len(weights) != len(shapes):
            raise ValueError(
                f"`weights` must be a list of {len(shapes)} array(s) [{expected}], got {weights!r}"
            )
        arrays = [_real_array(w, "weights") for w in weights]
        got = [a.shape for a in arrays]
        if got != shapes:
            raise ValueError(f"`weights` must have the shapes [{expected}], got shapes {got}")
        self._load_weights(arrays)
        self._version += 1

    def _assign(self, value: Any, argument: str) -> None:
        array = _real_array(value, argument)
        if array.shape != self._shape:
            raise ValueError(f"`{argument}` must have shape {self._shape}, got {array.shape}")
        self._load_value(array)
        self._version += 1

    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serialisable configuration.

        Returns
        -------
        dict
            ``{"name": str, "shape": list of int, "dtype": str}``. :meth:`from_config` builds a
            parameter of this configuration holding zeros.
        """
        return {"name": self._name, "shape": list(self._shape), "dtype": self._dtype.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Build a parameter from :meth:`get_config` output, holding zeros.

        Parameters
        ----------
        config : dict
            Keys ``"name"``, ``"shape"`` and ``"dtype"`` (``"name"`` and ``"dtype"`` may be left
            out for the defaults). An ``"initial_value"`` key, as ``tensorflow_compression``
            writes it, is passed on to the constructor.

        Raises
        ------
        ValueError
            If ``config`` has keys other than these.
        """
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict, got {config!r}")
        allowed = ["dtype", "initial_value", "name", "shape"]
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise ValueError(f"`config` has unknown keys {unknown}; allowed keys are {allowed}")
        kwargs = {key: config[key] for key in ("name", "shape", "dtype") if key in config}
        return cls(config.get("initial_value"), **kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, shape={self._shape}, "
            f"dtype={self._dtype.name}, version={self._version})"
        )


class RDFTParameter(_Parameter):
    """A kernel stored as its orthonormal real DFT along the kernel axis.

    For a time-domain kernel ``k`` of shape ``(K, C_in, filters)`` the stored arrays are the real
    and imaginary parts of ``numpy.fft.rfft(k.transpose(1, 2, 0), axis=-1) / sqrt(K)``, of shape
    ``(C_in, filters, K // 2 + 1)``. Calling the parameter inverts this. The imaginary parts of
    the DC coefficient and, for even ``K``, of the Nyquist coefficient do not affect the kernel.

    Parameters
    ----------
    initial_value : array_like or None
        Time-domain kernel, shape ``(K, C_in, filters)`` with ``K >= 1``. None gives a zero
        kernel of shape ``shape``.
    name : str, optional
        Name of the parameter.
    shape : tuple of int, optional
        Kernel shape ``(K, C_in, filters)``. Required when ``initial_value`` is None, otherwise
        it must equal ``initial_value``'s shape.
    dtype : str or numpy.dtype, optional
        Floating dtype of the stored arrays and of the kernel: float16, float32 or float64.
        The transforms are computed in float64 and the results cast.
    """

    def __init__(
        self,
        initial_value: Any,
        name: str = "kernel",
        shape: Sequence[int] | None = None,
        dtype: Any = "float32",
    ) -> None:
        super().__init__(name, dtype)
        kernel = _initial_array(initial_value, shape)
        argument = "shape" if initial_value is None else "initial_value"
        self._shape = _check_kernel_shape(kernel.shape, argument)
        self._load_value(kernel)

    @property
    def real(self) -> np.ndarray:
        """Real part of the stored spectrum, read-only, shape ``(C_in, filters, K//2 + 1)``."""
        return self._real

    @property
    def imag(self) -> np.ndarray:
        """Imaginary part of the stored spectrum, read-only, shape ``(C_in, filters, K//2 + 1)``."""
        return self._imag

    def _weight_shapes(self) -> list[tuple[int, ...]]:
        support, channels, filters = self._shape
        return [(channels, filters, support // 2 + 1)] * 2

    def _weight_names(self) -> list[str]:
        return ["imag", "real"]

    def _load_weights(self, arrays: list[np.ndarray]) -> None:
        imag, real = arrays
        self._real = _frozen(real, self._dtype)
        self._imag = _frozen(imag, self._dtype)

    def _load_value(self, value: np.ndarray) -> None:
        support = self._shape[0]
        spectrum = np.fft.rfft(value.transpose(1, 2, 0), axis=-1) / np.sqrt(support)
        self._real = _frozen(spectrum.real, self._dtype)
        self._imag = _frozen(spectrum.imag, self._dtype)

    def __call__(self) -> np.ndarray:
        """Return the time-domain kernel.

        Returns
        -------
        numpy.ndarray
            ``irfft(real + 1j * imag, n=K) * sqrt(K)`` transposed to ``(K, C_in, filters)``,
            a new array in :attr:`dtype`.
        """
        support = self._shape[0]
        spectrum = self._real.astype(np.float64) + 1j * self._imag.astype(np.float64)
        kernel = np.fft.irfft(spectrum, n=support, axis=-1) * np.sqrt(support)
        return np.ascontiguousarray(kernel.transpose(2, 0, 1), dtype=self._dtype)

    def get_weights(self) -> list[np.ndarray]:
        """Return copies of the stored arrays ``[imag, real]``.

        Returns
        -------
        list of numpy.ndarray
            ``[imag, real]``, each of shape ``(C_in, filters, K // 2 + 1)``: the order of
            ``tensorflow_compression``'s ``get_weights()`` for this parameter.
        """
        return [self._imag.copy(), self._real.copy()]

    def assign(self, kernel: Any) -> None:
        """Set the value from a time-domain kernel.

        Parameters
        ----------
        kernel : array_like
            Real-valued kernel of shape :attr:`shape` ``(K, C_in, filters)``.
        """
        self._assign(kernel, "kernel")


class VariableParameter(_Parameter):
    """An array stored as it is.

    Parameters
    ----------
    initial_value : array_like or None
        The value, any shape (e.g. a kernel ``(K, C_in, filters)`` or a bias ``(C_out,)``).
        None gives zeros of shape ``shape``.
    name : str, optional
        Name of the parameter.
    shape : tuple of int, optional
        Shape of the value. Required when ``initial_value`` is None, otherwise it must equal
        ``initial_value``'s shape.
    dtype : str or numpy.dtype, optional
        Floating dtype of the value: float16, float32 or float64.
    """

    def __init__(
        self,
        initial_value: Any,
        name: str = "kernel",
        shape: Sequence[int] | None = None,
        dtype: Any = "float32",
    ) -> None:
        super().__init__(name, dtype)
        value = _initial_array(initial_value, shape)
        self._shape = value.shape
        self._load_value(value)

    def _weight_shapes(self) -> list[tuple[int, ...]]:
        return [self._shape]

    def _weight_names(self) -> list[str]:
        return ["value"]

    def _load_weights(self, arrays: list[np.ndarray]) -> None:
        self._load_value(arrays[0])

    def _load_value(self, value: np.ndarray) -> None:
        self._value = _frozen(value, self._dtype)

    def __call__(self) -> np.ndarray:
        """Return a copy of the value, shape :attr:`shape`, in :attr:`dtype`."""
        return self._value.copy()

    def get_weights(self) -> list[np.ndarray]:
        """Return ``[value]``, a copy of the stored array."""
        return [self._value.copy()]

    def assign(self, value: Any) -> None:
        """Set the value.

        Parameters
        ----------
        value : array_like
            Real-valued array of shape :attr:`shape`.
        """
        self._assign(value, "value")


_PARAMETER_CLASSES: dict[str, type[_Parameter]] = {
    "RDFTParameter": RDFTParameter,
    "VariableParameter": VariableParameter,
}


def serialize_parameter(parameter: RDFTParameter | VariableParameter) -> dict[str, Any]:
    """Return ``{"class_name": ..., "config": parameter.get_config()}``.

    Parameters
    ----------
    parameter : RDFTParameter or VariableParameter

    Raises
    ------
    TypeError
        If ``parameter`` is of another type.
    """
    if type(parameter) not in _PARAMETER_CLASSES.values():
        raise TypeError(f"`parameter` must be one of {list(_PARAMETER_CLASSES)}, got {parameter!r}")
    return {"class_name": type(parameter).__name__, "config": parameter.get_config()}


def deserialize_parameter(
    config: dict[str, Any], argument: str = "parameter"
) -> RDFTParameter | VariableParameter:
    """Build a parameter from :func:`serialize_parameter` output.

    Parameters
    ----------
    config : dict
        ``{"class_name": "RDFTParameter" | "VariableParameter", "config": {...}}``. A class name
        with a package prefix as ``tensorflow_compression`` writes it
        (``"tensorflow_compression>RDFTParameter"``) is accepted; other keys are ignored.
    argument : str, optional
        Name of the argument ``config`` came from, used in error messages.

    Returns
    -------
    RDFTParameter or VariableParameter
        A parameter holding zeros of the configured shape.

    Raises
    ------
    TypeError
        If ``config`` is not a dict with a str ``"class_name"`` and a dict ``"config"``.
    ValueError
        If the class name is unknown.
    """
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("class_name"), str)
        or not isinstance(config.get("config"), dict)
    ):
        raise TypeError(
            f'`{argument}` must be a dict {{"class_name": str, "config": dict}}, got {config!r}'
        )
    class_name = config["class_name"].rpartition(">")[2]
    if class_name not in _PARAMETER_CLASSES:
        raise ValueError(
            f"`{argument}` class_name must be one of {list(_PARAMETER_CLASSES)}, "
            f"got {config['class_name']!r}"
        )
    return _PARAMETER_CLASSES[class_name].from_config(config["config"])
