"""Plan wisdom: measured plan winners, remembered across calls and processes.

With ``planning='measure'`` the engine times the cost model's best candidates
on the first call of an input shape (see :class:`fftconv.engine.Engine`).  The
winner is kept here, in memory for the process and in ``plan-wisdom.json`` in
:func:`fftconv._files.cache_directory`, so that later engines and later
processes on the same machine take it without measuring, as FFTW's wisdom does
for its plans.

File
----
A JSON object ``{"format": FORMAT, "plans": {key: entry}}``.  A key
(:func:`wisdom_key`) names what the timing depends on: the FFT backend, its
threads, the dtype, the machine (:func:`machine_id`) and on a GPU its model (a
winner measured on one GPU model is not taken on another), the candidates allowed
(``method``) and the ``corr_valid`` problem sizes with the direct variant they
imply.  An entry is ``{"path": "direct" | "fft", "n_fft": int, "seconds":
{candidate: s}, "saved": unix time}``; only `path` and `n_fft` are used, the
measured times are for information.  At most :data:`MAX_ENTRIES` are kept (the
most recently saved).

Loading and saving
------------------
Each file is read once per process, on the first lookup (thread-safe).  A new
winner is saved at once, so that another process benefits immediately: under
an advisory lock on the sibling file ``plan-wisdom.json.lock``
(:func:`fftconv._files.file_lock`) the current file is read, the winner merged
in and the file replaced atomically (:func:`fftconv._files.replace_atomically`);
processes saving together lose none of each other's winners.  A winner is
saved only when at least two candidates were timed.

A missing file is empty wisdom.  A file that cannot be read or is invalid is
ignored (and replaced by the next save), and a file that cannot be written
leaves the winner in memory only; each warns at most once per process, never
raises.

Saving can be turned off (lookups are never affected): the
``planner.save_wisdom`` configuration key, overridden by the
``FFTCONV_SAVE_WISDOM`` environment variable (``1``/``true``/``yes`` or
``0``/``false``/``no``, case-insensitive), which also governs FFTW's wisdom.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from fftconv._files import (
    cache_directory,
    file_lock,
    replace_atomically,
    save_wisdom_env,
    warn_once,
)
from fftconv._machine import cpuinfo_value
from fftconv.backends import device_kind
from fftconv.planner import Problem, direct_variant

#: Name of the plan-wisdom file in the cache directory.
WISDOM_FILE = "plan-wisdom.json"
#: The file's ``format`` value; a file of another format is ignored.
FORMAT = "fftconv plan wisdom 1"
#: Entries a file keeps; the least recently saved are dropped beyond this.
MAX_ENTRIES = 4096
#: The paths an entry may name.
_PATHS = ("direct", "fft")

# Winners known to this process, per wisdom file (the cache directory may change
# between calls, as it does in tests): loaded on first use, then kept up to date.
_tables: dict[Path, dict[str, dict[str, Any]]] = {}
_tables_lock = threading.Lock()
# Serialises this process's read-merge-replace of a file (the file lock does it
# between processes).
_save_lock = threading.Lock()
# Keys being measured in this process, each with the event set when that is done.
_measuring: dict[str, threading.Event] = {}
_measuring_lock = threading.Lock()


def wisdom_path() -> Path:
    """The plan-wisdom file: ``plan-wisdom.json`` in :func:`fftconv._files.cache_directory`."""
    return cache_directory() / WISDOM_FILE


@cache
def machine_id() -> str:
    """The machine, as far as timings depend on it: architecture, CPU model, CPU count.

    For example ``'x86_64, AMD EPYC 7B13, 16 CPUs'``.  Read once per process.
    """
    model = cpuinfo_value(("model name", "Hardware", "cpu model"))
    model = " ".join((model or platform.processor()).split()) or "unknown CPU"
    return f"{platform.machine() or 'unknown'}, {model}, {os.cpu_count()} CPUs"


def wisdom_key(problem: Problem, backend: str, threads: int, method: str,
               variant: str | None = None, device_model: str | None = None) -> str:
    """The key of a measured winner.

    Parameters
    ----------
    problem : Problem
        The ``corr_valid`` sizes.
    backend : str
        FFT backend name (``'numpy'``, ``'pyfftw'``).
    threads : int
        The backend's FFT threads.
    method : {'auto', 'fft'}
        The candidates allowed: a winner among FFT lengths only is not one among
        every path.
    variant : {'direct-shifted', 'direct-windows'} or None
        The form of the direct candidate (the plan's ``direct_variant``); None:
        :func:`~fftconv.planner.direct_variant` of `problem` on the backend's device.
    device_model : str or None
        The GPU's model (:attr:`~fftconv.backends.Backend.device_model`); None on
        the CPU.

    Returns
    -------
    str
        For example ``'numpy|threads=1|float64|x86_64, AMD EPYC, 2 CPUs|auto|B=2 G=1
        Ci=3 Co=4 Kp=9 T=100 itemsize=8|windows'``; on a GPU the machine is
        followed by its model, ``'...|2 CPUs|gpu=NVIDIA H200|auto|...'``.
    """
    p = problem
    variant = (variant or direct_variant(p, device_kind(backend))).removeprefix("direct-")
    dtype = "float64" if p.itemsize == 8 else "float32"
    machine = machine_id() if device_model is None else f"{machine_id()}|gpu={device_model}"
    return (f"{backend}|threads={threads}|{dtype}|{machine}|{method}|"
            f"B={p.batch} G={p.groups} Ci={p.in_channels} Co={p.out_channels} "
            f"Kp={p.kernel_length} T={p.outputs} itemsize={p.itemsize}|{variant}")


def lookup(key: str) -> tuple[str, int] | None:
    """The remembered winner ``(path, n_fft)`` for `key`, or None.

    The first lookup of a process (per wisdom file) reads the file.  The caller
    checks that the winner still applies (e.g. ``n_fft`` is a length the planner
    lists for the problem).
    """
    entry = _table(wisdom_path()).get(key)
    return None if entry is None else (entry["path"], entry["n_fft"])


def remember(key: str, path: str, n_fft: int, seconds: Mapping[str, float],
             save: bool) -> bool:
    """Keep a measured winner for this process and, if `save`, in the wisdom file.

    Parameters
    ----------
    key : str
        From :func:`wisdom_key`.
    path : {'direct', 'fft'}
    n_fft : int
        FFT length (0 for the direct path).
    seconds : mapping of str to float
        Measured time of each candidate timed, for information.
    save : bool
        Merge the winner into the file now (see :func:`save_enabled`).

    Returns
    -------
    bool
        True if the file now holds the winner.  A file that cannot be written is
        a warning (at most once per process), never an error.
    """
    assert path in _PATHS and n_fft >= 0, (path, n_fft)
    entry = {"path": path, "n_fft": int(n_fft),
             "seconds": {name: float(f"{s:.4g}") for name, s in seconds.items()},
             "saved": round(time.time(), 3)}
    target = wisdom_path()
    table = _table(target)
    with _tables_lock:
        table[key] = entry
    if not save:
        return False
    try:
        with _save_lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(target.with_name(target.name + ".lock")):
                merged = _read(target, warn=False)  # unusable: replaced
                merged[key] = entry
                if len(merged) > MAX_ENTRIES:
                    newest = sorted(merged, key=lambda k: merged[k]["saved"])[-MAX_ENTRIES:]
                    merged = {k: merged[k] for k in newest}
                replace_atomically(target, json.dumps({"format": FORMAT, "plans": merged},
                                                      indent=1, sort_keys=True) + "\n")
    except OSError as err:
        warn_once("plan-save", f"plan wisdom could not be saved to {target} ({err}); measured "
                   "plans are kept for this process only.")
        return False
    with _tables_lock:  # what other processes saved meanwhile is useful here too
        for other, value in merged.items():
            table.setdefault(other, value)
    return True


def save_enabled(configured: bool) -> bool:
    """Whether new winners are saved: ``$FFTCONV_SAVE_WISDOM`` if set, else `configured`.

    An environment value other than ``1/true/yes/0/false/no`` is ignored, with one
    warning per process.
    """
    from_env = save_wisdom_env()
    return configured if from_env is None else from_env


def claim(key: str) -> threading.Event | None:
    """Claim the measuring of `key` in this process.

    Returns
    -------
    threading.Event or None
        None if the caller now measures `key` and must call :func:`release`
        afterwards; else the event that is set when the thread measuring it is
        done (then look the winner up again).
    """
    with _measuring_lock:
        event = _measuring.get(key)
        if event is None:
            _measuring[key] = threading.Event()
        return event


def release(key: str) -> None:
    """End the measuring of `key` claimed by :func:`claim`, waking its waiters."""
    with _measuring_lock:
        event = _measuring.pop(key)
    event.set()


def _table(path: Path) -> dict[str, dict[str, Any]]:
    """The winners known for the file `path`, read on first use."""
    with _tables_lock:
        table = _tables.get(path)
        if table is None:
            table = _tables[path] = _read(path, warn=True)
        return table


def _read(path: Path, warn: bool) -> dict[str, dict[str, Any]]:
    """The valid entries of the file `path`; empty if it is missing or unusable.

    A file that cannot be read or is invalid warns (if `warn`, once per
    process); malformed entries of a valid file are dropped silently.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no such file can exist there
        return {}
    except (OSError, UnicodeDecodeError) as err:
        if warn:
            warn_once("plan-read", f"plan wisdom file {path} could not be read ({err}); ignored.")
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        data = err
    plans = data.get("plans") if isinstance(data, dict) else None
    if not (isinstance(data, dict) and data.get("format") == FORMAT
            and isinstance(plans, dict)):
        if warn:
            why = (f"not JSON: {data}" if isinstance(data, json.JSONDecodeError)
                   else f"expected a JSON object with 'format': {FORMAT!r} and 'plans'")
            warn_once("plan-read", f"plan wisdom file {path} is invalid ({why}); ignored.")
        return {}
    return {key: entry for key, entry in plans.items() if _valid(entry)}


def _valid(entry: object) -> bool:
    """Whether `entry` is a usable file entry (a path, a length and a save time)."""
    return (isinstance(entry, dict) and entry.get("path") in _PATHS
            and type(entry.get("n_fft")) is int and entry["n_fft"] >= 0
            and type(entry.get("saved")) in (int, float))


