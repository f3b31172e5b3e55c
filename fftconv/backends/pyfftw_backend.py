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

Block transforms
----------------
:meth:`PyFFTWBackend.block_fft` plans a stream's block transforms at once with the
configured effort.  :meth:`PyFFTWBackend.chunk_fft`, for the overlap-save path, makes
one set of buffers per block length and channel layout, transformed by plans over
pieces of power-of-two row counts (so inputs of any width share a few plans), and
plans cheaply first: from wisdom if FFTW has some for the configured effort, else
``FFTW_ESTIMATE`` (milliseconds), measured with the configured effort only once the
plans recur and have run for a while (:data:`MEASURE_AT_USE`,
:data:`MEASURE_AFTER_SECONDS`).  So no call waits seconds for FFTW's measuring unless
earlier calls in the process have spent about as long in the transforms.

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
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyfftw
import pyfftw.builders

from fftconv._files import (
    cache_directory,
    file_lock,
    replace_atomically,
    save_wisdom_env,
    warn_once,
)
from fftconv.backends.base import _COMPLEX_TO_REAL, _REAL_TO_COMPLEX
from fftconv.backends.blocks import BlockFFT, pieces
from fftconv.backends.cpu import CPUBackend

#: Name of the wisdom file in the cache directory.
WISDOM_FILE = "fftw-wisdom.json"
#: Plans kept per backend; the least recently used plan is dropped beyond this.
MAX_PLANS = 64
#: Environment variable turning the save at exit on or off (overrides the configuration).

_WISDOM_KEYS = ("double", "single", "long_double")  # order of pyfftw.export_wisdom()

#: A plan of a chunk transform (:meth:`PyFFTWBackend.chunk_fft`) that FFTW has no wisdom
#: for is an FFTW_ESTIMATE plan at first.  It is planned again with the configured
#: effort at the start of the transform's MEASURE_AT_USE-th use (call) in the process,
#: or of a later one, once the plan has executed for MEASURE_AFTER_SECONDS.
MEASURE_AT_USE = 3
#: Measuring one plan takes up to ``pyfftw.planning_timelimit`` (2 s by default) and
#: saves some 20-40 % of its execution time.  As in renting before buying, waiting
#: until the plan has run about as long as measuring it may take bounds what measuring
#: adds to any process, however short, by about the time already spent, while plans
#: that keep running get measured (and kept as wisdom for later processes).
MEASURE_AFTER_SECONDS = 2.0
#: Pieces of fewer samples (rows times length) run on one thread: FFTW_ESTIMATE plans
#: split any transform over every thread, and waking them costs more than it saves on
#: a small one.
THREADED_MIN_SAMPLES = 1 << 16
#: Bytes that the row strides of chunk buffers are a multiple of, so that every piece of
#: rows is aligned as the first row is (FFTW's new-array execution requires it).
_ROW_ALIGN = 64
#: Row strides of chunk buffers are never a multiple of this many bytes (one more
#: _ROW_ALIGN is added): rows of a power-of-two length would otherwise all fall in the
#: same cache sets, and copying a block's channels to or from a channels-last array
#: (one element per row in turn) thrashes them.  Padded, that copy ran 1.7x faster
#: (38 rows of 32768 float64 samples into a channels-last array).
_ALIAS_BYTES = 4096

# FFTW's planner and wisdom are process-global and not thread-safe: plan building and
# wisdom import/export all hold this lock.
_fftw_lock = threading.Lock()
_wisdom_imported = False
# Set once a backend is created with save_wisdom=False: no save at exit (unless the
# environment variable turns it on).
_exit_save_disabled = False
# Kinds of warning already issued ("save", "env"): each is issued at most once per process.


