"""Backend on FFTW plans built with :mod:`pyfftw.builders`, with persistent wisdom.

Plans
-----
Every transform is computed in one canonical layout: the input is copied, with the
transform axis moved last, into a C-contiguous, SIMD-aligned buffer of shape
``(rows, length)`` that belongs to the plan (``length`` is `n` for ``rfft`` and
``n // 2 + 1`` for ``irfft``; ``rows`` is the product of the other axes).  This copy
also crops or zero-pads to ``length`` and gathers strided views, so one plan serves
every input with the same ``(kind, rows, n, dtype)``, whatever its shape, strides or
axis.  Because the plan only ever reads its own buffer, the caller's array is never
written, and the plan can be built with ``overwrite_input=True`` (FFTW may use its
faster input-destroying algorithms) and ``avoid_copy=True`` (the builder plans on the
buffer itself instead of copies); the buffer is refilled completely on each call.

Each call writes into a freshly allocated aligned output array that is handed to FFTW
(``output_array=``), so the result is owned by the caller and no copy of the output is
made.  The plan keeps a reference to that array until its next call, which first
switches to a new output array, so a returned result is never written again.

Wisdom
------
FFTW's accumulated wisdom is stored in ``fftw-wisdom.json`` in the cache directory
(``$FFTCONV_CACHE_DIR``, else ``$XDG_CACHE_HOME/fftconv``, else ``~/.cache/fftconv``,
read from the environment at each call).  It is imported when the first
:class:`PyFFTWBackend` is created and saved at interpreter exit; see :func:`load_wisdom`
and :func:`save_wisdom`.

Saving merges rather than overwrites: the wisdom already in the file is imported into
FFTW first, so what FFTW exports is the union of the file's and this process's wisdom,
and the file is then replaced atomically (temporary file, rename).  Where :mod:`fcntl`
exists, an advisory lock on the sibling file ``fftw-wisdom.json.lock`` makes this
read-merge-replace exclusive between processes sharing the cache directory, so
processes exiting together lose none of each other's wisdom; elsewhere the lock is
skipped, and concurrent savers may drop each other's additions (never corrupt the file).

The save at exit can be turned off (loading is never affected):

* the ``pyfftw.save_wisdom`` configuration key (``save_wisdom=`` of
  :func:`fftconv.backends.get_backend`): false turns it off for the whole process as
  soon as one backend is created with it;
* the ``FFTCONV_SAVE_WISDOM`` environment variable, which overrides the configuration:
  ``0``, ``false`` or ``no`` turn the save off, ``1``, ``true`` or ``yes`` turn it on
  (case-insensitive); any other value is ignored, with one warning.

Failing to save (an unwritable cache directory, for example) is silent at exit unless
``FFTCONV_SAVE_WISDOM`` asked for the save; an explicit :func:`save_wisdom` call warns.
Either warns at most once per process.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import json
import math
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pyfftw
import pyfftw.builders

from fftconv._files import cache_directory, file_lock, replace_atomically
from fftconv.backends import _COMPLEX_TO_REAL, _REAL_TO_COMPLEX, Backend
from fftconv.backends.blocks import BlockFFT

#: Name of the wisdom file in the cache directory.
WISDOM_FILE = "fftw-wisdom.json"
#: Plans kept per backend; the least recently used plan is dropped beyond this.
MAX_PLANS = 64
#: Environment variable turning the save at exit on or off (overrides the configuration).
SAVE_WISDOM_ENV = "FFTCONV_SAVE_WISDOM"
_ENV_ON = ("1", "true", "yes")
_ENV_OFF = ("0", "false", "no")

_WISDOM_KEYS = ("double", "single", "long_double")  # order of pyfftw.export_wisdom()

# FFTW's planner and wisdom are process-global and not thread-safe: plan building and
# wisdom import/export all hold this lock.
_fftw_lock = threading.Lock()
_wisdom_imported = False
# Set once a backend is created with save_wisdom=False: no save at exit (unless the
# environment variable turns it on).
_exit_save_disabled = False
# Kinds of warning already issued ("save", "env"): each is issued at most once per process.
_warned: set[str] = set()
_warned_lock = threading.Lock()


class _Slot:
    """A plan-cache entry: the FFTW plan once built, and the lock serialising its use.

    The plan's input array is a private buffer of shape ``(rows, length)`` (aligned,
    C-contiguous) that every call refills completely.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fftw: pyfftw.FFTW | None = None


