"""The backend axis of the tests: one test body on every available backend.

``numpy`` and ``pyfftw`` run on the CPU; ``cupy-standin`` runs the GPU backend's
code with NumPy standing in for CuPy (:mod:`device_standin`), everywhere;
``cupy`` runs it on a real GPU, is marked ``gpu`` and skips, with the reason,
where CuPy or a device is missing.  Inputs go to the device with
:meth:`Device.put` and results come back with :meth:`Device.get`, which checks
that they were left on the device.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pytest

from fftconv.backends import cupy_backend


@cache
def cupy_missing() -> str | None:
    """Why the real GPU backend cannot run here, or None if it can."""
    try:
        cupy_backend.load_cupy()
    except (ImportError, RuntimeError) as err:
        return str(err)
    return None


#: Every backend name.
NAMES = ("numpy", "pyfftw", "cupy-standin", "cupy")
_MARKS = {"pyfftw": [pytest.mark.skipif(importlib.util.find_spec("pyfftw") is None,
                                        reason="pyFFTW is not installed")],
          "cupy": [pytest.mark.gpu,
                   pytest.mark.skipif(cupy_missing() is not None,
                                      reason=f"no GPU backend here: {cupy_missing()}")]}


def backend_params(*names: str) -> list:
    """``pytest.param(name)`` for each backend (all by default), with its marks."""
    return [pytest.param(name, marks=_MARKS.get(name, []), id=name) for name in names or NAMES]


def backend_way_params(ways: tuple[str, ...]) -> list:
    """``pytest.param(name, way)``: every way on each backend, but the direct ways on
    one CPU backend only (they do not use the FFT backend)."""
    fft_ways = tuple(w for w in ways if not w.startswith("direct"))
    combos = {"numpy": ways, "pyfftw": fft_ways, "cupy-standin": ways, "cupy": ways}
    return [pytest.param(name, way, marks=_MARKS.get(name, []), id=f"{name}-{way}")
            for name, names in combos.items() for way in names]


@dataclass(frozen=True)
class Device:
    """How a test runs on one backend.

    Attributes
    ----------
    name : str
    backend : str
        The layer's `backend` argument ('auto' for GPU inputs: it follows them).
    put : callable
        An input (numpy) on the device.
    array_type : type
        The type of the arrays the device's results are.
    to_host : callable
    """

    name: str
    backend: str
    put: Callable[[np.ndarray], Any]
    array_type: type
    to_host: Callable[[Any], np.ndarray]

    def get(self, y: Any) -> np.ndarray:
        """`y`, a result that must be on this device, as a numpy array."""
        assert type(y) is self.array_type, (type(y), self.array_type)
        return self.to_host(y)


@contextmanager
def on_device(name: str) -> Iterator[Device]:
    """The :class:`Device` of backend `name`; skips if it is ``'cupy'`` and unavailable."""
    if name in ("numpy", "pyfftw"):
        yield Device(name, name, lambda x: x, np.ndarray, lambda y: y)
        return
    if name == "cupy":
        missing = cupy_missing()
        if missing:
            pytest.skip(f"no GPU backend here: {missing}")
        cupy = cupy_backend.load_cupy().xp
        yield Device(name, "auto", cupy.asarray, cupy.ndarray, cupy.asnumpy)
        return
    from device_standin import DeviceArray, standin_modules

    modules = standin_modules()
    cupy_backend.install(modules)
    try:
        yield Device(name, "auto", modules.xp.asarray, DeviceArray, modules.to_host)
    finally:
        cupy_backend.install(None)
