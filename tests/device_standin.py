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
* ``raw_kernel`` makes fftconv's own CUDA kernel (:mod:`fftconv.paths.fir`) as an
  emulation in NumPy of what its threads compute, from the launch arguments
  alone (pointers, sizes, strides); a launch with arguments of other dtypes, a
  grid too small for the output or arguments that reach outside an array raises.
* host<->device copies on a stream (``x.set(host, stream=)``,
  ``x.get(stream=, out=, blocking=False)``) are queued (:class:`Stream`) and run
  only once an event recorded after them is synchronized or waited for, so a
  staging buffer written again too early, or a device array read before its
  upload was waited for, holds wrong data, as it may on a GPU.  Each stream
  logs its copies and whether their host memory came from ``pinned_empty``
  (:class:`PinnedMemory`); devices are named ``'Stand-in GPU <id>'``.
* :attr:`StandinModules.log` records, in order, the copies as they are queued
  and the computations it sees (transforms, GEMMs, kernel launches) as they
  run, so a test can tell which transfers were queued before which work.

What it cannot catch: ``numpy.asarray`` and friends accept it silently (an ndarray
subclass never reaches ``__array__``), so such a slip shows only where its plain
result meets a device array again, or in the type of a result.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.fft
import scipy.special

from fftconv.backends.cupy_backend import DeviceModules
from fftconv.paths.fir import FIR_KERNELS, FIR_SOURCE

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

    def get(self, stream: Stream | None = None, out: np.ndarray | None = None,
            blocking: bool = True) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get``: into `out` if given; queued on
        `stream` if given, and then waited for if `blocking`."""
        out = np.empty(self.shape, self.dtype) if out is None else out
        _check_copy(self, out)
        source = self.view(np.ndarray)
        _issue(stream, "download", self, out, lambda: np.copyto(out, source))
        if blocking and stream is not None:
            stream.synchronize()
        return out

    def set(self, arr: np.ndarray, stream: Stream | None = None) -> None:
        """Copy the host array `arr` into this one, as ``cupy.ndarray.set``; queued on
        `stream` if given."""
        _check_copy(self, arr)
        if not self.flags.c_contiguous:
            raise RuntimeError("Cannot set to non-contiguous array")
        target = self.view(np.ndarray)
        _issue(stream, "upload", self, arr, lambda: np.copyto(target, arr))


def _check_copy(array: DeviceArray, host: Any) -> None:
    """Refuse a copy between `array` and `host` as CuPy does."""
    if not isinstance(host, np.ndarray) or isinstance(host, DeviceArray):
        raise TypeError(f"a copy between a device array and {type(host).__name__}: only "
                        f"numpy.ndarray is a host array.")
    if host.dtype != array.dtype:
        raise TypeError(f"{host.dtype} array cannot be copied to or from {array.dtype} array")
    if host.shape != array.shape:
        raise ValueError(f"Shape mismatch: device {array.shape}, host {host.shape}")


def _issue(stream: Stream | None, kind: str, array: DeviceArray, host: np.ndarray,
           copy: Callable[[], Any]) -> None:
    """Run `copy` now (no stream: in order with the computations, run on the host) or queue it."""
    if stream is None:
        copy()
    else:
        stream.issue(kind, array, host, copy)


class PinnedMemory:
    """``cupyx.empty_pinned``'s stand-in: host buffers, remembered to tell copies from them.

    Attributes
    ----------
    buffers : list of ndarray, shape (nbytes,) uint8
        Those made, in order.
    """

    def __init__(self) -> None:
        self.buffers: list[np.ndarray] = []

    def __call__(self, nbytes: int) -> np.ndarray:
        buffer = np.empty(nbytes, np.uint8)
        self.buffers.append(buffer)
        return buffer

    def holds(self, array: np.ndarray) -> bool:
        """Whether the memory of `array` lies in one of the buffers."""
        start = array.__array_interface__["data"][0]
        return any(b.ctypes.data <= start and start + array.nbytes <= b.ctypes.data + b.nbytes
                   for b in self.buffers)


class Event:
    """A CUDA event's stand-in: the point of its stream when it was recorded."""

    def __init__(self, stream: Stream, position: int) -> None:
        self.stream, self.position = stream, position

    def synchronize(self) -> None:
        """Run the copies queued on the stream before the event."""
        self.stream.run(self.position)