class PyFFTWBackend(Backend):
    """Real FFTs with cached FFTW plans.

    Thread safety: an FFTW plan object executes on the arrays it was last given, so one
    plan cannot run two calls at once.  Each cache entry therefore has a lock, held
    while its plan is built (on first use), its buffer filled and the plan executed;
    calls on different plans run in parallel (FFTW releases the GIL), and a slow
    ``FFTW_MEASURE`` planning only delays callers of that same plan.  The cache dict
    has its own lock, held only for lookups and insertions.  A plan per thread was not
    chosen because it would repeat the (costly, globally serialised) planning and the
    buffers in every thread, while one call already uses `threads` cores.

    Parameters
    ----------
    threads : int
        FFTW threads per transform.
    planner_effort : {'FFTW_ESTIMATE', 'FFTW_MEASURE', 'FFTW_PATIENT', 'FFTW_EXHAUSTIVE'}
        Effort for the block transforms (:meth:`block_fft`), which run many times per
        call.  One-off transforms (:meth:`rfft`, :meth:`irfft`: kernel spectra) are
        planned with ``FFTW_ESTIMATE``: a measured plan would cost more than it saves.
    planning_timelimit : float
        Seconds FFTW may spend planning one block transform (0: no limit); past it,
        FFTW keeps the best plan measured so far.
    save_wisdom : bool
        False turns off the save of FFTW's wisdom at interpreter exit for the whole
        process (wisdom is still loaded); ``$FFTCONV_SAVE_WISDOM`` overrides it.

    Attributes
    ----------
    plans_built : int
        Number of plans this backend has built (a cache hit builds none).
    """

    name = "pyfftw"

    def __init__(self, threads: int, planner_effort: str, planning_timelimit: float = 0.0,
                 save_wisdom: bool = True) -> None:
        super().__init__(threads)
        self.planner_effort = planner_effort
        self.planning_timelimit = planning_timelimit
        self.save_wisdom = save_wisdom
        self.plans_built = 0
        self._slots: dict[tuple[str, int, int, np.dtype], _Slot] = {}
        self._slots_lock = threading.Lock()
        _import_wisdom_once(save_wisdom)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(threads={self.threads}, "
                f"planner_effort={self.planner_effort!r}, "
                f"planning_timelimit={self.planning_timelimit!r}, "
                f"save_wisdom={self.save_wisdom!r})")

    def _make_block_fft(self, rows_in: int, rows_out: int, n: int, dtype: np.dtype,
                        ) -> BlockFFT:
        return _FFTWBlockFFT(rows_in, rows_out, n, dtype, self.threads, self.planner_effort,
                             self.planning_timelimit)

    def _rfft(self, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        return self._execute("rfft", a, n, axis)

    def _irfft(self, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        return self._execute("irfft", a, n, axis)

    def _execute(self, kind: str, a: np.ndarray, n: int, axis: int) -> np.ndarray:
        """Transform `a` along `axis` through the plan for its canonical layout."""
        length, out_length = (n, n // 2 + 1) if kind == "rfft" else (n // 2 + 1, n)
        moved = np.moveaxis(a, axis, -1)
        batch = moved.shape[:-1]
        rows = math.prod(batch)
        if rows == 0:
            out_dtype = (_REAL_TO_COMPLEX if kind == "rfft" else _COMPLEX_TO_REAL)[a.dtype]
            return np.moveaxis(np.empty(batch + (out_length,), out_dtype), -1, axis)
        copied = min(length, moved.shape[-1])
        slot = self._slot((kind, rows, n, a.dtype))
        with slot.lock:
            if slot.fftw is None:
                slot.fftw = self._build(kind, rows, n, length, a.dtype)
            fftw = slot.fftw
            out = pyfftw.empty_aligned(fftw.output_shape, fftw.output_dtype)
            target = fftw.input_array.reshape(batch + (length,))
            target[..., :copied] = moved[..., :copied]
            target[..., copied:] = 0
            fftw(output_array=out)
        return np.moveaxis(out.reshape(batch + (out_length,)), -1, axis)

    def _slot(self, key: tuple[str, int, int, np.dtype]) -> _Slot:
        """The cache entry for `key`, created if missing; least recently used dropped."""
        with self._slots_lock:
            slot = self._slots.pop(key, None)
            if slot is None:
                slot = _Slot()
                if len(self._slots) >= MAX_PLANS:
                    del self._slots[next(iter(self._slots))]
            self._slots[key] = slot  # most recently used last
        return slot

    def _build(self, kind: str, rows: int, n: int, length: int, dtype: np.dtype) -> pyfftw.FFTW:
        """Plan a transform whose input array is a new buffer of shape (rows, length)."""
        builder = pyfftw.builders.rfft if kind == "rfft" else pyfftw.builders.irfft
        buffer = pyfftw.zeros_aligned((rows, length), dtype)
        with _fftw_lock:
            fftw = builder(buffer, n=n, axis=-1, overwrite_input=True,
                           planner_effort="FFTW_ESTIMATE", threads=self.threads,
                           auto_align_input=True, auto_contiguous=True, avoid_copy=True)
            self.plans_built += 1
        return fftw


class _FFTWBlockFFT(BlockFFT):
    """:class:`BlockFFT` on two FFTW plans that read and write the owned buffers in place."""

    def __init__(self, rows_in: int, rows_out: int, n: int, dtype: np.dtype, threads: int,
                 planner_effort: str, planning_timelimit: float) -> None:
        super().__init__(rows_in, rows_out, n, dtype, threads)
        spectra = pyfftw.empty_aligned((rows_in, n // 2 + 1), self.spectrum_in.dtype)
        real_out = pyfftw.empty_aligned((rows_out, n), self.dtype)
        options = {"flags": (planner_effort, "FFTW_DESTROY_INPUT"), "threads": threads,
                   "planning_timelimit": planning_timelimit or None}
        with _fftw_lock:  # planning may scribble on the buffers; they are filled before use
            self._forward = pyfftw.FFTW(self.real_in, spectra, axes=(1,), **options)
            self._inverse = pyfftw.FFTW(self.spectrum_in, real_out, axes=(1,),
                                        direction="FFTW_BACKWARD", **options)

    @staticmethod
    def _empty(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        return pyfftw.empty_aligned(shape, dtype)

    def forward(self) -> np.ndarray:
        self._forward.execute()
        return self._forward.output_array

    def inverse(self) -> np.ndarray:
        self._inverse.execute()
        return self._inverse.output_array


def wisdom_path() -> Path:
    """Default wisdom file: ``fftw-wisdom.json`` in :func:`fftconv._files.cache_directory`."""
    return cache_directory() / WISDOM_FILE


def load_wisdom(path: str | os.PathLike | None = None) -> bool:
    """Import FFTW wisdom saved by :func:`save_wisdom`.

    Parameters
    ----------
    path : path or None
        The wisdom file; None means :func:`wisdom_path`.

    Returns
    -------
    bool
        True if the wisdom was imported; False if the file does not exist (or a
        directory on its path is a file), or is unreadable or invalid (these two also
        issue a warning, never an exception).
    """
    path = wisdom_path() if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no such file can exist there
        return False
    except (OSError, UnicodeDecodeError) as err:
        warnings.warn(f"FFTW wisdom file {path} could not be read ({err}); ignored.",
                      RuntimeWarning, stacklevel=2)
        return False
    try:
        wisdom = _decode_wisdom(text)
    except ValueError as err:
        warnings.warn(f"FFTW wisdom file {path} is invalid ({err}); ignored.",
                      RuntimeWarning, stacklevel=2)
        return False
    with _fftw_lock:
        imported = pyfftw.import_wisdom(wisdom)
    if not all(ok for ok, blob in zip(imported, wisdom, strict=True) if blob):
        warnings.warn(f"FFTW rejected the wisdom in {path}; ignored.",
                      RuntimeWarning, stacklevel=2)
        return False
    return True


def save_wisdom(path: str | os.PathLike | None = None) -> Path:
    """Merge FFTW's wisdom into a file, atomically (temporary file, then rename).

    The wisdom already in the file (if it is valid) is imported into FFTW first, so the
    file ends up with the union of its wisdom and this process's; an advisory lock on
    the sibling file ``<name>.lock`` (where :mod:`fcntl` exists) keeps another process
    from replacing the file between that read and the write.

    Parameters
    ----------
    path : path or None
        The wisdom file; None means :func:`wisdom_path`.  Missing directories are
        created.

    Returns
    -------
    Path
        The file written.  If it cannot be written (a read-only directory, for example)
        a warning is issued instead of an exception (at most once per process), and the
        file is left as it was.
    """
    path = wisdom_path() if path is None else Path(path)
    _save(path, warn=True)
    return path


def _save(path: Path, warn: bool) -> bool:
    """Merge FFTW's wisdom into `path`; on failure warn (if `warn`, once) and return False."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name(path.name + ".lock")):
            _merge_into(path)
    except OSError as err:
        if warn:
            _warn_once("save", f"FFTW wisdom could not be saved to {path} ({err}).",
                       stacklevel=3)
        return False
    return True


def _merge_into(path: Path) -> None:
    """Import the wisdom in `path` (if valid), then replace `path` with FFTW's export."""
    try:
        existing = _decode_wisdom(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        existing = None  # missing or unusable: nothing to keep
    with _fftw_lock:
        if existing is not None:
            pyfftw.import_wisdom(existing)  # FFTW adds it to what it knows
        wisdom = pyfftw.export_wisdom()
    text = json.dumps({key: base64.b64encode(value).decode("ascii")
                       for key, value in zip(_WISDOM_KEYS, wisdom, strict=True)}, indent=1)
    replace_atomically(path, text)


def _decode_wisdom(text: str) -> tuple[bytes, bytes, bytes]:
    """The three wisdom strings of a wisdom file; ValueError if it is malformed."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(data, dict) or sorted(data) != sorted(_WISDOM_KEYS):
        raise ValueError(f"expected a JSON object with keys {list(_WISDOM_KEYS)}")
    try:
        return tuple(base64.b64decode(data[key], validate=True) for key in _WISDOM_KEYS)
    except (TypeError, binascii.Error) as err:
        raise ValueError(f"not base64: {err}") from None


def _import_wisdom_once(save: bool = True) -> None:
    """Load the default wisdom file and register its save at exit, once per process.

    `save` False turns the save at exit off for the rest of the process.
    """
    global _wisdom_imported, _exit_save_disabled
    with _fftw_lock:
        if not save:
            _exit_save_disabled = True
        if _wisdom_imported:
            return
        _wisdom_imported = True
    _save_wisdom_env()  # an invalid value warns now rather than at exit
    load_wisdom()
    atexit.register(_save_wisdom_at_exit)


def _save_wisdom_env() -> bool | None:
    """``$FFTCONV_SAVE_WISDOM`` as a bool; None if unset, empty or invalid (warns once)."""
    raw = os.environ.get(SAVE_WISDOM_ENV, "")
    value = raw.strip().lower()
    if value in _ENV_ON:
        return True
    if value in _ENV_OFF:
        return False
    if value:
        _warn_once("env", f"{SAVE_WISDOM_ENV}={raw!r} is not one of {_ENV_ON + _ENV_OFF}; "
                   "ignored (the configuration decides).", stacklevel=3)
    return None


def _save_wisdom_at_exit() -> None:
    """Save to the default file unless turned off; warn on failure only if asked to save.

    Only ``FFTCONV_SAVE_WISDOM`` set to on asks: the default save fails silently.
    """
    requested = _save_wisdom_env()
    if requested is False or (requested is None and _exit_save_disabled):
        return
    _save(wisdom_path(), warn=requested is True)


def _warn_once(kind: str, message: str, stacklevel: int) -> None:
    """Issue a RuntimeWarning unless one of this `kind` was issued in this process."""
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
