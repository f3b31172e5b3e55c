"""Test session set-up: keep the user's cache and configuration out of the tests.

FFTW wisdom goes to a cache directory of the tests' own, and the user
configuration directory is an empty one, so a developer's ``fftconv tune``
profile (or an exported ``FFTCONV_CONFIG``) never changes a result.  Both are
set for the whole process, and so for the command-line subprocesses too.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_CONFIG_DIR: str | None = None


def pytest_configure(config):
    global _CONFIG_DIR
    # Wisdom is exported at interpreter exit, after fixtures are undone, so the
    # location is set for the whole process.
    if "FFTCONV_CACHE_DIR" not in os.environ:
        os.environ["FFTCONV_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                       "fftconv-test-cache")
    _CONFIG_DIR = tempfile.mkdtemp(prefix="fftconv-test-config-")
    os.environ["FFTCONV_CONFIG_DIR"] = _CONFIG_DIR
    os.environ.pop("FFTCONV_CONFIG", None)


def pytest_unconfigure(config):
    if _CONFIG_DIR is not None:
        shutil.rmtree(_CONFIG_DIR, ignore_errors=True)


@pytest.fixture
def gpu():
    """NumPy standing in for CuPy (``device_standin``), installed for the test."""
    from device_standin import standin_modules

    from fftconv.backends import cupy_backend

    modules = standin_modules()
    cupy_backend.install(modules)
    yield modules
    cupy_backend.install(None)