class Stream:
    """A CUDA stream's stand-in, for copies between host and device (see the module docstring).

    Attributes
    ----------
    device : int
    copies : list of tuple (kind, nbytes, pinned)
        The copies queued: ``'upload'`` or ``'download'``, their bytes and whether
        their host memory came from the :class:`PinnedMemory` given.
    waited_for : list of Stream
        The streams whose events this one waited for, in order.
    """

    def __init__(self, device: int, pinned: PinnedMemory, log: list[tuple[str, Any]]) -> None:
        self.device = device
        self.copies: list[tuple[str, int, bool]] = []
        self.waited_for: list[Stream] = []
        self._pinned = pinned
        self._log = log
        self._queue: deque[Callable[[], Any]] = deque()  # not yet run
        self._queued = 0
        self._done = 0

    def issue(self, kind: str, array: DeviceArray, host: np.ndarray,
              copy: Callable[[], Any]) -> None:
        """Queue `copy`, of `kind`, between the device array `array` and `host`."""
        if array.device.id != self.device:
            raise ValueError(f"a stream of device {self.device} used for an array of device "
                             f"{array.device.id}")
        self.copies.append((kind, host.nbytes, self._pinned.holds(host)))
        self._log.append((kind, host.nbytes))
        self._queue.append(copy)
        self._queued += 1

    def record(self) -> Event:
        return Event(self, self._queued)

    def wait_event(self, event: Event) -> None:
        # Work after this point runs on the host at once: the copies before the event run now.
        self.waited_for.append(event.stream)
        event.synchronize()

    def synchronize(self) -> None:
        self.run(self._queued)

    def run(self, position: int) -> None:
        """Run the queued copies before `position` (a count of copies), in order."""
        while self._done < position:
            self._queue.popleft()()
            self._done += 1


class NewStream:
    """``cupy.cuda.Stream(non_blocking=True)``'s stand-in: a new :class:`Stream` of the
    current device, also appended to `made`."""

    def __init__(self, pinned: PinnedMemory, log: list[tuple[str, Any]]) -> None:
        self.made: list[Stream] = []
        self._pinned, self._log = pinned, log

    def __call__(self) -> Stream:
        self.made.append(Stream(current_device(), self._pinned, self._log))
        return self.made[-1]


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

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.plans_made = 0
        self._log = log

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

    def _check(self, x: Any, n: int | None, plan: _Plan | None, kind: str) -> None:
        self._log.append(("compute", kind))
        if not isinstance(x, DeviceArray) or x._device != current_device():
            raise TypeError(f"{kind} transform of an array not on the current device: "
                            f"{type(x).__name__}")
        if plan is not None:
            if (plan.value_type, plan.shape, plan.n) != (kind, x.shape, n):
                raise ValueError("The cuFFT plan and a.shape do not match: plan "
                                 f"{(plan.value_type, plan.shape, plan.n)}, array "
                                 f"{(kind, x.shape, n)}")
            plan.executions += 1


def _gemm(log: list[tuple[str, Any]], a: Any, b: Any, out: Any, beta: float) -> None:
    log.append(("compute", "gemm"))
    for name, m in (("a", a), ("b", b), ("out", out)):
        if not m.flags.c_contiguous:
            raise ValueError(f"gemm: `{name}` is not C-contiguous (cuBLAS would copy it).")
    product = np.matmul(_plain(a), _plain(b))
    target = _plain(out)
    target[...] = product if beta == 0 else product + beta * target


class _RawKernels:
    """``cupy.RawKernel``'s stand-in: the kernels of ``FIR_SOURCE``, as :class:`_FIRKernel`.

    Attributes
    ----------
    compiled : list of (str, int)
        A kernel's name and the device, for each first launch of a kernel on a
        device (where CuPy compiles it).
    """

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.compiled: list[tuple[str, int]] = []
        self._log = log

    def __call__(self, source: str, name: str) -> _FIRKernel:
        dtypes = {kernel: dtype for dtype, kernel in FIR_KERNELS.items()}
        if source != FIR_SOURCE or name not in dtypes:
            raise ValueError(f"the stand-in emulates the kernels {sorted(dtypes)} of "
                             f"fftconv.paths.fir.FIR_SOURCE only, not {name!r}.")
        return _FIRKernel(name, dtypes[name], self.compiled, self._log)


