"""The float64 reference reproduces the tfc golden vectors.

``tests/data/signalconv1d_tfc.npz`` (see ``tests/data/README.md``) holds
``SignalConv1D`` outputs from tensorflow_compression together with an
independent float64 output ``y_ref``. These tests check that
``reference_signal_conv1d`` agrees with both, so that it can serve as the
ground truth for the other tests.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from reference import reference_output_width, reference_signal_conv1d

DATA = Path(__file__).parent / "data" / "signalconv1d_tfc.npz"

Y_REF_RTOL = 1e-10   # relative to max|y_ref|
Y_TFC_RTOL = 1e-4    # relative to max|y_tfc| (tfc ran in float32)


@functools.cache
def load_golden():
    """Return ``(arrays, cases)``: all npz arrays by key and the case configs."""
    with np.load(DATA, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    cases = [json.loads(str(s)) for s in arrays["configs"]]
    return arrays, cases


def _is_too_short(case):
    """An error case whose only fault is a valid input too short for output."""
    ref = case["reference"]
    return (ref["outcome"] == "error"
            and ref["error_type"] == "ValueError"
            and "too short" in ref["error_message"])


def normalise_layer(layer):
    """Map the spellings tfc accepts onto the reference's canonical arguments."""
    layer = dict(layer)
    layer["padding"] = layer["padding"].lower()
    for key in ("kernel_support", "strides_down", "strides_up"):
        value = layer[key]
        if isinstance(value, (list, tuple)):   # one-element list, e.g. [5]
            (value,) = value
        layer[key] = int(value)
    return layer


def reference_kwargs(layer):
    return dict(
        corr=layer["corr"],
        strides_down=layer["strides_down"],
        strides_up=layer["strides_up"],
        padding=layer["padding"],
        extra_pad_end=layer["extra_pad_end"],
        channel_separable=layer["channel_separable"],
        data_format=layer["data_format"],
    )


def case_inputs(cid):
    arrays, _ = load_golden()
    x = arrays[f"{cid}_x"]
    kernel = arrays[f"{cid}_kernel"]
    bias = arrays.get(f"{cid}_bias")
    return x, kernel, bias


_, _CASES = load_golden()
_BY_ID = {c["id"]: c for c in _CASES}
OUTPUT_IDS = [c["id"] for c in _CASES if c["reference"]["outcome"] == "output"]
TOO_SHORT_IDS = [c["id"] for c in _CASES if _is_too_short(c)]
SKIPPED_IDS = [c["id"] for c in _CASES
               if c["reference"]["outcome"] == "error" and not _is_too_short(c)]


def test_golden_file_partition():
    """Every case is either checked here or deliberately skipped."""
    assert len(_CASES) == 425
    assert len(OUTPUT_IDS) + len(TOO_SHORT_IDS) + len(SKIPPED_IDS) == 425
    # Cases whose arguments are invalid for reasons other than width (bad
    # names, rank, kernel_support/filters/strides out of range, channel or
    # bias mismatch) are not exercised against the reference.
    assert len(SKIPPED_IDS) == 13
    for cid in SKIPPED_IDS:
        assert _BY_ID[cid]["expected"]["outcome"] == "error"
        assert "invalid" in _BY_ID[cid]["tags"]
    for cid in TOO_SHORT_IDS:
        assert _BY_ID[cid]["expected"]["outcome"] == "error"
        assert normalise_layer(_BY_ID[cid]["layer"])["padding"] == "valid"


@pytest.mark.parametrize("cid", OUTPUT_IDS)
def test_reference_matches_golden_output(cid):
    arrays, _ = load_golden()
    case = _BY_ID[cid]
    layer = normalise_layer(case["layer"])
    x, kernel, bias = case_inputs(cid)
    assert kernel.shape[0] == layer["kernel_support"]
    assert kernel.shape[2] == layer["filters"]

    y = reference_signal_conv1d(x, kernel, bias, **reference_kwargs(layer))

    assert y.dtype == np.float64
    y_ref = arrays[f"{cid}_y_ref"]
    assert y.shape == y_ref.shape == tuple(case["reference"]["shape"])
    scale = np.max(np.abs(y_ref))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=Y_REF_RTOL * scale)

    key = f"{cid}_y_tfc"
    if key in arrays:
        y_tfc = arrays[key]
        assert y.shape == y_tfc.shape
        scale = np.max(np.abs(y_tfc))
        np.testing.assert_allclose(y, y_tfc, rtol=0, atol=Y_TFC_RTOL * scale)

    width_axis = 1 if layer["data_format"] == "channels_last" else 2
    width = x.shape[width_axis]
    assert reference_output_width(
        width, layer["kernel_support"], layer["strides_up"],
        layer["strides_down"], layer["padding"], layer["extra_pad_end"],
    ) == y.shape[width_axis]


@pytest.mark.parametrize("cid", TOO_SHORT_IDS)
def test_reference_rejects_too_short_valid_input(cid):
    case = _BY_ID[cid]
    layer = normalise_layer(case["layer"])
    x, kernel, bias = case_inputs(cid)
    width = x.shape[1 if layer["data_format"] == "channels_last" else 2]
    assert reference_output_width(
        width, layer["kernel_support"], layer["strides_up"],
        layer["strides_down"], layer["padding"], layer["extra_pad_end"],
    ) < 1
    with pytest.raises(ValueError):
        reference_signal_conv1d(x, kernel, bias, **reference_kwargs(layer))


def test_golden_coverage():
    """The checked cases span the argument space the reference claims."""
    layers = [normalise_layer(_BY_ID[cid]["layer"]) for cid in OUTPUT_IDS]
    assert {lay["padding"] for lay in layers} == {"valid", "same_zeros", "same_reflect"}
    assert {lay["corr"] for lay in layers} == {True, False}
    assert {lay["channel_separable"] for lay in layers} == {True, False}
    assert {lay["data_format"] for lay in layers} == {"channels_last", "channels_first"}
    assert {lay["extra_pad_end"] for lay in layers} == {None, True, False}
    assert max(lay["strides_up"] for lay in layers) > 1
    assert max(lay["strides_down"] for lay in layers) > 1
    assert any(lay["strides_up"] > 1 and lay["strides_down"] > 1 for lay in layers)
    assert {lay["kernel_support"] % 2 for lay in layers} == {0, 1}
