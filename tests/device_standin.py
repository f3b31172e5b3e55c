"""NumPy standing in for CuPy, so that the GPU backend's logic runs without a GPU.

:func:`standin_modules` builds a :class:`~fftconv.backends.cupy_backend.DeviceModules`
on NumPy and SciPy whose arrays are :class:`DeviceArray`, an ndarray subclass that
behaves as strictly as a CuPy array where it matters to fftconv:

* an operation mixing it with a plain (host) ndarray raises TypeError, as CuPy
  refuses implicit host arrays, and so does one mixing two devices;
* it lives on a numbered device (``x.device.id``); arrays made inside
  ``use_device(i)`` live on device ``i``;
* it has CuPy's ``x.get()`` and ``x.data.ptr``;
* transforms take cuFFT-like plans (``get_fft_plan``) and refuse a plan whose
  shape does not match, as CuPy does; the GEMM wants C-contiguous operands, as
  cuBLAS takes them without a copy.

What it cannot catch: ``numpy.asarray`` and friends accept it silently (an ndarray
subclass never reaches ``__array__``), so such a slip shows only where its plain
result meets a device array again, or in the type of a result.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.fft
import scipy.special

from fftconv.backends.cupy_backend import DeviceModules

_state = threading.local()

#: Names of the array module's functions that accept host data (a copy to the device).
_TRANSFERS = ("asarray", "array", "ascontiguousarray")


def current_device() -> int:
    return getattr(_state, "device", 0)


@contextmanager
def use_device(device: int):
    previous = current_device()
    _state.device = device
    try:
        yield
    finally:
        _state.device = previous


class DeviceArray(np.ndarray):
    """An ndarray playing a CuPy array on device ``device.id``."""

    def __array_finalize__(self, obj: Any) -> None:
        self._device = getattr(obj, "_device", current_device())

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        device = _device_of_operands((*inputs, *kwargs.get("out", ())))
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*(_plain(i) for i in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result, device)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        device = _device_of_operands((*args, *kwargs.values()))
        return _wrap(func(*_plain(args), **_plain(kwargs)), device)

    def __getitem__(self, key: Any) -> Any:
        _device_of_operands((self, *_flat(key)))
        return _wrap(super().__getitem__(_plain(key)), self._device)

    def __setitem__(self, key: Any, value: Any) -> None:
        _device_of_operands((self, value, *_flat(key)))
        super().__setitem__(_plain(key), _plain(value))

    @property
    def data(self) -> SimpleNamespace:  # CuPy's MemoryPointer, its address only
        return SimpleNamespace(ptr=self.__array_interface__["data"][0])

    @property
    def device(self) -> SimpleNamespace:
        return SimpleNamespace(id=self._device)

    def get(self) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get``."""
        return np.array(self.view(np.ndarray))


def _flat(obj: Any) -> tuple:
    return tuple(obj) if isinstance(obj, tuple) else (obj,)


def _device_of_operands(operands: Any) -> int | None:
    """The device of the device arrays among `operands`.

    TypeError if a host ndarray is among them, or arrays of two devices.
    """
    devices = set()
    for item in operands:
        for leaf in (item if isinstance(item, (list, tuple)) else (item,)):
            if isinstance(leaf, DeviceArray):
                devices.add(leaf._device)
            elif isinstance(leaf, np.ndarray):
                raise TypeError(f"a host numpy array (shape {leaf.shape}) met a device array: "
                                f"CuPy refuses implicit host arrays.")
    if len(devices) > 1:
        raise TypeError(f"arrays on devices {sorted(devices)} met in one operation.")
    return devices.pop() if devices else None


def _plain(obj: Any) -> Any:
    if isinstance(obj, DeviceArray):
        return obj.view(np.ndarray)
    if isinstance(obj, tuple):
        return tuple(_plain(o) for o in obj)
    if isinstance(obj, list):
        return [_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _wrap(obj: Any, device: int | None) -> Any:
    if isinstance(obj, np.ndarray) and not isinstance(obj, DeviceArray):
        array = obj.view(DeviceArray)
        array._device = current_device() if device is None else device
        return array
    if isinstance(obj, tuple):
        return tuple(_wrap(o, device) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o, device) for o in obj]
    return obj


