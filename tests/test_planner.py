"""Planner, configuration files, plan and spectrum caching."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from fftconv import SignalConv1D
from fftconv import engine as engine_module
from fftconv.config import device_config, load_config, read_config
from fftconv.paths.fft import chunk_blocks
from fftconv.planner import Problem, fast_lengths, fft_cost, plan, spectra_bytes
from fftconv.spec import ConvSpec

DEFAULT = load_config()
F32 = np.dtype("float32")


def test_fast_lengths_are_7_smooth():
    n = fast_lengths(10_000)
    assert n[0] == 1 and n[-1] <= 10_000 and np.all(np.diff(n) > 0)
    for v in n:
        for p in (2, 3, 5, 7):
            while v % p == 0:
                v //= p
        assert v == 1
    assert 11 not in n and 13 not in n and 2 ** 13 in n and 3 * 5 * 7 * 8 in n


def test_plan_is_immutable_and_printable():
    p = plan(ConvSpec(8191), (4, 1, 1_048_576), F32, "pyfftw", DEFAULT, filters=1, threads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.path = "direct"  # type: ignore[misc]
    text = str(p)
    assert "Plan: fft" in text and "direct" in text and "candidates" in text
    assert p.n_fft in fast_lengths(1 << 24) and p.block == p.n_fft - 8191 + 1
    assert p.candidates[0].cost_ns == min(c.cost_ns for c in p.candidates)
    assert p == plan(ConvSpec(8191), (4, 1, 1_048_576), F32, "pyfftw", DEFAULT, filters=1,
                     threads=2)


@pytest.mark.parametrize(("spec", "shape", "filters", "path"), [
    (ConvSpec(8191), (4, 1, 1_048_576), 1, "fft"),  # long FIR
    (ConvSpec(3, corr=True, padding="same_zeros", extra_pad_end=True), (8, 64, 4096), 64,
     "direct"),  # short kernel, many channels
])
def test_planner_picks_the_obvious_path(spec, shape, filters, path):
    assert plan(spec, shape, F32, "pyfftw", DEFAULT, filters=filters).path == path


def test_forced_methods():
    spec = ConvSpec(9)
    assert plan(spec, (1, 1, 1000), F32, "numpy", DEFAULT, filters=1, method="fft").path == "fft"
    assert plan(ConvSpec(8191), (1, 1, 100_000), F32, "numpy", DEFAULT, filters=1,
                method="direct").path == "direct"


# -- configuration files -------------------------------------------------------

def _write(tmp_path, text):
    path = tmp_path / "model.toml"
    path.write_text(text)
    return path


def _set(text, key, value):
    """`text` with the line of `key` (a TOML key) replaced by ``key = value``."""
    edited, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    assert count == 1, key
    return edited


def _slow_fft_text():
    """The default file with every FFT transform 1000 ns per N log2 N."""
    text = _set(DEFAULT.to_toml(), "ns_per_nlogn", "1000.0")
    return _set(text, "large_ns_per_nlogn", "1000.0")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: _set(t, "radix_penalty", "1.1\nbogus = 3"), "unknown key 'fft.bogus'"),
    (lambda t: re.sub(r"(?m)^ns_per_mac = .*\n", "", t), "missing key 'direct.ns_per_mac'"),
    (lambda t: _set(t, "fft_bytes", '"big"'), "key 'memory.fft_bytes' must be of type int"),
    (lambda t: _set(t, "planner_effort", '"FAST"'),
     "key 'pyfftw.planner_effort' must be one of"),
    (lambda t: _set(t, "planning_timelimit", '"1s"'),
     "key 'pyfftw.planning_timelimit' must be of type float"),
    (lambda t: _set(t, "planning_timelimit", "-0.5"),
     "key 'pyfftw.planning_timelimit' must be a finite number >= 0, got -0.5"),
    (lambda t: t + "\n[gpu]\nx = 1\n", r"unknown section \[gpu\]"),
    (lambda t: _set(t, "ns_per_nlogn", "-1.0"),
     "key 'fft.ns_per_nlogn' must be a finite number > 0, got -1.0"),
    (lambda t: t.replace("[fft]", "[fft"), "not valid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, edit, message):
    path = _write(tmp_path, edit(DEFAULT.to_toml()))
    with pytest.raises(ValueError, match=message) as info:
        read_config(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=message):
        SignalConv1D(1, 3, config=str(path))


def test_config_round_trip_and_precedence(tmp_path, monkeypatch):
    assert read_config(_write(tmp_path, DEFAULT.to_toml())).fft == DEFAULT.fft
    path = _write(tmp_path, _slow_fft_text())
    monkeypatch.setenv("FFTCONV_CONFIG", str(path))
    assert load_config().fft.ns_per_nlogn == 1000.0
    assert load_config(DEFAULT) is DEFAULT  # the argument wins over the environment
    layer = SignalConv1D(1, 8191, kernel_parameter=np.ones((8191, 1, 1)))
    assert layer.plan_for((1, 100_000, 1)).path == "direct"
    monkeypatch.delenv("FFTCONV_CONFIG")
    assert load_config() == DEFAULT


def test_missing_config_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("ns_per_nlogn", "nan", "key 'fft.ns_per_nlogn' must be a finite number > 0, got nan."),
    ("ns_per_nlogn", "inf", "key 'fft.ns_per_nlogn' must be a finite number > 0, got inf."),
    ("ns_per_nlogn", "0.0", "key 'fft.ns_per_nlogn' must be a finite number > 0, got 0.0."),
    ("radix_penalty", "0", "key 'fft.radix_penalty' must be a finite number > 0"),
    ("large_ns_per_nlogn", "0.0", "key 'fft.large_ns_per_nlogn' must be a finite number > 0"),
    ("large_row_bytes", "-1", "key 'fft.large_row_bytes' must be an integer >= 0, got -1."),
    ("product_ns_per_mac", "nan", "key 'fft.product_ns_per_mac' must be a finite number > 0"),
    ("small_product_ns_per_mac", "0.0",
     "key 'fft.small_product_ns_per_mac' must be a finite number > 0"),
    ("float64_factor", "-inf", "key 'fft.float64_factor' must be a finite number > 0"),
    ("ns_per_mac", "0.0", "key 'direct.ns_per_mac' must be a finite number > 0"),
    ("gather_ns_per_byte", "+inf",
     "key 'direct.gather_ns_per_byte' must be a finite number >= 0, got inf."),
    ("call_overhead_ns", "nan", "key 'fft.call_overhead_ns' must be a finite number >= 0"),
    ("planning_timelimit", "inf",
     "key 'pyfftw.planning_timelimit' must be a finite number >= 0, got inf."),
    ("fft_ns_per_nlogn", "0.0", "key 'streaming.fft_ns_per_nlogn' must be a finite number > 0"),
    ("frame_overhead_ns", "nan", "key 'streaming.frame_overhead_ns' must be a finite number"),
    ("ns_per_nlogn", "1" + "0" * 400,
     "key 'fft.ns_per_nlogn' must be a finite number, got an integer too large"),
    ("max_fft_length", "8", "key 'fft.max_fft_length' must be an integer >= 16, got 8."),
    ("threads", "-1", "key 'pyfftw.threads' must be an integer >= 0, got -1."),
    ("fft_bytes", "0", "key 'memory.fft_bytes' must be an integer >= 1, got 0."),
])
def test_config_refuses_non_finite_and_out_of_range_values(tmp_path, key, value, message):
    # The first occurrence of a key name is edited: `call_overhead_ns` and
    # `ns_per_mac` exist in two sections.
    text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", DEFAULT.to_toml(), count=1)
    assert count == 1
    path = _write(tmp_path, text)
    for load in (read_config, load_config, lambda p: SignalConv1D(1, 3, config=str(p)),
                 lambda p: plan(ConvSpec(9), (1, 1, 100), F32, "numpy", str(p), filters=1)):
        with pytest.raises(ValueError) as info:
            load(path)
        assert str(info.value).startswith(f"{path}: {message}")


def test_config_ranges_allow_zero_overheads_and_no_time_limit(tmp_path):
    text = DEFAULT.to_toml()
    for key, zero in [("call_overhead_ns", "0.0"), ("gather_ns_per_byte", "0.0"),
                      ("planning_timelimit", "0.0"), ("threads", "0"),
                      ("block_overhead_ns", "0.0"), ("frame_overhead_ns", "0.0")]:
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {zero}", text)
    config = read_config(_write(tmp_path, text))
    assert config.fft.call_overhead_ns == config.direct.call_overhead_ns == 0.0
    assert config.pyfftw.planning_timelimit == 0.0 and config.pyfftw.threads == 0
    assert plan(ConvSpec(9), (1, 1, 100), F32, "numpy", config, filters=1).candidates


def test_shipped_default_config_is_valid():
    from importlib import resources

    config = read_config(str(resources.files("fftconv.configs").joinpath("default.toml")))
    assert config.fft.ns_per_nlogn > 0 and config.pyfftw.planning_timelimit > 0


def test_config_directory_is_a_value_error_naming_it(tmp_path):
    folder = tmp_path / "configs.toml"
    folder.mkdir()
    for load in (read_config, load_config):
        with pytest.raises(ValueError, match="cannot read the configuration file") as info:
            load(folder)
        assert str(info.value).startswith(f"{folder}: ")


def test_config_below_a_file_is_a_value_error_naming_it(tmp_path):
    path = _write(tmp_path, DEFAULT.to_toml()) / "child.toml"
    for load in (read_config, load_config):
        with pytest.raises(ValueError, match="cannot read the configuration file") as info:
            load(path)
        assert str(info.value).startswith(f"{path}: ")


def test_unreadable_config_is_a_value_error_naming_it(tmp_path, monkeypatch):
    # Tests run as root, who may read any file: the refusal is simulated.
    path = _write(tmp_path, DEFAULT.to_toml())
    real_open = type(path).open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "open", refuse)
    for load in (read_config, load_config):
        with pytest.raises(ValueError, match="Permission denied") as info:
            load(path)
        assert str(info.value) == (f"{path}: cannot read the configuration file: "
                                   "Permission denied.")


def test_config_that_is_not_utf8_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe[fft]\n")
    with pytest.raises(ValueError, match="not valid TOML: not UTF-8") as info:
        read_config(path)
    assert str(info.value).startswith(f"{path}: ")


# -- plan() arguments ----------------------------------------------------------

def _plan(**changes):
    arguments = {"spec": ConvSpec(9), "input_shape": (2, 3, 100), "dtype": F32,
                 "backend": "numpy", "config": DEFAULT, "filters": 4}
    arguments.update(changes)
    return plan(arguments.pop("spec"), arguments.pop("input_shape"), arguments.pop("dtype"),
                arguments.pop("backend"), arguments.pop("config"), **arguments)


def test_plan_accepts_a_config_path_or_none(tmp_path, monkeypatch):
    monkeypatch.delenv("FFTCONV_CONFIG", raising=False)
    expected = _plan()
    path = _write(tmp_path, DEFAULT.to_toml())
    assert _plan(config=str(path)) == expected
    assert _plan(config=path) == expected
    assert _plan(config=None) == expected
    slow_fft = _write(tmp_path, _slow_fft_text())
    assert _plan(input_shape=(4, 1, 1_048_576), spec=ConvSpec(8191), filters=1,
                 config=str(slow_fft)).path == "direct"


def test_plan_accepts_an_empty_batch_like_the_layer():
    assert _plan(input_shape=(0, 3, 100)).problem.batch == 0
    assert _plan(input_shape=np.array([2, 3, 100])) == _plan()


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"method": "magic"}, ValueError,
     r"`method` must be one of \('auto', 'direct', 'fft', 'direct-shifted', "
     r"'direct-windows'\), got 'magic'"),
    ({"input_shape": (2, 3, 5)}, ValueError,
     "`input_shape` width 5 is too short: padding='valid' with kernel_support=9, "
     "strides_up=1, extra_pad_end=False needs at least 9 samples"),
    ({"input_shape": (2, 3, 2), "spec": ConvSpec(9, strides_up=4)}, ValueError,
     "`input_shape` width 2 is too short.*needs at least 3 samples"),
    ({"input_shape": (2, 0, 100)}, ValueError, r"`input_shape` must be three integers"),
    ({"input_shape": (2, 3, 0)}, ValueError, r"`input_shape` must be three integers"),
    ({"input_shape": (-1, 3, 100)}, ValueError, r"`input_shape`.*got \(-1, 3, 100\)"),
    ({"input_shape": (2, 100)}, ValueError, r"`input_shape` must be three integers"),
    ({"input_shape": (2, 3.0, 100)}, TypeError, r"`input_shape` must be three integers"),
    ({"input_shape": (2, True, 100)}, TypeError, r"`input_shape` must be three integers"),
    ({"input_shape": (2, None, 100)}, TypeError, r"`input_shape` must be three integers"),
    ({"input_shape": "2,3,100"}, TypeError, r"`input_shape` must be three integers"),
    ({"input_shape": 100}, TypeError, r"`input_shape` must be three integers"),
    ({"dtype": "int32"}, ValueError, "`dtype` must be float32 or float64.*got 'int32'"),
    ({"dtype": np.complex64}, ValueError, "`dtype` must be float32 or float64"),
    ({"dtype": "no-such-type"}, TypeError, "`dtype` must be float32 or float64"),
    ({"dtype": None}, TypeError, "`dtype` must be float32 or float64.*got None"),
    ({"backend": "cuda"}, ValueError,
     r"`backend` must be one of \('auto', 'numpy', 'pyfftw', 'cupy'\)"),
    ({"filters": 0}, ValueError, "`filters` must be a positive integer"),
    ({"filters": 2.5}, TypeError, "`filters` must be a positive integer"),
    ({"threads": 0}, ValueError, "`threads` must be a positive integer"),
    ({"spec": 9}, TypeError, "`spec` must be a ConvSpec, got 9"),
    ({"config": 3}, TypeError, "`config` must be a Config, a path or None"),
    ({"config": "/nonexistent.toml"}, ValueError, "/nonexistent.toml: configuration file"),
])
def test_plan_validates_its_arguments(changes, error, message):
    with pytest.raises(error, match=message):
        _plan(**changes)


def test_plan_is_exported_and_validates():
    import fftconv

    assert fftconv.plan is plan
    with pytest.raises(ValueError, match="`method`"):
        fftconv.plan(ConvSpec(9), (1, 1, 100), "float32", "numpy", None, filters=1,
                     method="magic")


# -- caching -----------------------------------------------------------------

@pytest.mark.parametrize("method", ["fft", "direct"])
def test_second_call_does_no_planning_and_no_kernel_transform(method):
    layer = SignalConv1D(4, 64, corr=True, strides_up=2, padding="same_zeros", method=method)
    x = np.random.default_rng(0).standard_normal((2, 500, 3)).astype(np.float32)
    y1 = layer(x)
    made, computed = layer.engine.plans_made, layer.engine.spectra.computed
    assert made == 1 and computed >= 1
    y2 = layer(x)
    assert (layer.engine.plans_made, layer.engine.spectra.computed) == (made, computed)
    np.testing.assert_array_equal(y1, y2)
    layer(x[:, :400])  # a new shape plans again but reuses the spectra at the same length
    assert layer.engine.plans_made == 2
    # Updating the parameter invalidates the spectra.
    imag, real = layer.get_weights()
    layer.set_weights([imag, 2 * real])
    y3 = layer(x)
    assert layer.engine.spectra.computed > computed
    assert not np.allclose(y3, y1)


def test_rdft_kernel_not_evaluated_when_cached(monkeypatch):
    layer = SignalConv1D(2, 32, method="fft")
    x = np.ones((1, 100, 2), np.float32)
    layer(x)
    calls = []
    param = layer.kernel_parameter
    monkeypatch.setattr(type(param), "__call__", lambda self: calls.append(1) or None)
    layer(x)
    assert calls == []


def test_engine_keeps_a_bounded_number_of_plans(monkeypatch):
    monkeypatch.setattr(engine_module, "MAX_PLANS", 3)
    engine = engine_module.Engine(ConvSpec.from_arguments(5, True, 1, 1, "valid", None), 1)
    for width in (10, 11, 12, 10, 13):  # 10 used again: 11 is the oldest when 13 comes
        engine.plan_for((1, 1, width), F32)
    assert [key[0][2] for key in engine._plans] == [12, 10, 13]
    assert engine.plans_made == 4


def test_any_candidate_can_be_executed():
    """Plan.choose and Engine.execute run a candidate the planner did not pick."""
    spec = ConvSpec.from_arguments(33, True, 2, 1, "same_zeros", None)
    engine = engine_module.Engine(spec, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 500))
    kernel = rng.standard_normal((33, 2, 3))
    chosen = engine.plan_for(x.shape, x.dtype)
    outputs = []
    for candidate in chosen.candidates:
        other = chosen.choose(candidate)
        assert other.candidates[0] == candidate and set(other.candidates) == set(chosen.candidates)
        outputs.append(engine.execute(x, lambda: kernel, "k", other))
    assert {c.path for c in chosen.candidates} == {"direct", "fft"}
    for y in outputs[1:]:
        np.testing.assert_allclose(y, outputs[0], atol=1e-10)
    with pytest.raises(ValueError, match="n_fft"):
        chosen.choose(dataclasses.replace(chosen.candidates[0], path="fft", n_fft=8))


#: 12 -> 18 channels, 3658 taps: 26.5 MB of spectra at N = 30720, one block a chunk
#: there, 3 at 15360, 6 at 7680.
WIDE_LONG = Problem(batch=1, groups=1, in_channels=12, out_channels=18, kernel_length=3658,
                    outputs=400_096, itemsize=4)
WIDE_LONG_LENGTHS = np.array([7680, 15360, 30720])


def _chunks_of(p: Problem, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blocks per chunk and chunks of the call, at each FFT length in `n`."""
    per_chunk = np.array([chunk_blocks(p.batch, p.groups * p.in_channels,
                                       p.groups * p.out_channels, int(k), p.itemsize,
                                       DEFAULT.memory.fft_bytes) for k in n])
    blocks = np.ceil(p.outputs / (n - p.kernel_length + 1))
    return per_chunk, np.ceil(blocks / per_chunk)


