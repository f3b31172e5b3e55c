"""GPU backend on CuPy: arrays in device memory, cuFFT transforms, cuBLAS GEMMs.

CuPy is imported only when this backend is asked for (``backend='cupy'``, or an
input that is a CuPy array with ``backend='auto'``): ``import fftconv`` never
needs it, and a CuPy array is recognised by its type's module name without
importing anything.

Everything the backend takes from CuPy comes through one :class:`DeviceModules`
namespace (the array module, cuFFT through ``cupyx.scipy.fft``, cuBLAS's
``gemm``, the device of an array, ...).  :func:`load_cupy` builds it from CuPy;
tests build one from NumPy and SciPy (an ndarray subclass playing the device
array) and :func:`install` it, so that this module's logic - backend selection,
plans and spectra cached per device, chunked transforms, where results go, the
error messages - runs in CI on machines without a GPU.

Plans
-----
The overlap-save path's block transforms run over at most
:data:`~fftconv.backends.blocks.MAX_PIECES` pieces of power-of-two row counts
(:func:`~fftconv.backends.blocks.pieces`), so a few cuFFT plans serve inputs of
every width.  The backend holds them in a :class:`PlanCache` bounded by count and
by bytes of cuFFT work area (``[cupy] max_plans`` and ``max_plan_bytes`` in the
configuration); CuPy's own plan cache (16 plans, keyed by the batch too) only
sees the one-off transforms of kernel spectra.

Transfers
---------
Numpy data goes to the device, and results come back, through page-locked
(pinned) host buffers on a stream of the backend's own, so that the copies run
at the bus's rate without blocking the host.  :meth:`CupyBackend.to_device_async`
copies a numpy array piece by piece into pinned buffers and queues each piece's
upload on the transfer stream (the host copy of a piece overlaps the upload of
the one before), and returns an event after the last; :meth:`CupyBackend.wait_event`
makes the current stream, where computations are queued, wait for it, so the
work queued after reads the data (:meth:`CupyBackend.to_device` does both).
:meth:`CupyBackend.to_host_async` queues the downloads of a device array's
pieces into pinned buffers; each piece is copied into the caller's numpy array
once its download completed, when the pool hands its buffer out again or when
the returned event is synchronized (:meth:`CupyBackend.to_host` waits for it).
Both first make the transfer stream wait for the current one: the array read
was made there, and a new device array may reuse memory that earlier work
still reads.  The buffers, :data:`PINNED_BUFFER_BYTES` each, come from the
backend's :class:`PinnedPool` of at most :data:`PINNED_POOL_BYTES`; a buffer
is written again only once the copy that last used it completed (and, for a
download, its piece was copied out).  Arrays under :data:`PINNED_MIN_BYTES`
take the plain path (``cupy.asarray``, ``cupy.asnumpy``).  A backend queues
its staged transfers one at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from fftconv.backends.base import _COMPLEX_TO_REAL, _REAL_TO_COMPLEX, Backend, DeviceTraits
from fftconv.backends.blocks import BlockFFT, pieces

#: On a GPU every kernel launch costs some microseconds, so the broadcast form of
#: the per-bin product (one launch per input channel) is kept for the fewest pairs
#: only; the shifted GEMMs (one cuBLAS call per tap and block of rows) need
#: channels enough to fill the device, as on the CPU (fewer run the FIR kernel,
#: whatever the layout).
CUDA_TRAITS = DeviceTraits(kind="cuda", matmul_min_pairs=4, shifted_min_channels=16,
                           shifted_min_in_channels_time_major=16, compiles_at_first_use=True)

#: How to get CuPy, for error messages.
INSTALL_HINT = ("install CuPy for your CUDA version with fftconv's extra, "
                "`pip install 'fftconv[cuda12]'` or `pip install 'fftconv[cuda13]'`")

#: Host arrays (and results) smaller than this many bytes are copied directly:
#: staging them through page-locked memory costs more than it saves.
PINNED_MIN_BYTES = 1 << 20
#: Bytes of each page-locked staging buffer (a transfer's pieces).
PINNED_BUFFER_BYTES = 8 << 20
#: Bytes of page-locked staging buffers a backend keeps at most.
PINNED_POOL_BYTES = 64 << 20


def _unknown_model(device: int) -> str:
    return "unknown GPU"


@dataclass(frozen=True)
class DeviceModules:
    """What the backend uses of CuPy (or of a stand-in for it).

    Attributes
    ----------
    xp : module
        The array module (``cupy``).
    fft : module
        ``rfft`` and ``irfft(x, n, axis, norm, overwrite_x, plan=)`` and
        ``get_fft_plan(a, shape, axes, value_type)`` (``cupyx.scipy.fft``).
    special : module
        Element-wise special functions, ``erf``, ``expit`` (``cupyx.scipy.special``).
    array_type : type
        The device array type (``cupy.ndarray``).
    as_strided : callable ``(x, shape, strides) -> view``
    gemm : callable ``(a, b, out, beta) -> None``
        ``out[...] = a @ b + beta * out`` in place, C-contiguous operands.
    to_host : callable ``(x) -> numpy.ndarray``
    device_of : callable ``(x) -> int``
        The id of the device holding array `x`.
    current_device : callable ``() -> int``
    use_device : callable ``(id) -> context manager``
    synchronize : callable ``() -> None``
        Wait for the current device's work.
    plan_nbytes : callable ``(plan) -> int``
        Bytes of device memory a transform plan holds (its work area).
    total_memory : callable ``(id) -> int``
        Bytes of memory of a device.
    raw_kernel : callable ``(source, name) -> kernel`` or None
        The CUDA C kernel `name` of `source` (``cupy.RawKernel``), compiled on
        each device at its first launch ``kernel(grid, block, args)``; None: no
        kernels of fftconv's own (:meth:`CupyBackend.launch` refuses).
    device_name : callable ``(id) -> str``
        The model of a device, e.g. ``'NVIDIA H200'``: measured plans are kept
        per model (:attr:`CupyBackend.device_model`).  Default: ``'unknown GPU'``.
    pinned_empty : callable ``(nbytes) -> numpy.ndarray`` or None
        A new buffer of page-locked host memory, shape (nbytes,) uint8
        (``cupyx.empty_pinned``); None: transfers take the plain path.
    new_stream : callable ``() -> stream`` or None
        A new non-blocking stream of the current device (needed with
        `pinned_empty`).  As CuPy's: a stream has ``record() -> event``,
        ``wait_event(event)`` and ``synchronize()``, an event ``synchronize()``,
        a device array ``set(host, stream=)`` and ``get(stream=, out=, blocking=)``.
    current_stream : callable ``() -> stream`` or None
        The current device's current stream, where computations are queued
        (needed with `pinned_empty`).
    """

    xp: Any
    fft: Any
    special: Any
    array_type: type
    as_strided: Callable[[Any, tuple[int, ...], tuple[int, ...]], Any]
    gemm: Callable[[Any, Any, Any, float], None]
    to_host: Callable[[Any], np.ndarray]
    device_of: Callable[[Any], int]
    current_device: Callable[[], int]
    use_device: Callable[[int], AbstractContextManager]
    synchronize: Callable[[], None]
    plan_nbytes: Callable[[Any], int]
    total_memory: Callable[[int], int]
    raw_kernel: Callable[[str, str], Any] | None = None
    device_name: Callable[[int], str] = _unknown_model
    pinned_empty: Callable[[int], np.ndarray] | None = None
    new_stream: Callable[[], Any] | None = None
    current_stream: Callable[[], Any] | None = None


_lock = threading.Lock()
_cupy: DeviceModules | None = None
_installed: DeviceModules | None = None


def load_cupy() -> DeviceModules:
    """CuPy's modules, imported once; the device count is checked.

    Raises
    ------
    ImportError
        If CuPy (or ``cupyx``) cannot be imported; the message says how to install it.
    RuntimeError
        If CuPy finds no CUDA device (or no usable driver).
    """
    global _cupy
    with _lock:
        if _cupy is None:
            _cupy = _cupy_modules()
        return _cupy


def _cupy_modules() -> DeviceModules:
    try:
        import cupy
        import cupy.cublas
        import cupyx.scipy.fft
        import cupyx.scipy.special
    except ImportError as err:
        raise ImportError(f"backend 'cupy' needs CuPy, which could not be imported ({err}); "
                          f"{INSTALL_HINT}, or use backend='auto' or 'numpy'.") from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        reason = "no device"
    except cupy.cuda.runtime.CUDARuntimeError as err:
        count, reason = 0, str(err)
    if count == 0:
        raise RuntimeError(f"backend 'cupy' needs a CUDA GPU, and CuPy {cupy.__version__} "
                           f"finds none ({reason}); use backend='auto' or 'numpy' here.")

    def gemm(a: Any, b: Any, out: Any, beta: float) -> None:
        cupy.cublas.gemm("N", "N", a, b, out=out, beta=beta)

    def plan_nbytes(plan: Any) -> int:
        area = getattr(plan, "work_area", None)
        return int(area.mem.size) if area is not None else 0

    def synchronize() -> None:
        cupy.cuda.get_current_stream().synchronize()

    def device_name(device: int) -> str:
        name = cupy.cuda.runtime.getDeviceProperties(device)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    return DeviceModules(
        xp=cupy, fft=cupyx.scipy.fft, special=cupyx.scipy.special, array_type=cupy.ndarray,
        as_strided=cupy.lib.stride_tricks.as_strided, gemm=gemm,
        to_host=cupy.asnumpy, device_of=lambda x: x.device.id,
        current_device=lambda: cupy.cuda.Device().id, use_device=cupy.cuda.Device,
        synchronize=synchronize, plan_nbytes=plan_nbytes,
        total_memory=lambda device: cupy.cuda.Device(device).mem_info[1],
        raw_kernel=cupy.RawKernel, device_name=device_name,
        pinned_empty=lambda nbytes: cupyx.empty_pinned((nbytes,), np.uint8),
        new_stream=lambda: cupy.cuda.Stream(non_blocking=True),
        current_stream=cupy.cuda.get_current_stream)


def install(modules: DeviceModules | None) -> None:
    """Use `modules` in place of CuPy from now on (None: CuPy again).

    For tests: a stand-in built on NumPy runs this backend's logic on the CPU.
    """
    global _installed
    with _lock:
        _installed = modules


def device_modules() -> DeviceModules:
    """The installed stand-in, else CuPy's modules (see :func:`load_cupy`)."""
    return _installed or load_cupy()


