"""Every way the layer can run: each method, and each variant of the direct path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: Layer ``method`` values: ``direct-windows`` / ``direct-shifted`` force the direct
#: path's variant (shifted GEMMs where the layer is ungrouped).
WAYS = ("direct-windows", "direct-shifted", "fft", "auto")


@contextmanager
def way(name: str) -> Iterator[str]:
    """Yield the layer ``method`` for the way `name` (each way is a method value)."""
    yield name