def test_kernel_spectra_are_read_once_per_chunk_at_their_own_rate():
    p, n = WIDE_LONG, WIDE_LONG_LENGTHS
    base = fft_cost(p, DEFAULT, n)

    def cost_with(**changes: float) -> np.ndarray:
        config = dataclasses.replace(DEFAULT, fft=dataclasses.replace(DEFAULT.fft, **changes))
        return fft_cost(p, config, n)

    blocks = np.ceil(p.outputs / (n - p.kernel_length + 1))
    chunks = _chunks_of(p, n)[1]
    rate = DEFAULT.fft.spectra_ns_per_byte
    extra = cost_with(spectra_ns_per_byte=2 * rate) - base
    np.testing.assert_allclose(extra, chunks * spectra_bytes(p, n) * rate, rtol=1e-9)
    # The block copies' rate charges the samples copied, never the spectra.
    copied = 4 * (12 * n + 18 * (n - p.kernel_length + 1))
    extra = cost_with(ns_per_byte=2 * DEFAULT.fft.ns_per_byte) - base
    np.testing.assert_allclose(extra, blocks * copied * DEFAULT.fft.ns_per_byte, rtol=1e-9)
    # On a GPU both are the device's copy rate.
    gpu = device_config(DEFAULT, "cuda").fft
    assert gpu.spectra_ns_per_byte == gpu.ns_per_byte == DEFAULT.cupy.copy_ns_per_byte


