"""Tests of fftconv.parameters: RDFTParameter, VariableParameter and their serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fftconv.parameters import (
    RDFTParameter,
    VariableParameter,
    deserialize_parameter,
    serialize_parameter,
)

DATA = Path(__file__).parent / "data" / "rdft_weights_tfc.npz"

SUPPORTS = [1, 2, 3, 4, 5, 8, 9, 16, 33]


def _kernel(support: int, channels: int = 3, filters: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((support, channels, filters))


@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-6), ("float64", 1e-12)])
def test_rdft_round_trip(support: int, dtype: str, tol: float) -> None:
    kernel = _kernel(support).astype(dtype)
    p = RDFTParameter(kernel, dtype=dtype)
    out = p()
    assert out.shape == kernel.shape
    assert out.dtype == np.dtype(dtype)
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, kernel, rtol=0, atol=tol)


@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rdft_stored_spectrum_matches_formula(support: int, dtype: str) -> None:
    kernel = _kernel(support, seed=1)
    p = RDFTParameter(kernel, dtype=dtype)
    expected = np.fft.rfft(kernel.transpose(1, 2, 0), axis=-1) / np.sqrt(support)
    assert p.real.shape == p.imag.shape == (3, 2, support // 2 + 1)
    assert p.real.dtype == p.imag.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(p.real, expected.real.astype(dtype))
    np.testing.assert_array_equal(p.imag, expected.imag.astype(dtype))


def test_rdft_is_orthonormal() -> None:
    kernel = _kernel(8)
    p = RDFTParameter(kernel, dtype="float64")
    # Parseval for the real DFT: DC and Nyquist bins count once, the others twice.
    weights = np.array([1, 2, 2, 2, 1])
    energy = ((p.real**2 + p.imag**2) * weights).sum(axis=-1)
    np.testing.assert_allclose(energy, (kernel**2).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("support", [2, 4])
def test_rdft_ignores_imag_of_dc_and_nyquist(support: int) -> None:
    p = RDFTParameter(_kernel(support), dtype="float64")
    before = p()
    imag, real = p.get_weights()
    imag[..., 0] = 5.0
    imag[..., -1] = -3.0
    p.set_weights([imag, real])
    np.testing.assert_allclose(p(), before, atol=1e-12)


def test_rdft_zeros_from_shape() -> None:
    p = RDFTParameter(None, shape=(5, 3, 4))
    assert p.shape == (5, 3, 4)
    assert p.dtype == np.float32
    assert p.name == "kernel"
    np.testing.assert_array_equal(p(), np.zeros((5, 3, 4), np.float32))
    assert [w.shape for w in p.get_weights()] == [(3, 4, 3), (3, 4, 3)]


def test_rdft_shape_must_match_initial_value() -> None:
    RDFTParameter(_kernel(4), shape=[4, 3, 2])
    with pytest.raises(ValueError, match="`shape`"):
        RDFTParameter(_kernel(4), shape=(5, 3, 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"initial_value": None}, ValueError, "`shape`"),
        ({"initial_value": np.zeros((3, 2))}, ValueError, "`initial_value`"),
        ({"initial_value": np.zeros((0, 2, 2))}, ValueError, "`initial_value`"),
        ({"initial_value": np.zeros((2, 2, 2), complex)}, TypeError, "`initial_value`"),
        ({"initial_value": [[["a"]]]}, TypeError, "`initial_value`"),
        ({"initial_value": None, "shape": (0, 1, 1)}, ValueError, "`shape`"),
        ({"initial_value": None, "shape": (1.0, 1, 1)}, TypeError, "`shape`"),
        ({"initial_value": None, "shape": 5}, TypeError, "`shape`"),
        ({"initial_value": None, "shape": (2, -1, 1)}, ValueError, "`shape`"),
        ({"initial_value": np.zeros((2, 1, 1)), "dtype": "int32"}, ValueError, "`dtype`"),
        ({"initial_value": np.zeros((2, 1, 1)), "dtype": "nonsense"}, TypeError, "`dtype`"),
        ({"initial_value": np.zeros((2, 1, 1)), "dtype": None}, TypeError, "`dtype`"),
        ({"initial_value": np.zeros((2, 1, 1)), "name": 3}, TypeError, "`name`"),
    ],
)
def test_rdft_constructor_errors(kwargs: dict, error: type, argument: str) -> None:
    with pytest.raises(error, match=argument):
        RDFTParameter(**kwargs)


def test_rdft_get_set_weights_round_trip() -> None:
    a = RDFTParameter(_kernel(7, seed=2))
    b = RDFTParameter(None, shape=(7, 3, 2))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(b.real, a.real)
    np.testing.assert_array_equal(b.imag, a.imag)
    np.testing.assert_array_equal(b(), a())


def test_rdft_weights_are_copies_and_state_is_read_only() -> None:
    p = RDFTParameter(_kernel(4))
    imag, real = p.get_weights()
    real[...] = 7.0
    assert not np.any(p.real == 7.0)
    with pytest.raises(ValueError):
        p.real[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        p.imag[0, 0, 0] = 1.0


def test_rdft_set_weights_casts_and_copies() -> None:
    p = RDFTParameter(None, shape=(4, 1, 1))
    imag = np.ones((1, 1, 3))
    real = np.arange(3).reshape(1, 1, 3)
    p.set_weights((imag, real))
    assert p.real.dtype == p.imag.dtype == np.float32
    imag[...] = 9.0
    np.testing.assert_array_equal(p.imag, np.ones((1, 1, 3), np.float32))
    np.testing.assert_array_equal(p.real, [[[0.0, 1.0, 2.0]]])


@pytest.mark.parametrize(
    "weights",
    [
        np.zeros((2, 3, 2, 3)),
        [np.zeros((3, 2, 3))],
        [np.zeros((3, 2, 3))] * 3,
        [np.zeros((3, 2, 3)), np.zeros((3, 2, 4))],
        [np.zeros((2, 3, 3)), np.zeros((3, 2, 3))],
        None,
    ],
)
def test_rdft_set_weights_validation(weights: object) -> None:
    p = RDFTParameter(None, shape=(5, 3, 2))
    with pytest.raises(ValueError, match="`weights`"):
        p.set_weights(weights)  # type: ignore[arg-type]
    assert p.version == 0


@pytest.mark.parametrize(
    "weights",
    [[np.zeros((3, 2, 3)), np.zeros((3, 2, 3), complex)], [np.zeros((3, 2, 3)), "abc"]],
)
def test_rdft_set_weights_rejects_non_real(weights: object) -> None:
    p = RDFTParameter(None, shape=(5, 3, 2))
    with pytest.raises(TypeError, match="`weights`"):
        p.set_weights(weights)  # type: ignore[arg-type]
    assert p.version == 0


def test_rdft_set_weights_message_names_expected_shapes() -> None:
    p = RDFTParameter(None, shape=(5, 3, 2))
    with pytest.raises(ValueError, match=r"`weights`.*imag \(3, 2, 3\), real \(3, 2, 3\)"):
        p.set_weights([np.zeros((3, 2, 2)), np.zeros((3, 2, 2))])


def test_rdft_assign() -> None:
    p = RDFTParameter(None, shape=(6, 2, 2), dtype="float64")
    kernel = _kernel(6, channels=2)
    p.assign(kernel)
    np.testing.assert_allclose(p(), kernel, atol=1e-12)
    with pytest.raises(ValueError, match="`kernel` must have shape"):
        p.assign(np.zeros((5, 2, 2)))
    with pytest.raises(TypeError, match="`kernel`"):
        p.assign(np.zeros((6, 2, 2), complex))


def test_version_increments_on_every_change() -> None:
    for p, value in [
        (RDFTParameter(None, shape=(3, 1, 1)), np.ones((3, 1, 1))),
        (VariableParameter(None, shape=(4,)), np.ones(4)),
    ]:
        assert p.version == 0
        p.assign(value)
        assert p.version == 1
        p.set_weights(p.get_weights())
        assert p.version == 2
        p.assign(value)
        assert p.version == 3
        p()
        p.get_weights()
        p.get_config()
        assert p.version == 3


def test_rdft_loads_tfc_weights() -> None:
    data = np.load(DATA)
    checked = 0
    for entry in data["configs"]:
        case = json.loads(str(entry))
        if case["layer"].get("kernel_parameter", "rdft") != "rdft":
            continue
        names = case["weight_names"]
        weights = {name: data[f"{case['id']}_w{j}"] for j, name in enumerate(names)}
        kernel = data[f"{case['id']}_kernel"]
        tfc_config = case["tfc_config"]["kernel_parameter"]
        p = deserialize_parameter(tfc_config, argument="kernel_parameter")
        assert isinstance(p, RDFTParameter)
        assert p.shape == kernel.shape
        p.set_weights([weights["kernel_imag"], weights["kernel_real"]])
        np.testing.assert_allclose(p(), kernel, rtol=0, atol=1e-6)
        # Weights computed from the time-domain kernel agree with tfc's stored ones.
        q = RDFTParameter(kernel)
        imag, real = q.get_weights()
        np.testing.assert_allclose(real, weights["kernel_real"], atol=1e-6)
        np.testing.assert_allclose(imag, weights["kernel_imag"], atol=1e-6)
        checked += 1
    assert checked == 6


@pytest.mark.parametrize("shape", [(), (4,), (5, 3, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_variable_parameter(shape: tuple[int, ...], dtype: str) -> None:
    value = np.random.default_rng(3).standard_normal(shape)
    p = VariableParameter(value, name="bias", dtype=dtype)
    out = p()
    assert out.shape == shape == p.shape
    assert out.dtype == np.dtype(dtype) == p.dtype
    np.testing.assert_array_equal(out, value.astype(dtype))
    out[...] = 0.0
    np.testing.assert_array_equal(p(), value.astype(dtype))
    [w] = p.get_weights()
    np.testing.assert_array_equal(w, value.astype(dtype))


def test_variable_parameter_zeros_and_weights() -> None:
    p = VariableParameter(None, shape=[3])
    np.testing.assert_array_equal(p(), np.zeros(3, np.float32))
    p.set_weights([np.array([1, 2, 3])])
    np.testing.assert_array_equal(p(), [1.0, 2.0, 3.0])
    assert p.version == 1
    for bad in [np.array([1.0, 2.0, 3.0]), [np.zeros(4)], [np.zeros(3)] * 2]:
        with pytest.raises(ValueError, match="`weights`"):
            p.set_weights(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`value` must have shape"):
        p.assign(np.zeros(2))
    with pytest.raises(ValueError, match="`shape`"):
        VariableParameter(np.zeros(3), shape=(4,))
    with pytest.raises(ValueError, match="`shape`"):
        VariableParameter(None)
    assert p.version == 1


@pytest.mark.parametrize(
    "p",
    [
        RDFTParameter(None, shape=(5, 3, 4)),
        RDFTParameter(np.ones((2, 1, 1)), name="k2", dtype="float64"),
        VariableParameter(None, name="bias", shape=(7,)),
        VariableParameter(np.ones((3, 2, 1)), dtype="float16"),
    ],
)
def test_config_round_trip_through_json(p: RDFTParameter | VariableParameter) -> None:
    config = p.get_config()
    assert set(config) == {"name", "shape", "dtype"}
    text = json.dumps(serialize_parameter(p))
    q = deserialize_parameter(json.loads(text))
    assert type(q) is type(p)
    assert q.get_config() == config
    assert (q.name, q.shape, q.dtype) == (p.name, p.shape, p.dtype)
    np.testing.assert_array_equal(q(), np.zeros(p.shape, p.dtype))
    assert type(p).from_config(config).get_config() == config


def test_from_config_validation() -> None:
    with pytest.raises(ValueError, match="`config` has unknown keys"):
        RDFTParameter.from_config({"name": "k", "shape": [2, 1, 1], "bogus": 1})
    with pytest.raises(TypeError, match="`config`"):
        VariableParameter.from_config([("shape", [2])])  # type: ignore[arg-type]


def test_serialization_errors() -> None:
    with pytest.raises(TypeError, match="`parameter`"):
        serialize_parameter(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`kernel_parameter` class_name.*'Foo'"):
        deserialize_parameter({"class_name": "Foo", "config": {}}, argument="kernel_parameter")
    with pytest.raises(TypeError, match="`parameter`"):
        deserialize_parameter("rdft")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`parameter`"):
        deserialize_parameter({"class_name": "RDFTParameter"})


def test_repr() -> None:
    text = repr(RDFTParameter(None, shape=(5, 3, 4)))
    assert text == "RDFTParameter(name='kernel', shape=(5, 3, 4), dtype=float32, version=0)"
    assert repr(VariableParameter(None, name="bias", shape=(2,))).startswith("VariableParameter(")