class _ArrayModule:
    """numpy's namespace with results on the current device and host arrays refused."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def function(*args: Any, **kwargs: Any) -> Any:
            if name in _TRANSFERS:
                first = args[0]
                if isinstance(first, DeviceArray) and first._device != current_device():
                    raise TypeError("asarray of an array of another device")
                if isinstance(first, DeviceArray) and kwargs.get("dtype") in (None, first.dtype):
                    return first if name != "ascontiguousarray" or first.flags.c_contiguous \
                        else _wrap(np.ascontiguousarray(_plain(first)), first._device)
                return _wrap(np.array(_plain(first), *args[1:], copy=True, **kwargs),
                             current_device())
            device = _device_of_operands((*args, *kwargs.values()))
            return _wrap(attr(*_plain(args), **_plain(kwargs)), device)

        return function


class _Plan:
    """A cuFFT plan's stand-in: the shape and kind it transforms, its work-area bytes."""

    def __init__(self, shape: tuple[int, ...], n: int, value_type: str, nbytes: int) -> None:
        self.shape, self.n, self.value_type, self.nbytes = shape, n, value_type, nbytes
        self.executions = 0


class _FFT:
    """``cupyx.scipy.fft``'s transforms on scipy.fft, with plans checked as CuPy checks them."""

    def __init__(self) -> None:
        self.plans_made = 0

    def get_fft_plan(self, a: Any, shape: Any = None, axes: Any = None,
                     value_type: str = "C2C") -> _Plan:
        if not a.flags.c_contiguous:
            raise ValueError("Input array a must be contiguous")
        self.plans_made += 1
        return _Plan(a.shape, shape[0], value_type, a.nbytes)

    def rfft(self, x: Any, n: int | None = None, axis: int = -1, norm: str | None = None,
             overwrite_x: bool = False, *, plan: _Plan | None = None) -> Any:
        self._check(x, n, plan, "R2C")
        return _wrap(scipy.fft.rfft(_plain(x), n, axis, norm), x._device)

    def irfft(self, x: Any, n: int | None = None, axis: int = -1, norm: str | None = None,
              overwrite_x: bool = False, *, plan: _Plan | None = None) -> Any:
        self._check(x, n, plan, "C2R")
        return _wrap(scipy.fft.irfft(_plain(x), n, axis, norm), x._device)

    @staticmethod
    def _check(x: Any, n: int | None, plan: _Plan | None, kind: str) -> None:
        if not isinstance(x, DeviceArray) or x._device != current_device():
            raise TypeError(f"{kind} transform of an array not on the current device: "
                            f"{type(x).__name__}")
        if plan is not None:
            if (plan.value_type, plan.shape, plan.n) != (kind, x.shape, n):
                raise ValueError("The cuFFT plan and a.shape do not match: plan "
                                 f"{(plan.value_type, plan.shape, plan.n)}, array "
                                 f"{(kind, x.shape, n)}")
            plan.executions += 1


def _gemm(a: Any, b: Any, out: Any, beta: float) -> None:
    for name, m in (("a", a), ("b", b), ("out", out)):
        if not m.flags.c_contiguous:
            raise ValueError(f"gemm: `{name}` is not C-contiguous (cuBLAS would copy it).")
    product = np.matmul(_plain(a), _plain(b))
    target = _plain(out)
    target[...] = product if beta == 0 else product + beta * target


def standin_modules(total_memory: int = 1 << 36) -> DeviceModules:
    """A :class:`DeviceModules` of NumPy standing in for CuPy (see the module docstring)."""
    return DeviceModules(
        xp=_ArrayModule(), fft=_FFT(), special=scipy.special, array_type=DeviceArray,
        as_strided=lambda x, shape, strides: _wrap(np.lib.stride_tricks.as_strided(
            _plain(x), shape, strides), x._device),
        gemm=_gemm, to_host=lambda x: np.array(_plain(x)), device_of=lambda x: x._device,
        current_device=current_device, use_device=use_device, synchronize=lambda: None,
        plan_nbytes=lambda plan: plan.nbytes, total_memory=lambda device: total_memory)