def modules_of(x: Any) -> DeviceModules | None:
    """The device modules whose array `x` is, or None for host data.

    A CuPy array is recognised by its type's module name, so nothing is
    imported for host data.
    """
    installed = _installed
    if installed is not None and isinstance(x, installed.array_type):
        return installed
    if type(x).__module__.split(".")[0] in ("cupy", "cupyx"):
        return load_cupy()
    return None


class PlanCache:
    """Transform plans by key, the least recently used dropped beyond a count or a size.

    Parameters
    ----------
    max_plans : int
        Plans kept, ``>= 1``.
    max_bytes : int
        Bytes of the plans' work areas kept; the plan just made is always kept.
    nbytes : callable ``(plan) -> int``

    Attributes
    ----------
    made : int
        Plans made so far (a cache hit makes none).
    """

    def __init__(self, max_plans: int, max_bytes: int, nbytes: Callable[[Any], int]) -> None:
        self.max_plans = max_plans
        self.max_bytes = max_bytes
        self._nbytes = nbytes
        self._plans: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0

    def __len__(self) -> int:
        return len(self._plans)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached plans."""
        with self._lock:
            return sum(size for _, size in self._plans.values())

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The plan for `key`, made by `make` if missing."""
        with self._lock:
            found = self._plans.pop(key, None)
            if found is None:
                plan = make()
                found = (plan, self._nbytes(plan))
                self.made += 1
            self._plans[key] = found  # most recently used last
            total = sum(size for _, size in self._plans.values())
            while len(self._plans) > 1 and (len(self._plans) > self.max_plans
                                            or total > self.max_bytes):
                _, (_, size) = self._plans.popitem(last=False)
                total -= size
            return found[0]


