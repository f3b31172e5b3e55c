"""Backends: where arrays live, and the real FFTs and array primitives there.

The engine, the paths and the reduction use only the :class:`Backend` interface
(:mod:`fftconv.backends.base`) and obtain instances from :func:`get_backend`,
or from :func:`backend_for` for a given input.  ``numpy`` and ``pyfftw`` run on
the CPU; ``cupy`` on a CUDA GPU (:mod:`fftconv.backends.cupy_backend`).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from fftconv._files import warn_once
from fftconv._machine import usable_cores
from fftconv.backends.base import (
    _COMPLEX_TO_REAL,
    _REAL_TO_COMPLEX,
    MAX_BLOCK_SHAPES,
    Backend,
    DeviceTraits,
    _check_int,
)
from fftconv.backends.cpu import CPU_TRAITS
from fftconv.backends.cupy_backend import (
    CUDA_TRAITS,
    CupyBackend,
    DeviceModules,
    device_modules,
    modules_of,
)

__all__ = ["BACKENDS", "Backend", "DeviceTraits", "backend_for", "check_backend",
           "device_kind", "device_traits", "get_backend", "MAX_BLOCK_SHAPES",
           "_COMPLEX_TO_REAL", "_REAL_TO_COMPLEX"]

BACKENDS = ("auto", "numpy", "pyfftw", "cupy")
PLANNER_EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")
DEFAULT_PLANNER_EFFORT = "FFTW_ESTIMATE"
#: Seconds FFTW may spend planning one block transform when not given (0: no limit).
DEFAULT_PLANNING_TIMELIMIT = 0.0
#: Bounds of a GPU backend's plan cache when not given (the configuration's
#: ``[cupy] max_plans`` and ``max_plan_bytes`` are passed by the engine).
DEFAULT_MAX_PLANS = 32
DEFAULT_MAX_PLAN_BYTES = 1 << 30


def check_backend(backend: object) -> str:
    """Validate a `backend` name."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    return str(backend)


def device_kind(backend: str) -> str:
    """The kind of device a backend name runs on: ``'cuda'`` for ``'cupy'``, else ``'cpu'``."""
    return "cuda" if backend == "cupy" else "cpu"


def device_traits(kind: str) -> DeviceTraits:
    """The path thresholds of a kind of device (``'cpu'`` or ``'cuda'``)."""
    return CUDA_TRAITS if kind == "cuda" else CPU_TRAITS


def _pyfftw_importable() -> bool:
    """Whether the pyFFTW backend can be used (``pyfftw`` is importable); warns once if not."""
    try:
        import pyfftw  # noqa: F401
    except ImportError:
        warn_once("pyfftw-missing", "pyFFTW is not installed: backend 'auto' runs the FFTs "
                  "with scipy.fft (`pip install pyfftw` for FFTW's faster planned transforms).",
                  stacklevel=4)
        return False
    return True


_instances: dict[tuple, Backend] = {}
_instances_lock = threading.Lock()


def get_backend(name: str = "auto", *, threads: int | None = None,
                planner_effort: str | None = None,
                planning_timelimit: float | None = None,
                save_wisdom: bool | None = None,
                measure_after_seconds: float | None = None, device: int | None = None,
                max_plans: int | None = None, max_plan_bytes: int | None = None) -> Backend:
    """The shared backend instance for these settings.

    Instances are cached per ``(name, threads, planner_effort, planning_timelimit,
    save_wisdom, measure_after_seconds)`` (per ``(device, max_plans, max_plan_bytes)``
    for ``'cupy'``), so every caller with the same settings shares one plan cache.

    Parameters
    ----------
    name : {'auto', 'numpy', 'pyfftw', 'cupy'}
        ``'auto'`` is ``'pyfftw'`` when pyFFTW is importable, else ``'numpy'`` (with
        one warning per process): the CPU.  ``'cupy'`` is a CUDA GPU
        (:mod:`fftconv.backends.cupy_backend`); see :func:`backend_for` for the
        backend that follows an input.
    threads : int or None
        Threads per transform, ``>= 1``; None uses every usable core.
    planner_effort : {'FFTW_ESTIMATE', 'FFTW_MEASURE', 'FFTW_PATIENT', \
'FFTW_EXHAUSTIVE'} or None
        FFTW planning effort (pyFFTW only; ignored by the numpy backend).  None means
        ``'FFTW_ESTIMATE'`` (pyFFTW's own default: plans in milliseconds).  It applies
        to the block transforms, which run many times per call; one-off transforms
        (kernel spectra) are always planned with ``'FFTW_ESTIMATE'``.
    planning_timelimit : float or None
        Seconds FFTW may spend planning one block transform, ``>= 0``; 0 or None
        means no limit (pyFFTW only).
    save_wisdom : bool or None
        False turns off the save of FFTW's wisdom at interpreter exit, for the whole
        process; None means True.  The ``FFTCONV_SAVE_WISDOM`` environment variable
        overrides it (pyFFTW only; see :mod:`fftconv.backends.pyfftw_backend`).
    measure_after_seconds : float or None
        Seconds an estimated plan of the overlap-save path's block transforms runs in
        the process before it is planned with `planner_effort`, ``>= 0`` (it is also
        not measured before the transforms' third use); None means 2.0 (pyFFTW only;
        see :data:`fftconv.backends.pyfftw_backend.MEASURE_AFTER_SECONDS`).
    device : int or None
        The GPU (``'cupy'`` only); None: CuPy's current device.
    max_plans, max_plan_bytes : int or None
        Bounds of the GPU's cache of transform plans, ``>= 1`` (``'cupy'`` only);
        None: :data:`DEFAULT_MAX_PLANS`, :data:`DEFAULT_MAX_PLAN_BYTES`.

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        If `name` (the backend), `threads`, `planner_effort`, `planning_timelimit` or
        `measure_after_seconds` has a value not allowed.
    TypeError
        If `threads` is not an integer, `planning_timelimit` or
        `measure_after_seconds` not a real number or `save_wisdom` not a bool or None.
    ImportError
        If ``name='pyfftw'`` and pyFFTW cannot be imported, or ``name='cupy'`` and
        CuPy cannot be (the message names the extra to install).
    RuntimeError
        If ``name='cupy'`` and CuPy finds no CUDA device.
    """
    if name not in BACKENDS:
        raise ValueError(f"get_backend: backend `name` must be one of {BACKENDS}, got {name!r}.")
    if name == "cupy":
        return _device_backend(device_modules(), device, max_plans, max_plan_bytes)
    if threads is None:
        threads = usable_cores()
    threads = _check_int(threads, "threads", "get_backend")
    if threads < 1:
        raise ValueError(f"get_backend: `threads` must be >= 1 or None, got {threads}.")
    if planner_effort is None:
        planner_effort = DEFAULT_PLANNER_EFFORT
    if planner_effort not in PLANNER_EFFORTS:
        raise ValueError(f"get_backend: `planner_effort` must be one of {PLANNER_EFFORTS} "
                         f"or None, got {planner_effort!r}.")
    timelimit = _check_seconds(planning_timelimit, "planning_timelimit", " (0: no limit)",
                               DEFAULT_PLANNING_TIMELIMIT)
    measure_after = _check_seconds(measure_after_seconds, "measure_after_seconds", "", None)
    if save_wisdom is None:
        save_wisdom = True
    if not isinstance(save_wisdom, (bool, np.bool_)):
        raise TypeError(f"get_backend: `save_wisdom` must be a bool or None, got {save_wisdom!r}.")
    save_wisdom = bool(save_wisdom)
    if name == "auto":
        name = "pyfftw" if _pyfftw_importable() else "numpy"
    options = ((planner_effort, timelimit, save_wisdom, measure_after) if name == "pyfftw"
               else (None,) * 4)
    key = (name, threads, *options)
    with _instances_lock:
        backend = _instances.get(key)
        if backend is None:
            backend = _instances[key] = _create(name, threads, planner_effort, timelimit,
                                                save_wisdom, measure_after)
    return backend