class _Slot:
    """A plan-cache entry: the FFTW plan once built, and the lock serialising its use.

    The plan's input array is a private buffer of shape ``(rows, length)`` (aligned,
    C-contiguous) that every call refills completely.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fftw: pyfftw.FFTW | None = None


class PyFFTWBackend(CPUBackend):
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
        Effort for the block transforms (:meth:`block_fft`, :meth:`chunk_fft`), which
        run many times per call; a chunk transform gets it only once it recurs (see
        :data:`MEASURE_AT_USE`), unless FFTW's wisdom has it already.  One-off
        transforms (:meth:`rfft`, :meth:`irfft`: kernel spectra) are planned with
        ``FFTW_ESTIMATE``: a measured plan would cost more than it saves.
    planning_timelimit : float
        Seconds FFTW may spend planning one block transform (0: no limit); past it,
        FFTW keeps the best plan measured so far.
    save_wisdom : bool
        False turns off the save of FFTW's wisdom at interpreter exit for the whole
        process (wisdom is still loaded); ``$FFTCONV_SAVE_WISDOM`` overrides it.
    measure_after_seconds : float or None
        Seconds an estimated plan of a chunk transform runs before it is measured
        (see :data:`MEASURE_AFTER_SECONDS`, the value for None).

    Attributes
    ----------
    plans_built : int
        Number of one-off plans (:meth:`rfft`, :meth:`irfft`) this backend has built (a
        cache hit builds none).
    block_plans_built : collections.Counter
        FFTW plans built for block transforms (:meth:`block_fft`, :meth:`chunk_fft`),
        by how: ``'wisdom'`` (from FFTW's wisdom alone) or the planner effort.
    """

    name = "pyfftw"

    def __init__(self, threads: int, planner_effort: str, planning_timelimit: float = 0.0,
                 save_wisdom: bool = True, measure_after_seconds: float | None = None,
                 ) -> None:
        super().__init__(threads)
        self.planner_effort = planner_effort
        self.planning_timelimit = planning_timelimit
        self.save_wisdom = save_wisdom
        self.measure_after_seconds = measure_after_seconds
        self.plans_built = 0
        self.block_plans_built: Counter[str] = Counter()
        self._slots: dict[tuple[str, int, int, np.dtype], _Slot] = {}
        self._slots_lock = threading.Lock()
        _import_wisdom_once(save_wisdom)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(threads={self.threads}, "
                f"planner_effort={self.planner_effort!r}, "
                f"planning_timelimit={self.planning_timelimit!r}, "
                f"save_wisdom={self.save_wisdom!r}, "
                f"measure_after_seconds={self.measure_after_seconds!r})")

    def _make_block_fft(self, kind: str, rows_in: int, rows_out: int, n: int,
                        dtype: np.dtype) -> BlockFFT:
        return _FFTWBlockFFT(rows_in, rows_out, n, dtype, self.threads, self.planner_effort,
                             self.planning_timelimit, deferred=kind == "chunk",
                             record=self._record_block_plan,
                             measure_after=self.measure_after_seconds)

    def _record_block_plan(self, how: str) -> None:
        with self._slots_lock:
            self.block_plans_built[how] += 1

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


class _Plan:
    """One FFTW plan of a block transform over a piece of ``rows`` rows.

    Attributes: ``fftw``; ``how`` it was made (``'wisdom'`` or an effort); ``at``,
    the first row it is set to; ``seconds`` spent executing it.
    """

    def __init__(self, fftw: pyfftw.FFTW, how: str) -> None:
        self.fftw = fftw
        self.how = how
        self.at = 0
        self.seconds = 0.0


