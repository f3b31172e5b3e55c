"""Tests of fftconv.initializers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fftconv import initializers
from fftconv.initializers import (
    Constant,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Initializer,
    LecunNormal,
    LecunUniform,
    Ones,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
)

TRUNCATED_STDDEV = 0.87962566103423978

SNAKE_NAMES = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
}
ALL_CLASSES = list(SNAKE_NAMES.values())
RANDOM_CLASSES = ALL_CLASSES[3:]


@pytest.mark.parametrize("cls", ALL_CLASSES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (5, 3, 2), [2, 3, 4, 5]])
@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32])
def test_shapes_and_dtypes(cls: type[Initializer], shape: tuple[int, ...], dtype: object) -> None:
    out = cls()(shape, dtype)
    assert isinstance(out, np.ndarray)
    assert out.shape == tuple(shape)
    assert out.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(out))


def test_default_dtype_is_float32() -> None:
    assert Zeros()((2,)).dtype == np.float32
    assert VarianceScaling()((3, 2, 2)).dtype == np.float32


def test_zero_size_shapes() -> None:
    for cls in ALL_CLASSES:
        assert cls()((0, 3, 2)).shape == (0, 3, 2)


def test_deterministic_values() -> None:
    np.testing.assert_array_equal(Zeros()((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(Ones()((2, 3), "float64"), np.ones((2, 3)))
    np.testing.assert_array_equal(Constant(2.5)((4,)), np.full(4, 2.5, np.float32))
    assert Zeros()((2,), "int32").dtype == np.int32
    assert Ones()((2,), bool).dtype == np.bool_


@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_seed_reproducibility(cls: type[Initializer]) -> None:
    a, b = cls(seed=42), cls(seed=42)
    first = a((4, 3, 5))
    np.testing.assert_array_equal(first, b((4, 3, 5)))
    # Successive calls draw fresh values from the initializer's own generator.
    second = a((4, 3, 5))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, b((4, 3, 5)))
    assert not np.array_equal(cls(seed=1)((4, 3, 5)), cls(seed=2)((4, 3, 5)))


def test_unseeded_initializers_differ() -> None:
    assert not np.array_equal(RandomNormal()((100,)), RandomNormal()((100,)))


def test_random_normal_and_uniform_statistics() -> None:
    x = RandomNormal(mean=1.0, stddev=0.5, seed=0)((200_000,), "float64")
    assert abs(x.mean() - 1.0) < 0.01
    assert abs(x.std() - 0.5) < 0.01
    u = RandomUniform(minval=-1.0, maxval=3.0, seed=0)((200_000,), "float64")
    assert u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 0.02


def test_truncated_normal_bounds_and_statistics() -> None:
    x = TruncatedNormal(mean=2.0, stddev=0.1, seed=0)((200_000,), "float64")
    assert np.all(np.abs(x - 2.0) <= 0.2)
    assert abs(x.std() - 0.1 * TRUNCATED_STDDEV) < 0.002


@pytest.mark.parametrize(
    ("shape", "fan_in", "fan_out"),
    [
        ((5, 64, 512), 320, 2560),
        ((64, 32), 64, 32),
        ((1000,), 1000, 1000),
        ((3, 4, 8, 16), 96, 192),
    ],
)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling_truncated_normal_statistics(
    shape: tuple[int, ...], fan_in: int, fan_out: int, mode: str
) -> None:
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    x = VarianceScaling(scale=2.0, mode=mode, seed=0)(shape, "float64")
    expected = math.sqrt(2.0 / fan)
    assert abs(x.std() - expected) < 0.05 * expected
    assert np.all(np.abs(x) <= 2 * expected / TRUNCATED_STDDEV)


def test_variance_scaling_default_conv_kernel() -> None:
    # Kernel (K, C_in, filters): fan_in = K * C_in.
    x = VarianceScaling(seed=3)((5, 64, 512))
    expected = math.sqrt(1.0 / 320)
    assert abs(x.std() - expected) < 0.05 * expected
    assert np.abs(x).max() <= 2 * expected / TRUNCATED_STDDEV


def test_variance_scaling_other_distributions() -> None:
    shape = (5, 64, 512)
    expected = math.sqrt(1.0 / 320)
    x = VarianceScaling(distribution="untruncated_normal", seed=0)(shape, "float64")
    assert abs(x.std() - expected) < 0.05 * expected
    assert np.abs(x).max() > 2 * expected / TRUNCATED_STDDEV  # not truncated
    u = VarianceScaling(distribution="uniform", seed=0)(shape, "float64")
    limit = math.sqrt(3.0 / 320)
    assert np.all(np.abs(u) <= limit)
    assert abs(u.std() - expected) < 0.05 * expected


def test_variance_scaling_normal_alias_and_case() -> None:
    assert VarianceScaling(distribution="normal").distribution == "truncated_normal"
    assert VarianceScaling(distribution="Uniform").distribution == "uniform"
    assert VarianceScaling(distribution="normal").get_config()["distribution"] == (
        "truncated_normal"
    )


@pytest.mark.parametrize(
    ("cls", "scale", "mode", "distribution"),
    [
        (GlorotUniform, 1.0, "fan_avg", "uniform"),
        (GlorotNormal, 1.0, "fan_avg", "truncated_normal"),
        (HeNormal, 2.0, "fan_in", "truncated_normal"),
        (HeUniform, 2.0, "fan_in", "uniform"),
        (LecunNormal, 1.0, "fan_in", "truncated_normal"),
        (LecunUniform, 1.0, "fan_in", "uniform"),
    ],
)
def test_presets(cls: type[VarianceScaling], scale: float, mode: str, distribution: str) -> None:
    init = cls(seed=5)
    assert (init.scale, init.mode, init.distribution) == (scale, mode, distribution)
    assert init.get_config() == {"seed": 5}
    general = VarianceScaling(scale, mode, distribution, seed=5)
    np.testing.assert_array_equal(init((3, 8, 4)), general((3, 8, 4)))


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"scale": 0.0}, ValueError, "`scale`"),
        ({"scale": -1.0}, ValueError, "`scale`"),
        ({"scale": "1"}, TypeError, "`scale`"),
        ({"mode": "fan_sum"}, ValueError, "`mode`"),
        ({"mode": "FAN_IN"}, ValueError, "`mode`"),
        ({"distribution": "gamma"}, ValueError, "`distribution`"),
        ({"distribution": None}, ValueError, "`distribution`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"seed": 1.5}, TypeError, "`seed`"),
        ({"seed": True}, TypeError, "`seed`"),
    ],
)
def test_variance_scaling_validation(kwargs: dict, error: type, argument: str) -> None:
    with pytest.raises(error, match=argument):
        VarianceScaling(**kwargs)


def test_variance_scaling_messages_list_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"\['fan_in', 'fan_out', 'fan_avg'\], got 'fan_sum'"):
        VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match=r"'truncated_normal'.*'uniform'.*got 'gamma'"):
        VarianceScaling(distribution="gamma")


def test_other_constructor_validation() -> None:
    with pytest.raises(ValueError, match="`stddev`"):
        RandomNormal(stddev=-1.0)
    with pytest.raises(ValueError, match="`stddev`"):
        TruncatedNormal(stddev=-0.1)
    with pytest.raises(ValueError, match="`maxval`"):
        RandomUniform(minval=1.0, maxval=0.0)
    with pytest.raises(TypeError, match="`value`"):
        Constant("a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`value`"):
        Constant(float("nan"))
    with pytest.raises(TypeError, match="`mean`"):
        RandomNormal(mean=None)  # type: ignore[arg-type]


def test_call_validation() -> None:
    with pytest.raises(TypeError, match="`shape`"):
        Zeros()(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`shape`"):
        RandomNormal()((2.0, 3))
    with pytest.raises(ValueError, match="`shape`"):
        Ones()((2, -3))
    with pytest.raises(ValueError, match="`dtype`"):
        RandomNormal()((2,), "int32")
    with pytest.raises(ValueError, match="`dtype`"):
        Zeros()((2,), "U3")
    with pytest.raises(TypeError, match="`dtype`"):
        HeNormal()((2,), "nonsense")
    with pytest.raises(TypeError, match="`dtype`"):
        HeNormal()((2,), None)


@pytest.mark.parametrize("name", list(SNAKE_NAMES))
def test_get_snake_case_and_class_names(name: str) -> None:
    cls = SNAKE_NAMES[name]
    assert type(initializers.get(name)) is cls
    assert type(initializers.get(cls.__name__)) is cls


def test_get_instances_callables_and_classes() -> None:
    init = HeUniform(seed=1)
    assert initializers.get(init) is init

    def custom(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
        return np.full(shape, 3.0, dtype)

    assert initializers.get(custom) is custom
    assert type(initializers.get(GlorotNormal)) is GlorotNormal


def test_get_dict_forms() -> None:
    keras_config = {
        "module": "keras.initializers",
        "class_name": "VarianceScaling",
        "config": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal", "seed": 3},
        "registered_name": None,
    }
    init = initializers.get(keras_config)
    assert isinstance(init, VarianceScaling)
    assert init.get_config() == keras_config["config"]
    np.testing.assert_array_equal(init((3, 4, 5)), VarianceScaling(seed=3)((3, 4, 5)))
    normal = initializers.get({"class_name": "RandomNormal", "config": {"stddev": 0.5}})
    assert isinstance(normal, RandomNormal) and normal.stddev == 0.5
    assert isinstance(initializers.get({"class_name": "he_normal", "config": {}}), HeNormal)
    assert isinstance(initializers.get({"class_name": "Zeros"}), Zeros)


@pytest.mark.parametrize("init", [cls(seed=7) for cls in RANDOM_CLASSES] + [Zeros(), Constant(4)])
def test_serialize_round_trip_through_json(init: Initializer) -> None:
    data = json.loads(json.dumps(initializers.serialize(init)))
    assert data["class_name"] == type(init).__name__
    again = initializers.get(data)
    assert type(again) is type(init)
    assert again.get_config() == init.get_config()
    np.testing.assert_array_equal(
        again((2, 3, 4)), type(init).from_config(init.get_config())((2, 3, 4))
    )


def test_serialize_rejects_plain_callable() -> None:
    with pytest.raises(TypeError, match="get_config"):
        initializers.serialize(lambda shape, dtype="float32": np.zeros(shape, dtype))


def test_get_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"`bias_initializer` must be one of \['zeros'.*'foo'"):
        initializers.get("foo", "bias_initializer")
    with pytest.raises(ValueError, match="`kernel_initializer`"):
        initializers.get("glorot")
    with pytest.raises(TypeError, match="`kernel_initializer` must be"):
        initializers.get(3)
    with pytest.raises(TypeError, match="`kernel_initializer` must be"):
        initializers.get(None)
    with pytest.raises(TypeError, match="`kernel_initializer` must be"):
        initializers.get(float)
    with pytest.raises(TypeError, match="`kernel_initializer` must be"):
        initializers.get(Initializer)
    with pytest.raises(ValueError, match="`bias_initializer` class_name"):
        initializers.get({"class_name": "Orthogonal", "config": {}}, "bias_initializer")
    with pytest.raises(TypeError, match="`bias_initializer` must be a dict"):
        initializers.get({"config": {}}, "bias_initializer")
    with pytest.raises(TypeError, match=r"`kernel_initializer` config.*\['stdev'\]"):
        initializers.get({"class_name": "RandomNormal", "config": {"stdev": 1.0}})
    with pytest.raises(ValueError, match="`mode`"):
        initializers.get({"class_name": "VarianceScaling", "config": {"mode": "fan"}})


def test_repr() -> None:
    assert repr(Constant(2)) == "Constant(value=2.0)"
    assert repr(HeNormal(seed=1)) == "HeNormal(seed=1)"
