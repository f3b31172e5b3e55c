"""Conversion of user data to real arrays, with errors that name the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from fftconv.backends.cupy_backend import modules_of


def as_real_array(value: Any, argument: str, dtype: Any, kinds: str = "biuf",
                  xp: Any = None) -> Any:
    """Convert `value` to an array of `dtype` (None: its own), accepting data of the `kinds`.

    The default accepts bool, integer and float data.  The result is an array of
    the module `xp` (None: numpy; a GPU array is then copied to the host).

    Raises
    ------
    TypeError
        If `value` is ragged, complex, or not numeric (strings, objects).
    """
    if xp is None:
        xp = np
        modules = modules_of(value)
        value = value if modules is None else modules.to_host(value)
    try:
        array = xp.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{argument}` must be a rectangular array of real numbers; got a "
                        f"ragged or irregular {type(value).__name__} (nested sequences of "
                        f"unequal lengths?).") from None
    if array.dtype.kind not in kinds:
        raise TypeError(f"`{argument}` must hold real numbers (dtype kinds {kinds!r}), "
                        f"got dtype {array.dtype}.")
    return array if dtype is None else array.astype(dtype, copy=False)


def array_module(x: Any) -> Any:
    """The array module of `x`: cupy (or a stand-in) for a GPU array, else numpy."""
    modules = modules_of(x)
    return np if modules is None else modules.xp


#: The computation dtypes.
FLOAT_DTYPES = ("float32", "float64")


def float_dtype(dtype: Any) -> np.dtype:
    """`dtype` as float32 or float64: anything :class:`numpy.dtype` reads as one of them.

    Raises
    ------
    TypeError
        If `dtype` is not a dtype; ValueError if it is another one.
    """
    try:
        result = None if dtype is None else np.dtype(dtype)
    except TypeError:
        result = None
    if result is None or result.name not in FLOAT_DTYPES:
        error = TypeError if result is None else ValueError
        raise error(f"`dtype` must be float32 or float64 (a name such as 'float64' or 'f8', "
                    f"or numpy.float64), got {dtype!r}.")
    return np.dtype(result.name)  # native byte order


def check_dtype(dtype: Any, kinds: str) -> np.dtype:
    """Return `dtype` as a NumPy dtype whose kind is in `kinds` ('f', 'biuf', ...).

    Raises
    ------
    TypeError
        If `dtype` is not a dtype at all; ValueError if it is of another kind.
    """
    allowed = "a floating-point dtype" if kinds == "f" else "a numeric or boolean dtype"
    message = f"`dtype` must be {allowed} (e.g. 'float32', 'float64'), got {dtype!r}"
    if dtype is None:
        raise TypeError(message)
    try:
        result = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(message) from err
    if result.kind not in kinds:
        raise ValueError(message)
    return result


def check_shape(shape: Any, argument: str = "shape") -> tuple[int, ...]:
    """Return `shape` as a tuple of non-negative ints, or raise naming `argument`."""
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in shape
    ):
        raise TypeError(f"`{argument}` must be a tuple or list of ints, got {shape!r}")
    result = tuple(int(n) for n in shape)
    if any(n < 0 for n in result):
        raise ValueError(f"`{argument}` must have non-negative entries, got {shape!r}")
    return result


def finite_float(value: Any, argument: str) -> float:
    """Return `value` as a finite float, or raise naming `argument`."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"`{argument}` must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"`{argument}` must be finite, got {value!r}")
    return float(value)