class _FFTWBlockFFT(BlockFFT):
    """:class:`BlockFFT` on FFTW plans that read and write the owned buffers in place.

    Made by :meth:`PyFFTWBackend.block_fft` (`deferred` False): one forward and one
    inverse plan, each over every row, planned with `planner_effort` at once.

    Made by :meth:`PyFFTWBackend.chunk_fft` (`deferred` True): a call on ``rows``
    rows runs plans over at most :data:`MAX_PIECES` pieces of rows, of power-of-two
    sizes or the whole capacity (:func:`pieces`), each at its offset in the buffers
    (FFTW's new-array execution: row strides padded to :data:`_ROW_ALIGN` bytes give
    every piece the alignment of the first row; never to a multiple of
    :data:`_ALIAS_BYTES`).  So a few plans serve every row
    count.  Pieces of fewer than :data:`THREADED_MIN_SAMPLES` samples run on one
    thread.

    A plan is made on the first call that needs it: from FFTW's wisdom for
    `planner_effort` if there is some (``FFTW_WISDOM_ONLY``), else with
    ``FFTW_ESTIMATE`` (milliseconds for the first plan of a length, much less for the
    next ones).  An estimated plan is planned again with `planner_effort` (within
    `planning_timelimit`; FFTW keeps it as wisdom, saved at exit) at the start of a
    :meth:`~BlockFFT.use` that is at least the :data:`MEASURE_AT_USE`-th once the plan
    has run for `measure_after` seconds (None: :data:`MEASURE_AFTER_SECONDS`); one
    plan per use, the one that has run longest, so a call waits for one measuring at
    most.

    `record` is called with how each plan was made: ``'wisdom'`` or the effort.
    """

    def __init__(self, rows_in: int, rows_out: int, n: int, dtype: np.dtype, threads: int,
                 planner_effort: str, planning_timelimit: float, deferred: bool = False,
                 record: Callable[[str], None] | None = None,
                 measure_after: float | None = None) -> None:
        self._effort = planner_effort
        self._measure_after = measure_after
        self._timelimit = planning_timelimit or None
        self._record = record or (lambda how: None)
        self._deferred = deferred
        super().__init__(rows_in, rows_out, n, dtype, threads)
        self._spectra = self._empty((rows_in, n // 2 + 1), self.spectrum_in.dtype)
        self._real_out = self._empty((rows_out, n), self.dtype)
        # Per direction (0: forward, 1: inverse): the plans by piece size, and the rows
        # of the input known to hold finite numbers (padding rows past the caller's are
        # zeroed once, so no garbage - NaN, denormals - is transformed).
        self._plans: tuple[dict[int, _Plan], dict[int, _Plan]] = ({}, {})
        self._finite = [0, 0]
        if not deferred:
            self._build(0, rows_in, planner_effort)
            self._build(1, rows_out, planner_effort)

    @property
    def _forward(self) -> pyfftw.FFTW | None:
        """The forward plan over every row (``block_fft``), or the largest one made."""
        return self._largest(0)

    @property
    def _inverse(self) -> pyfftw.FFTW | None:
        return self._largest(1)

    def _largest(self, which: int) -> pyfftw.FFTW | None:
        plans = self._plans[which]
        return plans[max(plans)].fftw if plans else None

    @property
    def plan_efforts(self) -> dict[tuple[str, int], str]:
        """How each plan was made, by ``('forward' | 'inverse', rows)``."""
        return {(("forward", "inverse")[which], rows): plan.how
                for which in (0, 1) for rows, plan in sorted(self._plans[which].items())}

    def _empty(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        if not self._deferred:
            return pyfftw.empty_aligned(shape, dtype)
        rows, length = shape
        itemsize = np.dtype(dtype).itemsize
        stride = -(-length * itemsize // _ROW_ALIGN) * _ROW_ALIGN
        if stride % _ALIAS_BYTES == 0:
            stride += _ROW_ALIGN
        return pyfftw.empty_aligned((rows, stride // itemsize), dtype, n=_ROW_ALIGN)[:, :length]

    def _arrays(self, which: int, start: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Input and output rows ``start : start + rows`` of direction `which`."""
        if which:
            return self.spectrum_in[start:start + rows], self._real_out[start:start + rows]
        return self.real_in[start:start + rows], self._spectra[start:start + rows]

    def _build(self, which: int, rows: int, effort: str, wisdom_only: bool = False) -> _Plan:
        """Plan direction `which` over `rows` rows at row 0 with `effort`.

        Raises RuntimeError if `wisdom_only` and FFTW has no wisdom for it.
        """
        flags = (effort, "FFTW_DESTROY_INPUT") + (("FFTW_WISDOM_ONLY",) if wisdom_only else ())
        a, b = self._arrays(which, 0, rows)
        limit = None if effort == "FFTW_ESTIMATE" or wisdom_only else self._timelimit
        extra = {"direction": "FFTW_BACKWARD"} if which else {}
        how = "wisdom" if wisdom_only else effort
        small = self._deferred and rows * self.n < THREADED_MIN_SAMPLES
        with _fftw_lock:  # planning may scribble on the buffers; they are filled before use
            fftw = pyfftw.FFTW(a, b, axes=(1,), flags=flags, threads=1 if small else self.threads,
                               planning_timelimit=limit, **extra)
            self._record(how)
        plan = self._plans[which][rows] = _Plan(fftw, how)
        self._finite[which] = 0
        return plan

    def _plan(self, which: int, rows: int) -> _Plan:
        """The plan of direction `which` over `rows` rows, made cheaply if missing."""
        plan = self._plans[which].get(rows)
        if plan is None and self._effort == "FFTW_ESTIMATE":
            plan = self._build(which, rows, "FFTW_ESTIMATE")
        elif plan is None:
            try:
                plan = self._build(which, rows, self._effort, wisdom_only=True)
            except RuntimeError:  # FFTW has no wisdom for it
                plan = self._build(which, rows, "FFTW_ESTIMATE")
        return plan

    def _on_use(self) -> None:
        if self.uses < MEASURE_AT_USE or self._effort == "FFTW_ESTIMATE":
            return
        after = MEASURE_AFTER_SECONDS if self._measure_after is None else self._measure_after
        due = [(plan.seconds, which, rows) for which in (0, 1)
               for rows, plan in self._plans[which].items()
               if plan.how == "FFTW_ESTIMATE" and plan.seconds >= after]
        if due:  # one plan per use, the one that has run longest: no call waits for many
            _, which, rows = max(due)
            self._build(which, rows, self._effort)

    def forward(self, rows: int | None = None) -> np.ndarray:
        rows = self.real_in.shape[0] if rows is None else rows
        self._run(0, self.real_in, rows)
        return self._spectra[:rows]

    def inverse(self, rows: int | None = None) -> np.ndarray:
        rows = self.spectrum_in.shape[0] if rows is None else rows
        self._run(1, self.spectrum_in, rows)
        return self._real_out[:rows]

    def _run(self, which: int, source: np.ndarray, rows: int) -> None:
        """Transform (at least) the first `rows` rows of `source`, piece by piece."""
        capacity = source.shape[0]
        sizes = pieces(rows, capacity) if self._deferred else [capacity]
        stop = sum(sizes)
        finite = max(self._finite[which], rows)
        if stop > finite:
            source[finite:stop] = 0
        self._finite[which] = max(finite, stop)
        start = 0
        for size in sizes:
            plan = self._plan(which, size)
            if plan.at != start:
                plan.fftw.update_arrays(*self._arrays(which, start, size))
                plan.at = start
            begin = time.perf_counter()
            plan.fftw.execute()
            plan.seconds += time.perf_counter() - begin
            start += size


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
            warn_once("fftw-save", f"FFTW wisdom could not be saved to {path} ({err}).",
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
    save_wisdom_env()  # an invalid value warns now rather than at exit
    load_wisdom()
    atexit.register(_save_wisdom_at_exit)


def _save_wisdom_at_exit() -> None:
    """Save to the default file unless turned off; warn on failure only if asked to save.

    Only ``FFTCONV_SAVE_WISDOM`` set to on asks: the default save fails silently.
    """
    requested = save_wisdom_env()
    if requested is False or (requested is None and _exit_save_disabled):
        return
    _save(wisdom_path(), warn=requested is True)


