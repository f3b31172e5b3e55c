"""Conversion of user data to real arrays, with errors that name the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def as_real_array(value: Any, argument: str, dtype: Any, kinds: str = "biuf") -> np.ndarray:
    """Convert `value` to an array of `dtype`, accepting data of the dtype `kinds`.

    The default accepts bool, integer and float data.

    Raises
    ------
    TypeError
        If `value` is ragged, complex, or not numeric (strings, objects).
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{argument}` must be a real numeric array: {err}") from None
    if array.dtype.kind not in kinds:
        raise TypeError(f"`{argument}` must hold real numbers (dtype kinds {kinds!r}), "
                        f"got dtype {array.dtype}.")
    return array.astype(dtype, copy=False)


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
