"""Planner, configuration files, plan and spectrum caching."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from fftconv import SignalConv1D
from fftconv.config import load_config, read_config
from fftconv.planner import fast_lengths, plan
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


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: _set(t, "radix_penalty", "1.1\nbogus = 3"), "unknown key 'fft.bogus'"),
    (lambda t: re.sub(r"(?m)^ns_per_mac = .*\n", "", t), "missing key 'direct.ns_per_mac'"),
    (lambda t: _set(t, "fft_bytes", '"big"'), "key 'memory.fft_bytes' must be of type int"),
    (lambda t: _set(t, "planner_effort", '"FAST"'),
     "key 'pyfftw.planner_effort' must be one of"),
    (lambda t: _set(t, "planning_timelimit", '"1s"'),
     "key 'pyfftw.planning_timelimit' must be of type float"),
    (lambda t: _set(t, "planning_timelimit", "-0.5"),
     "key 'pyfftw.planning_timelimit' must be >= 0"),
    (lambda t: t + "\n[gpu]\nx = 1\n", r"unknown section \[gpu\]"),
    (lambda t: _set(t, "ns_per_nlogn", "-1.0"), "key 'fft.ns_per_nlogn' must be >= 0"),
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
    slow_fft = _set(DEFAULT.to_toml(), "ns_per_nlogn", "1000.0")
    path = _write(tmp_path, slow_fft)
    monkeypatch.setenv("FFTCONV_CONFIG", str(path))
    assert load_config().fft.ns_per_nlogn == 1000.0
    assert load_config(DEFAULT) is DEFAULT  # the argument wins over the environment
    layer = SignalConv1D(1, 8191, kernel_parameter=np.ones((8191, 1, 1)))
    assert layer.engine.plan_for((1, 1, 100_000), F32).path == "direct"
    monkeypatch.delenv("FFTCONV_CONFIG")
    assert load_config() == DEFAULT


def test_missing_config_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "nope.toml")


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