class PinnedPool:
    """Page-locked host buffers of one size, within a bound of bytes.

    A buffer handed back with the event of its last copy is written again only
    once that event completed.  Not thread-safe: the backend's transfer lock
    guards it.

    Parameters
    ----------
    allocate : callable ``(nbytes) -> ndarray, shape (nbytes,) uint8``
        New page-locked host memory.
    buffer_bytes : int
    max_bytes : int
        Bytes of buffers made at most (one buffer at least).

    Attributes
    ----------
    buffer_bytes, max_buffers : int
    allocated : int
        Buffers made so far, at most `max_buffers`.
    """

    def __init__(self, allocate: Callable[[int], np.ndarray], buffer_bytes: int,
                 max_bytes: int) -> None:
        self.buffer_bytes = buffer_bytes
        self.max_buffers = max(1, max_bytes // buffer_bytes)
        self.allocated = 0
        self._allocate = allocate
        self._free: list[np.ndarray] = []
        self._busy: deque[tuple[np.ndarray, Any]] = deque()  # with their events, oldest first

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers made."""
        return self.allocated * self.buffer_bytes

    def take(self) -> np.ndarray | None:
        """A buffer to write, shape (buffer_bytes,) uint8; None if the caller holds them all.

        A free buffer, else a new one within the bound, else the one whose copy
        was queued first, once that copy completed.
        """
        if self._free:
            return self._free.pop()
        if self.allocated < self.max_buffers:
            self.allocated += 1
            return self._allocate(self.buffer_bytes)
        if self._busy:
            buffer, event = self._busy.popleft()
            event.synchronize()
            return buffer
        return None

    def give(self, buffer: np.ndarray, event: Any = None) -> None:
        """Hand `buffer` back: free, or in use by a copy until ``event.synchronize()`` returns."""
        if event is None:
            self._free.append(buffer)
        else:
            self._busy.append((buffer, event))


class CupyBackend(Backend):
    """Arrays, transforms and GEMMs on one CUDA device.

    Thread safety: the plan and kernel caches have locks; the block transforms are used under
    their :meth:`BlockFFT.use` lock, as on the CPU; staged transfers take turns.

    Parameters
    ----------
    modules : DeviceModules
        CuPy's (:func:`load_cupy`) or a stand-in's.
    device_id : int
        The device whose memory the arrays live in.
    max_plans, max_plan_bytes : int
        Bounds of the block transforms' plan cache (:class:`PlanCache`).

    Attributes
    ----------
    plans : PlanCache
    pinned : PinnedPool or None
        The staging buffers of transfers (module docstring); None if the
        modules have no page-locked memory.
    pinned_min_bytes : int
        Arrays of fewer bytes are not staged (:data:`PINNED_MIN_BYTES`).
    """

    name = "cupy"
    traits = CUDA_TRAITS

    def __init__(self, modules: DeviceModules, device_id: int, max_plans: int,
                 max_plan_bytes: int) -> None:
        super().__init__(threads=1)
        self.modules = modules
        self.xp = modules.xp
        self.device_id = device_id
        self.device = f"cuda:{device_id}"
        self.plans = PlanCache(max_plans, max_plan_bytes, modules.plan_nbytes)
        self._kernels: dict[tuple[str, str], Any] = {}
        self._kernels_lock = threading.Lock()
        self.pinned = (None if modules.pinned_empty is None else
                       PinnedPool(modules.pinned_empty, PINNED_BUFFER_BYTES, PINNED_POOL_BYTES))
        self.pinned_min_bytes = PINNED_MIN_BYTES
        self._stream: Any = None  # the transfer stream, made on the first staged transfer
        self._transfer_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"CupyBackend(device={self.device!r}, max_plans={self.plans.max_plans}, "
                f"max_plan_bytes={self.plans.max_bytes})")

    # -- arrays on the device ------------------------------------------------

    def _as_strided(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        return self.modules.as_strided(x, shape, strides)

    def reshape_view(self, a: Any, shape: tuple[int, ...]) -> Any:
        out = a.reshape(shape)
        # A copy lives elsewhere: its first element's address differs.
        if out.size and out.data.ptr != a.data.ptr:
            raise ValueError(f"reshape_view: shape {a.shape} with strides {a.strides} "
                             f"cannot be viewed as {shape} without a copy.")
        return out

    def gemm_accumulate(self, a: Any, b: Any, out: Any, beta: float) -> None:
        if out.size:
            self.modules.gemm(a, b, out, beta)

    def scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        # CuPy's memory pool already hands a freed block to the next request.
        return self.xp.empty(shape, dtype)

    def owns(self, x: Any) -> bool:
        return (isinstance(x, self.modules.array_type)
                and self.modules.device_of(x) == self.device_id)

    def to_device(self, x: Any) -> Any:
        array, event = self.to_device_async(x)
        self.wait_event(event)
        return array

    def to_device_async(self, x: Any) -> tuple[Any, Any]:
        staged = (isinstance(x, np.ndarray) and not isinstance(x, self.modules.array_type)
                  and self._staged(x))
        with self.activate():
            return self._upload(x) if staged else (self.xp.asarray(x), None)

    def wait_event(self, event: Any) -> None:
        if event is not None:
            with self.activate():
                self.modules.current_stream().wait_event(event)

    def to_host(self, x: Any) -> np.ndarray:
        if not (self.owns(x) and self._staged(x)):
            return self.modules.to_host(x)
        out = np.empty(x.shape, x.dtype)
        self.to_host_async(x, out).synchronize()
        return out

    def to_host_async(self, y: Any, out: np.ndarray) -> Any:
        if not (self.owns(y) and self._staged(y)):
            out[...] = self.modules.to_host(y)
            return None
        with self.activate():
            return self._download(y, out)

    @cached_property
    def device_model(self) -> str:
        """The GPU's model, e.g. ``'NVIDIA H200'``."""
        return self.modules.device_name(self.device_id)

    def _staged(self, x: Any) -> bool:
        """Whether a transfer of the array `x` goes through the pinned pool."""
        return self.pinned is not None and x.nbytes >= self.pinned_min_bytes

    @contextmanager
    def _transfer(self) -> Iterator[Any]:
        """The transfer stream, after the work queued so far on the current one.

        One transfer at a time; the device must be the current one.
        """
        with self._transfer_lock:
            if self._stream is None:
                self._stream = self.modules.new_stream()
            self._stream.wait_event(self.modules.current_stream().record())
            yield self._stream

    def _upload(self, x: np.ndarray) -> tuple[Any, Any]:
        """`x` in a new device array, staged through the pinned pool, and the upload's event.

        The device array has the memory order of `x` (as ``cupy.asarray`` gives);
        a host copy in that order comes first if `x` has gaps.
        """
        order = _memory_order(x)
        host = x.transpose(order)
        out = self.xp.empty(host.shape, x.dtype.newbyteorder("="))
        source, target = host.reshape(-1), out.reshape(-1)
        step = self.pinned.buffer_bytes // out.itemsize
        with self._transfer() as stream:
            for start in range(0, source.size, step):
                piece = source[start:start + step]
                buffer = self.pinned.take()  # never None: transfers hold no buffer back
                staged = buffer[:piece.size * out.itemsize].view(out.dtype)
                try:
                    staged[...] = piece
                    target[start:start + step].set(staged, stream=stream)
                finally:
                    self.pinned.give(buffer, stream.record())
            event = stream.record()
        return out.transpose(tuple(order.index(axis) for axis in range(x.ndim))), event

    def _download(self, y: Any, out: np.ndarray) -> _Download:
        """Queue the copy of the device array `y` into `out` through the pinned pool.

        `y` is read in the memory order of `out` (a device copy first if its own
        differs).  Returns the event of :meth:`to_host_async`.
        """
        order = _memory_order(out)
        target = out.transpose(order)
        assert target.flags.c_contiguous and out.dtype == y.dtype, (out.strides, out.dtype)
        source = self.xp.ascontiguousarray(y.transpose(order)).reshape(-1)
        target = target.reshape(-1)
        step = self.pinned.buffer_bytes // y.itemsize
        copies = []
        with self._transfer() as stream:
            for start in range(0, source.size, step):
                buffer = self.pinned.take()
                piece = source[start:start + step]
                staged, copy = buffer[:piece.nbytes].view(y.dtype), None
                try:
                    piece.get(stream=stream, out=staged, blocking=False)
                    copy = _CopyOut(stream.record(), piece, staged, target[start:start + step])
                    copies.append(copy)
                finally:
                    self.pinned.give(buffer, copy)
        return _Download(copies, self._transfer_lock)

    def synchronize(self) -> None:
        with self.activate():
            self.modules.synchronize()

    @contextmanager
    def activate(self) -> Iterator[None]:
        with self.modules.use_device(self.device_id):
            yield

    def total_memory(self) -> int:
        """Bytes of memory of this backend's device."""
        return self.modules.total_memory(self.device_id)

    def launch(self, source: str, name: str, grid: tuple[int, ...], block: tuple[int, ...],
               args: tuple) -> None:
        """Launch the CUDA kernel `name` of `source` on this device, compiled at its first launch.

        The kernel is kept per backend, that is per device, so each kernel is
        compiled once per device whatever its arguments.

        Parameters
        ----------
        source : str
            CUDA C; `name` an ``extern "C" __global__`` function of it.
        name : str
        grid, block : tuple of int
            Blocks of the launch and threads per block.
        args : tuple
            Device arrays (passed as pointers to their first element) and numpy
            scalars, as the kernel declares them.

        Raises
        ------
        RuntimeError
            If the device modules compile no kernels (``raw_kernel`` None).
        """
        make = self.modules.raw_kernel
        if make is None:
            raise RuntimeError(f"launch: the device modules compile no CUDA kernels, "
                               f"so {name!r} cannot run on {self.device}.")
        with self._kernels_lock:
            kernel = self._kernels.get((source, name))
            if kernel is None:
                kernel = self._kernels[source, name] = make(source, name)
        kernel(grid, block, args)

    # -- transforms ------------------------------------------------------------

    def _rfft(self, a: Any, n: int, axis: int) -> Any:
        return self.modules.fft.rfft(a, n=n, axis=axis)

    def _irfft(self, a: Any, n: int, axis: int) -> Any:
        return self.modules.fft.irfft(a, n=n, axis=axis)

    def _make_block_fft(self, kind: str, rows_in: int, rows_out: int, n: int,
                        dtype: np.dtype) -> BlockFFT:
        return _CupyBlockFFT(self, rows_in, rows_out, n, dtype)

    def transform(self, kind: str, source: Any, rows: int, n: int) -> Any:
        """The first `rows` rows of `source` transformed, by pieces through cached plans.

        Parameters
        ----------
        kind : {'R2C', 'C2R'}
            Forward (unnormalised) or inverse (unnormalised, ``n`` times numpy's).
        source : array, shape (capacity, n) real or (capacity, n // 2 + 1) complex
            C-contiguous.  Rows past `rows` up to the end of the last piece are
            zeroed; a 'C2R' source is destroyed.
        rows : int
        n : int

        Returns
        -------
        array, shape (rows, n // 2 + 1) complex or (rows, n) real
            A new array.
        """
        sizes = pieces(rows, source.shape[0]) if rows else []
        stop = sum(sizes)
        if stop > rows:
            source[rows:stop] = 0  # no garbage (NaN) through the padding rows
        fft, outputs, start = self.modules.fft, [], 0
        for size in sizes:
            part = source[start:start + size]
            plan = self.plans.get((kind, n, size, part.dtype.str), lambda part=part: (
                fft.get_fft_plan(part, shape=(n,), axes=(-1,), value_type=kind)))
            if kind == "R2C":
                outputs.append(fft.rfft(part, n=n, axis=-1, plan=plan))
            else:
                outputs.append(fft.irfft(part, n=n, axis=-1, norm="forward", overwrite_x=True,
                                         plan=plan))
            start += size
        if not outputs:
            width, dtype = ((n // 2 + 1, _REAL_TO_COMPLEX[source.dtype]) if kind == "R2C"
                            else (n, _COMPLEX_TO_REAL[source.dtype]))
            return self.xp.empty((0, width), dtype)
        whole = outputs[0] if len(outputs) == 1 else self.xp.concatenate(outputs)
        return whole[:rows]


def _memory_order(a: Any) -> list[int]:
    """The axes of `a`, the one of the largest stride (in memory, the slowest) first."""
    return sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis]))


