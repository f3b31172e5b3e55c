"""Tests of fftconv.regularizers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fftconv import regularizers
from fftconv.regularizers import L1, L1L2, L2, Regularizer

X = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -0.25]], np.float32)
ABS_SUM = 6.75
SQUARE_SUM = 14.3125


def test_penalty_values() -> None:
    assert L1()(X) == pytest.approx(0.01 * ABS_SUM, rel=1e-12)
    assert L1(0.5)(X) == pytest.approx(0.5 * ABS_SUM, rel=1e-12)
    assert L2()(X) == pytest.approx(0.01 * SQUARE_SUM, rel=1e-12)
    assert L2(l2=2)(X) == pytest.approx(2 * SQUARE_SUM, rel=1e-12)
    assert L1L2()(X) == 0.0
    assert L1L2(l1=0.1, l2=0.2)(X) == pytest.approx(0.1 * ABS_SUM + 0.2 * SQUARE_SUM, rel=1e-12)
    for regularizer in [L1(), L2(), L1L2(0.1, 0.1)]:
        assert type(regularizer(X)) is float


def test_penalty_computed_in_float64() -> None:
    x = np.full(100_000, 0.1, np.float16)
    expected = 0.01 * x.size * float(np.float16(0.1))
    assert L1()(x) == pytest.approx(expected, rel=1e-12)


def test_penalty_of_lists_scalars_and_integers() -> None:
    assert L1(1.0)([1, -2, 3]) == 6.0
    assert L2(1.0)(3) == 9.0
    assert L1L2(1.0, 1.0)(np.array([], np.float32)) == 0.0


def test_penalty_rejects_non_real_arrays() -> None:
    with pytest.raises(TypeError, match="`x`"):
        L1()(np.array([1j]))
    with pytest.raises(TypeError, match="`x`"):
        L2()(np.array(["a"]))


@pytest.mark.parametrize(
    ("factory", "error", "argument"),
    [
        (lambda: L1("0.1"), TypeError, "`l1`"),
        (lambda: L1(None), TypeError, "`l1`"),
        (lambda: L2(float("inf")), ValueError, "`l2`"),
        (lambda: L1L2(l1=float("nan")), ValueError, "`l1`"),
        (lambda: L1L2(l2=True), TypeError, "`l2`"),
    ],
)
def test_constructor_validation(factory, error: type, argument: str) -> None:
    with pytest.raises(error, match=argument):
        factory()


def test_get_none_instances_and_callables() -> None:
    assert regularizers.get(None) is None
    regularizer = L2(0.3)
    assert regularizers.get(regularizer) is regularizer

    def custom(x: np.ndarray) -> float:
        return float(np.max(np.abs(x)))

    assert regularizers.get(custom) is custom
    assert isinstance(regularizers.get(L1L2), L1L2)


@pytest.mark.parametrize(
    ("name", "cls", "config"),
    [
        ("l1", L1, {"l1": 0.01}),
        ("l2", L2, {"l2": 0.01}),
        ("l1_l2", L1L2, {"l1": 0.01, "l2": 0.01}),
        ("L1", L1, {"l1": 0.01}),
        ("L2", L2, {"l2": 0.01}),
        ("L1L2", L1L2, {"l1": 0.0, "l2": 0.0}),
    ],
)
def test_get_names(name: str, cls: type[Regularizer], config: dict) -> None:
    regularizer = regularizers.get(name)
    assert type(regularizer) is cls
    assert regularizer.get_config() == config


def test_get_dicts() -> None:
    keras = {
        "module": "keras.regularizers",
        "class_name": "L1L2",
        "config": {"l1": 0.001, "l2": 0.002},
        "registered_name": None,
    }
    regularizer = regularizers.get(keras, "bias_regularizer")
    assert isinstance(regularizer, L1L2)
    assert regularizer.get_config() == {"l1": 0.001, "l2": 0.002}
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.5}}).l2 == 0.5
    assert regularizers.get({"class_name": "l1"}).l1 == 0.01


@pytest.mark.parametrize("regularizer", [L1(0.2), L2(0.3), L1L2(0.1, 0.4), L1L2()])
def test_serialize_round_trip_through_json(regularizer: Regularizer) -> None:
    data = json.loads(json.dumps(regularizers.serialize(regularizer)))
    assert data == {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
    again = regularizers.get(data)
    assert type(again) is type(regularizer)
    assert again.get_config() == regularizer.get_config()
    assert again(X) == regularizer(X)


def test_serialize_none_and_plain_callables() -> None:
    assert regularizers.serialize(None) is None
    with pytest.raises(TypeError, match="get_config"):
        regularizers.serialize(lambda x: 0.0)


def test_get_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"`kernel_regularizer` must be None.*\['l1'.*got 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="`bias_regularizer`"):
        regularizers.get("L1_L2", "bias_regularizer")
    for bad in [0.01, ["l1"], Regularizer, int]:
        with pytest.raises(TypeError, match="`bias_regularizer` must be None"):
            regularizers.get(bad, "bias_regularizer")
    with pytest.raises(ValueError, match="`kernel_regularizer` class_name.*'Orthogonal'"):
        regularizers.get({"class_name": "Orthogonal", "config": {}})
    with pytest.raises(TypeError, match="`kernel_regularizer` must be a dict"):
        regularizers.get({"class_name": "L1", "config": [0.1]})
    with pytest.raises(TypeError, match=r"`kernel_regularizer` config for L1 .*\['l2'\]"):
        regularizers.get({"class_name": "L1", "config": {"l2": 0.1}})
    with pytest.raises(TypeError, match="`l1`"):
        regularizers.get({"class_name": "L1", "config": {"l1": "x"}})


def test_repr() -> None:
    assert repr(L1L2(0.1, 0.2)) == "L1L2(l1=0.1, l2=0.2)"
