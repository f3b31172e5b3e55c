"""Loading the tfc golden vectors and the shared numerical tolerances."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"

#: Tolerances relative to max|y_expected|: float64 paths, float32 paths.
RTOL = {np.dtype("float64"): 1e-10, np.dtype("float32"): 1e-5}
#: Against tfc's own float32 output (it differs from the float64 truth by up to 1.4e-6).
RTOL_TFC = 1e-4


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Assert equal shapes and ``max|actual - expected| <= rtol * max(1, max|expected|)``."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    err = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:g} * {scale:.3g}"


@cache
def signalconv_cases() -> tuple[dict, ...]:
    z = _archive("signalconv1d_tfc.npz")
    return tuple(json.loads(str(s)) for s in z["configs"])


@cache
def rdft_cases() -> tuple[dict, ...]:
    z = _archive("rdft_weights_tfc.npz")
    return tuple(json.loads(str(s)) for s in z["configs"])


@cache
def _archive(name: str):
    return np.load(DATA / name)


def array(name: str, key: str) -> np.ndarray | None:
    """Array `key` of archive `name`, or None if absent."""
    z = _archive(name)
    return z[key] if key in z.files else None
