"""Weights taken from tfc layers with ``get_weights()`` load unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden import RTOL_TFC, array, assert_close, rdft_cases

from fftconv import SignalConv1D

FILE = "rdft_weights_tfc.npz"
CASES = rdft_cases()


def _tfc_weights(case: dict) -> list[np.ndarray]:
    return [array(FILE, f"{case['id']}_w{j}") for j in range(case["n_weights"])]


def _loaded_layer(config: dict, case: dict) -> SignalConv1D:
    x = array(FILE, f"{case['id']}_x")
    layer = SignalConv1D(**config)
    layer.build(x.shape)
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in _tfc_weights(case)]
    layer.set_weights(_tfc_weights(case))
    return layer


def test_seven_cases():
    assert len(CASES) == 7


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_tfc_weights_give_tfc_output_and_kernel(case):
    cid = case["id"]
    layer = _loaded_layer(case["layer"], case)
    y_tfc = array(FILE, f"{cid}_y")
    assert_close(layer(array(FILE, f"{cid}_x")), y_tfc, RTOL_TFC)
    assert_close(layer.kernel, array(FILE, f"{cid}_kernel"), 1e-6)
    for ours, theirs in zip(layer.get_weights(), _tfc_weights(case), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_config_json_round_trip(case):
    cid = case["id"]
    x = array(FILE, f"{cid}_x")
    original = _loaded_layer(case["layer"], case)
    config = json.loads(json.dumps(original.get_config()))
    copy = _loaded_layer(SignalConv1D.from_config(config).get_config(), case)
    assert copy.get_config() == original.get_config()
    np.testing.assert_array_equal(copy(x), original(x))
    assert_close(copy(x), array(FILE, f"{cid}_y"), RTOL_TFC)

