"""The layer against the vectors produced by the real tfc ``SignalConv1D``."""

from __future__ import annotations

import numpy as np
import pytest
from devices import backend_way_params, on_device
from golden import RTOL, RTOL_TFC, array, assert_close, signalconv_cases
from ways import WAYS

from fftconv import SignalConv1D

FILE = "signalconv1d_tfc.npz"
CASES = signalconv_cases()
OUTPUT_CASES = [c for c in CASES if c["expected"]["outcome"] == "output"]
ERROR_CASES = [c for c in CASES if c["expected"]["outcome"] == "error"]


def _layer(case: dict, **options) -> SignalConv1D:
    cid = case["id"]
    kw = dict(case["layer"], kernel_parameter=array(FILE, f"{cid}_kernel"), **options)
    bias = array(FILE, f"{cid}_bias")
    if bias is not None:
        kw["bias_parameter"] = bias
    return SignalConv1D(**kw)


def test_case_counts():
    assert len(CASES) == 425
    assert len(OUTPUT_CASES) + len(ERROR_CASES) == 425
    assert len(ERROR_CASES) >= 30


@pytest.mark.parametrize(("backend", "how"), backend_way_params(WAYS))
@pytest.mark.parametrize("case", OUTPUT_CASES, ids=lambda c: c["id"])
def test_float32_matches_expected(case, backend, how):
    cid = case["id"]
    with on_device(backend) as device:
        layer = _layer(case, method=how, backend=device.backend)
        y = device.get(layer(device.put(array(FILE, f"{cid}_x"))))
    assert y.dtype == np.float32
    if case["expected"]["source"] == "tfc":
        assert_close(y, array(FILE, f"{cid}_y_tfc"), RTOL_TFC)
    assert_close(y, array(FILE, f"{cid}_y_ref"), RTOL[np.dtype("float32")])


@pytest.mark.parametrize(("backend", "how"), backend_way_params(WAYS))
@pytest.mark.parametrize("case", OUTPUT_CASES, ids=lambda c: c["id"])
def test_float64_matches_reference(case, backend, how):
    cid = case["id"]
    with on_device(backend) as device:
        layer = _layer(case, method=how, dtype="float64", backend=device.backend)
        y = device.get(layer(device.put(array(FILE, f"{cid}_x").astype(np.float64))))
    assert y.dtype == np.float64
    assert_close(y, array(FILE, f"{cid}_y_ref"), RTOL[np.dtype("float64")])
    assert layer.compute_output_shape(case["x_shape"]) == y.shape


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c["id"])
def test_invalid_cases_raise(case):
    with pytest.raises((ValueError, TypeError)):
        _layer(case)(array(FILE, f"{case['id']}_x"))
