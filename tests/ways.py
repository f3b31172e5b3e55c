"""Every way the layer can run: each method, and each variant of the direct path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from fftconv.paths import shifted

#: ``direct-windows`` / ``direct-shifted`` force the direct path's variant.
WAYS = ("direct-windows", "direct-shifted", "fft", "auto")


@contextmanager
def way(name: str) -> Iterator[str]:
    """Yield the layer ``method`` for the way `name`, forcing its variant meanwhile."""
    if not name.startswith("direct-"):
        yield name
        return
    threshold = 1 if name == "direct-shifted" else sys.maxsize
    with mock.patch.object(shifted, "SHIFTED_MIN_CHANNELS", threshold):
        yield "direct"
