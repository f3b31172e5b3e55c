"""Files shared with other processes: the cache directory, atomic replace, advisory lock."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ModuleNotFoundError:  # Windows: no advisory locks
    fcntl = None

#: Environment variable turning the saving of FFTW and plan wisdom on or off.
SAVE_WISDOM_ENV = "FFTCONV_SAVE_WISDOM"
_ENV_ON = ("1", "true", "yes")
_ENV_OFF = ("0", "false", "no")

_warned: set[str] = set()  # kinds of warning issued in this process
_warned_lock = threading.Lock()

#: Seconds :func:`file_lock` waits for another holder before going on without the lock
#: (a stopped process must not hang another one).
LOCK_TIMEOUT = 10.0


def cache_directory() -> Path:
    """fftconv's cache directory (FFTW wisdom, plan wisdom), from the environment now.

    ``$FFTCONV_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fftconv``, else
    ``~/.cache/fftconv``.  It may not exist yet.
    """
    directory = os.environ.get("FFTCONV_CACHE_DIR")
    if directory:
        return Path(directory)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fftconv"


def replace_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in its directory, then rename.

    A reader sees the old file or the new one, never part of one, and an
    interrupted write leaves no temporary file.  A symlink is written through;
    an existing file keeps its permissions, a new one gets the umask's.

    Raises
    ------
    OSError
        If the directory cannot be written; `path` is then unchanged.
    """
    target = Path(os.path.realpath(path))
    if target.exists():
        mode = target.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on `lock_path` (created if missing), best effort.

    Without :mod:`fcntl`, or past :data:`LOCK_TIMEOUT` seconds of waiting for
    another holder, the body runs unlocked.  The lock file is left in place:
    removing it would let two processes lock two different files of one name.
    """
    if fcntl is None:
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
        yield  # the lock, if taken, goes with the descriptor
    finally:
        os.close(fd)


def save_wisdom_env() -> bool | None:
    """``$FFTCONV_SAVE_WISDOM`` as a bool; None if unset, empty or invalid (warns once)."""
    raw = os.environ.get(SAVE_WISDOM_ENV, "")
    value = raw.strip().lower()
    if value in _ENV_ON:
        return True
    if value in _ENV_OFF:
        return False
    if value:
        warn_once("env", f"{SAVE_WISDOM_ENV}={raw!r} is not one of {_ENV_ON + _ENV_OFF}; "
                  "ignored (the configuration decides).", stacklevel=3)
    return None


def warn_once(kind: str, message: str, stacklevel: int = 2) -> None:
    """Issue a RuntimeWarning unless one of this `kind` was issued in this process."""
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