def test_gemms_of_few_columns_cost_as_many_as_the_devices_minimum(monkeypatch):
    import fftconv.planner as planner_module
    from fftconv.backends.cpu import CPU_TRAITS

    p, n = WIDE_LONG, WIDE_LONG_LENGTHS
    per_chunk, chunks = _chunks_of(p, n)
    assert per_chunk.tolist() == [6, 3, 1]  # GEMMs of 6, 3 and 1 columns
    charged = fft_cost(p, DEFAULT, n)
    monkeypatch.setattr(planner_module, "device_traits",
                        lambda kind: dataclasses.replace(CPU_TRAITS, gemm_min_columns=1))
    plain = fft_cost(p, DEFAULT, n)
    missing = np.array([0, CPU_TRAITS.gemm_min_columns - 3, 0])
    np.testing.assert_allclose(charged - plain, chunks * 216 * (n // 2 + 1) * missing
                               * DEFAULT.fft.product_ns_per_mac, rtol=1e-9)
    assert CPU_TRAITS.gemm_min_columns == 4


@pytest.mark.parametrize("itemsize", [4, 8])
def test_rows_beyond_the_cache_cost_the_large_transform_rate(itemsize):
    """Rows of more than ``fft.large_row_bytes`` bytes take ``fft.large_ns_per_nlogn``:
    from 262144 points in float32 and 131072 in float64 with the default's 512 KB."""
    p = dataclasses.replace(WIDE_LONG, itemsize=itemsize)
    n = np.array([65536, 131072, 262144, 524288])
    rows = (12 + 18) * np.ceil(p.outputs / (n - p.kernel_length + 1))  # transform rows

    def cost_with(rate: float) -> np.ndarray:
        fft = dataclasses.replace(DEFAULT.fft, large_ns_per_nlogn=rate)
        return fft_cost(p, dataclasses.replace(DEFAULT, fft=fft), n)

    small = DEFAULT.fft.ns_per_nlogn
    extra = cost_with(3 * small) - cost_with(small)
    large = n * itemsize > DEFAULT.fft.large_row_bytes
    assert DEFAULT.fft.large_row_bytes == 524288
    first_large = 262144 if itemsize == 4 else 131072
    assert large.tolist() == (n >= first_large).tolist()
    factor = DEFAULT.fft.float64_factor if itemsize == 8 else 1.0
    np.testing.assert_allclose(extra, large * rows * 2 * small * n * np.log2(n) * factor,
                               rtol=1e-9, atol=1e-3)
    # 0 turns the large rate off; on a GPU the threshold is cuFFT's, in float32 bytes.
    fft = dataclasses.replace(DEFAULT.fft, large_row_bytes=0, large_ns_per_nlogn=3 * small)
    off = fft_cost(p, dataclasses.replace(DEFAULT, fft=fft), n)
    np.testing.assert_allclose(off, cost_with(small), rtol=1e-12)
    gpu = device_config(DEFAULT, "cuda").fft
    assert gpu.large_row_bytes == 4 * DEFAULT.cupy.cufft_large_length