class _FIRKernel:
    """One kernel of ``FIR_SOURCE`` emulated: every thread's output at once, in NumPy.

    Thread ``n < B*G*Co*T`` computes output ``(b, g, o, t)`` (``t`` fastest)::

        y[b*ys_b + (g*Co + o)*ys_c + t*ys_t] =
            sum_{i, k} w[((g*Co + o)*Ci + i)*Kp + k] * x[b*xs_b + (g*Ci + i)*xs_c + (t + k)*xs_t]

    with the arrays read from their first element on, as the pointers the
    kernel gets; only the launch arguments say where and how much.
    """

    def __init__(self, name: str, dtype: np.dtype, compiled: list[tuple[str, int]],
                 log: list[tuple[str, Any]]) -> None:
        self.name, self.dtype, self._compiled, self._log = name, dtype, compiled, log

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        self._log.append(("compute", self.name))
        if len(args) != 15:
            raise TypeError(f"{self.name}: 15 arguments, got {len(args)}.")
        x, w, y, *numbers = args
        for what, a in (("x", x), ("w", w), ("y", y)):
            if not isinstance(a, DeviceArray) or a._device != current_device():
                raise TypeError(f"{self.name}: `{what}` is not an array of the current "
                                f"device: {type(a).__name__}.")
            if a.dtype != self.dtype:
                raise TypeError(f"{self.name}: `{what}` is {a.dtype}, the kernel takes "
                                f"{self.dtype}.")
        if any(type(v) is not np.int64 for v in numbers):
            raise TypeError(f"{self.name}: sizes and strides are long long (numpy.int64), "
                            f"got {[type(v).__name__ for v in numbers]}.")
        batch, groups, c_in, c_out, taps, outputs, *strides = (int(v) for v in numbers)
        xs_b, xs_c, xs_t, ys_b, ys_c, ys_t = strides
        threads = int(np.prod(block))
        if (min(*grid, *block) < 1 or threads > 1024
                or int(np.prod(grid)) * threads < batch * groups * c_out * outputs):
            raise ValueError(f"{self.name}: grid {grid} of blocks {block} does not cover the "
                             f"{batch * groups * c_out * outputs} outputs.")
        length = outputs + taps - 1
        _check_reach(x, (batch, groups * c_in, length), (xs_b, xs_c, xs_t), "x")
        _check_reach(w, (groups, c_out, c_in, taps), (c_out * c_in * taps, c_in * taps, taps, 1),
                     "w")
        _check_reach(y, (batch, groups * c_out, outputs), (ys_b, ys_c, ys_t), "y")
        if (self.name, current_device()) not in self._compiled:
            self._compiled.append((self.name, current_device()))
        xv = _at(x, (batch, groups, c_in, length), (xs_b, c_in * xs_c, xs_c, xs_t))
        wv = _at(w, (groups, c_out, c_in, taps), (c_out * c_in * taps, c_in * taps, taps, 1))
        acc = np.zeros((batch, groups, c_out, outputs), self.dtype)
        for k in range(taps):  # the threads' tap loop, all channels of each tap at once
            acc += wv[..., k] @ xv[..., k:k + outputs]
        _at(y, acc.shape, (ys_b, c_out * ys_c, ys_c, ys_t))[...] = acc


def _check_reach(a: DeviceArray, shape: tuple[int, ...], strides: tuple[int, ...],
                 what: str) -> None:
    """Raise unless the elements at `strides` over `shape` are exactly those of `a`."""
    own = tuple(s // a.itemsize for s in a.strides)
    if a.shape != shape or any(n > 1 and s != t
                               for n, s, t in zip(shape, strides, own, strict=True)):
        raise ValueError(f"launch reaches `{what}` as shape {shape}, element strides "
                         f"{strides}; the array is {a.shape}, {own}.")


def _at(a: DeviceArray, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """What a kernel sees from the pointer to `a`'s first element: `shape` at element `strides`."""
    return np.lib.stride_tricks.as_strided(_plain(a), shape, tuple(s * a.itemsize for s in strides))


@dataclass(frozen=True)
class StandinModules(DeviceModules):
    """:class:`DeviceModules` of the stand-in, with its log.

    Attributes
    ----------
    log : list of tuple
        ``('upload', nbytes)`` or ``('download', nbytes)`` for each copy queued
        on a stream, ``('compute', what)`` for each transform (``'R2C'``,
        ``'C2R'``), GEMM (``'gemm'``) or kernel launch (its name) run, in order.
    """

    log: list[tuple[str, Any]] = field(default_factory=list, compare=False)


def standin_modules(total_memory: int = 1 << 36) -> StandinModules:
    """The modules of NumPy standing in for CuPy (see the module docstring)."""
    pinned = PinnedMemory()
    current: dict[int, Stream] = {}
    log: list[tuple[str, Any]] = []

    def current_stream() -> Stream:
        device = current_device()
        if device not in current:
            current[device] = Stream(device, pinned, log)
        return current[device]

    return StandinModules(
        xp=_ArrayModule(), fft=_FFT(log), special=scipy.special, array_type=DeviceArray,
        as_strided=lambda x, shape, strides: _wrap(np.lib.stride_tricks.as_strided(
            _plain(x), shape, strides), x._device),
        gemm=functools.partial(_gemm, log),
        to_host=lambda x: np.array(_plain(x)), device_of=lambda x: x._device,
        current_device=current_device, use_device=use_device, synchronize=lambda: None,
        plan_nbytes=lambda plan: plan.nbytes, total_memory=lambda device: total_memory,
        raw_kernel=_RawKernels(log), device_name=lambda device: f"Stand-in GPU {device}",
        pinned_empty=pinned, new_stream=NewStream(pinned, log), current_stream=current_stream,
        log=log)