def backend_for(x: Any, name: str = "auto", *, argument: str = "x", **options: Any) -> Backend:
    """The backend that runs a call on the input `x`.

    A GPU array runs on its own device (``'auto'`` or ``'cupy'``); host data runs
    on the CPU with ``'auto'`` and on the current GPU with ``'cupy'``.

    Parameters
    ----------
    x : array_like
    name : {'auto', 'numpy', 'pyfftw', 'cupy'}
    argument : str
        The name of `x` in the caller's signature, for the error message.
    **options
        As for :func:`get_backend`.

    Raises
    ------
    TypeError
        If `x` is a GPU array and `name` a CPU backend.
    """
    modules = modules_of(x)
    if modules is None:
        return get_backend(name, **options)
    if name in ("numpy", "pyfftw"):
        raise TypeError(f"`{argument}` is an array on a GPU ({type(x).__name__}) and "
                        f"backend={name!r} runs on the CPU: use backend='auto' or 'cupy', "
                        f"or move `{argument}` to the host first ({argument}.get()).")
    return _device_backend(modules, modules.device_of(x), options.get("max_plans"),
                           options.get("max_plan_bytes"))


def _device_backend(modules: DeviceModules, device: int | None, max_plans: int | None,
                    max_plan_bytes: int | None) -> Backend:
    """The shared GPU backend of `device` (None: the current one) on `modules`."""
    device = modules.current_device() if device is None else _check_int(device, "device",
                                                                        "get_backend")
    bounds = []
    for value, arg, default in ((max_plans, "max_plans", DEFAULT_MAX_PLANS),
                                (max_plan_bytes, "max_plan_bytes", DEFAULT_MAX_PLAN_BYTES)):
        value = default if value is None else _check_int(value, arg, "get_backend")
        if value < 1:
            raise ValueError(f"get_backend: `{arg}` must be >= 1 or None, got {value}.")
        bounds.append(value)
    key = ("cupy", device, *bounds, modules)
    with _instances_lock:
        backend = _instances.get(key)
        if backend is None:
            backend = _instances[key] = CupyBackend(modules, device, *bounds)
    return backend


def _check_seconds(value: object, arg: str, meaning: str, default: float | None,
                   ) -> float | None:
    """A finite number of seconds ``>= 0``, or `default` for None."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"get_backend: `{arg}` must be a real number of seconds "
                        f"or None, got {value!r}.")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"get_backend: `{arg}` must be finite and >= 0{meaning}, "
                         f"got {value!r}.")
    return float(value)


def _create(name: str, threads: int, planner_effort: str, planning_timelimit: float,
            save_wisdom: bool, measure_after_seconds: float | None) -> Backend:
    if name == "numpy":
        from fftconv.backends.numpy_backend import NumpyBackend

        return NumpyBackend(threads)
    try:
        from fftconv.backends.pyfftw_backend import PyFFTWBackend
    except ImportError as err:
        raise ImportError("backend 'pyfftw' needs the pyFFTW package (`pip install pyfftw`); "
                          "use backend='numpy' or 'auto' without it.") from err
    return PyFFTWBackend(threads, planner_effort, planning_timelimit, save_wisdom,
                         measure_after_seconds)