class _CopyOut:
    """A downloaded piece: from its pinned buffer to the host array, once its copy completed.

    The pool holds it as its buffer's event: the buffer is written again only
    after :meth:`synchronize`.  The device piece is held until then, so that
    its memory is not reused while the download reads it.
    """

    def __init__(self, event: Any, piece: Any, staged: np.ndarray, target: np.ndarray) -> None:
        self._pending: tuple | None = (event, piece, staged, target)

    def synchronize(self) -> None:
        """Wait for the download, copy the piece out (once); the transfer lock must be held."""
        if self._pending is not None:
            event, _, staged, target = self._pending
            event.synchronize()
            target[...] = staged
            self._pending = None


class _Download:
    """The event of :meth:`CupyBackend.to_host_async`: its pieces, copied out when synchronized."""

    def __init__(self, copies: list[_CopyOut], lock: threading.Lock) -> None:
        self._copies, self._lock = copies, lock

    def synchronize(self) -> None:
        """Wait until the host array holds the whole download."""
        with self._lock:  # the pool hands buffers out, copying their pieces out, under it
            for copy in self._copies:
                copy.synchronize()


class _CupyBlockFFT(BlockFFT):
    """:class:`BlockFFT` with device buffers, transformed by :meth:`CupyBackend.transform`."""

    def __init__(self, backend: CupyBackend, rows_in: int, rows_out: int, n: int,
                 dtype: np.dtype) -> None:
        self._backend = backend
        super().__init__(rows_in, rows_out, n, dtype, threads=1)

    def _empty(self, shape: tuple[int, int], dtype: np.dtype) -> Any:
        return self._backend.xp.empty(shape, dtype)

    def forward(self, rows: int | None = None) -> Any:
        rows = self.real_in.shape[0] if rows is None else rows
        return self._backend.transform("R2C", self.real_in, rows, self.n)

    def inverse(self, rows: int | None = None) -> Any:
        rows = self.spectrum_in.shape[0] if rows is None else rows
        return self._backend.transform("C2R", self.spectrum_in, rows, self.n)
