"""Per-thread scratch buffers for the temporaries of one call, reused across calls.

The CPU backends' :meth:`~fftconv.backends.Backend.scratch` (a GPU's memory pool
already reuses freed blocks).

With glibc's default ``malloc``, an array over 32 MiB is mapped fresh from the
operating system at every allocation and its pages are faulted in one by one
when first written: on the development VM about 7 ms per 33 MB, as long as the
arithmetic done on it.  Temporaries that never leave a call are therefore taken
from here; arrays returned to the caller never are.

Each thread keeps one buffer per name, grown to the largest size asked for, so
the memory kept is that of the largest recent call (see :func:`release`).
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape`, owned by this thread's `name` buffer.

    Valid until the next request for `name` in this thread.
    """
    pool: dict[str, np.ndarray] = _local.__dict__.setdefault("pool", {})
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = pool.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = pool[name] = np.empty(nbytes, np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Drop this thread's scratch buffers."""
    _local.__dict__.pop("pool", None)
