"""Cache of a layer's kernel-derived arrays: phase kernels and their spectra."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

import numpy as np


class SpectrumCache:
    """Arrays derived from one kernel, keyed by how they are used.

    Entries (e.g. the phase-kernel spectra at each FFT length used) stay valid
    while the kernel's *token* is unchanged; a new token (the parameter's
    version changed after ``set_weights`` or ``assign``) empties the cache.  A
    token of None means the kernel cannot be tracked (a plain callable) and
    nothing is kept.

    Attributes
    ----------
    computed : int
        Entries computed so far (kernel transforms done), for tests and tuning.
    """

    def __init__(self) -> None:
        self._token: Hashable | None = None
        self._entries: dict[Hashable, np.ndarray] = {}
        self._lock = threading.RLock()  # entries may be derived from other entries
        self.computed = 0

    def keys(self) -> list[Hashable]:
        """The keys of the entries held (for the current token)."""
        with self._lock:
            return list(self._entries)

    def get(self, token: Hashable | None, key: Hashable,
            compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Return the entry `key` for the kernel state `token`, computing it if needed."""
        with self._lock:
            if token is None or token != self._token:
                self._entries.clear()
                self._token = token
            entry = self._entries.get(key)
            if entry is None:
                entry = compute()
                self.computed += 1
                if token is not None:
                    self._entries[key] = entry
            return entry
