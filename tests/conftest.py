"""Test session set-up: keep FFTW wisdom out of the user's cache directory."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config):
    # Wisdom is exported at interpreter exit, after fixtures are undone, so the
    # location is set for the whole process.
    if "FFTCONV_CACHE_DIR" not in os.environ:
        os.environ["FFTCONV_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                       "fftconv-test-cache")
