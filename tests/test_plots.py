"""Figures: ``fftconv plan --plot``, its cost curves, and the planner-regret benchmark."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fftconv import cli
from fftconv.config import load_config
from fftconv.planner import plan
from fftconv.plot import plan_cost_curves
from fftconv.spec import ConvSpec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "benchmarks" / "planner_regret.py"
#: A channel-mixing layer whose cheaper path changes within K/64 .. K*64.
PLAN_ARGS = ["plan", "--filters", "16", "--kernel-support", "257", "--corr",
             "--padding", "same_zeros", "--input-shape", "8,65536,8"]


def assert_png(path: Path) -> None:
    image = pytest.importorskip("matplotlib.image")
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100


def test_plan_plot_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "costs.png"
    assert cli.main([*PLAN_ARGS, "--plot", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Plan: fft" in printed and f"wrote {out}" in printed
    assert_png(out)


def test_plan_plot_into_missing_directory_is_one_line_error(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main([*PLAN_ARGS, "--plot", str(tmp_path / "no" / "costs.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fftconv plan: error:") and err.count("\n") == 1


def test_plan_plot_without_matplotlib(tmp_path):
    # None in sys.modules makes every import of matplotlib fail, as if not installed.
    out = tmp_path / "costs.png"
    code = ("import sys; sys.modules['matplotlib'] = None; from fftconv.cli import main; "
            f"sys.exit(main({[*PLAN_ARGS, '--plot', str(out)]!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fftconv plan: error: --plot:")
    assert "pip install matplotlib" in lines[0]
    assert not out.exists()


def test_plan_without_plot_needs_no_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None; from fftconv.cli import main; "
            f"sys.exit(main({PLAN_ARGS!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Plan: fft" in result.stdout


def test_cost_curves_match_the_planner():
    spec = ConvSpec.from_arguments(257, corr=True, padding="same_zeros")
    shape, config = (8, 8, 65536), load_config()
    curves = plan_cost_curves(spec, shape, "float32", filters=16, config=config)
    ks = curves.kernel_supports
    assert ks[0] == 257 // 64 and ks[-1] == 257 * 64 and 257 in ks
    assert np.all(np.diff(ks) > 0)
    # Every sample is the planner's own estimate for that kernel length.
    for i in (0, int(np.flatnonzero(ks == 257)[0]), len(ks) - 1):
        k_spec = ConvSpec.from_arguments(int(ks[i]), corr=True, padding="same_zeros")
        p = plan(k_spec, shape, "float32", "auto", config, filters=16)
        direct = next(c for c in p.candidates if c.path == "direct")
        fft = min((c for c in p.candidates if c.path == "fft"), key=lambda c: c.cost_ns)
        assert curves.direct_ms[i] == pytest.approx(direct.cost_ns / 1e6)
        assert curves.fft_ms[i] == pytest.approx(fft.cost_ns / 1e6)
        assert curves.fft_lengths[i] == fft.n_fft
    assert curves.plan.path == "fft"
    # The cheaper path changes exactly at the crossovers.
    cheaper_direct = curves.direct_ms < curves.fft_ms
    assert len(curves.crossovers) == np.count_nonzero(np.diff(cheaper_direct))
    for k in curves.crossovers:
        below, above = ks[ks < k].max(), ks[ks > k].min()
        i, j = np.flatnonzero(ks == below)[0], np.flatnonzero(ks == above)[0]
        assert cheaper_direct[i] != cheaper_direct[j]


def test_cost_curves_leave_out_kernels_longer_than_a_valid_input():
    spec = ConvSpec.from_arguments(100, padding="valid")
    curves = plan_cost_curves(spec, (1, 1, 1000), "float64", filters=1)
    assert curves.kernel_supports.max() <= 1000
    assert curves.kernel_supports.min() == 2  # 100 / 64, rounded


def test_cost_curves_reject_bad_ranges():
    spec = ConvSpec.from_arguments(9)
    with pytest.raises(ValueError, match="span"):
        plan_cost_curves(spec, (1, 1, 100), "float32", filters=1, span=1)
    with pytest.raises(ValueError, match="points"):
        plan_cost_curves(spec, (1, 1, 100), "float32", filters=1, points=1)


@pytest.mark.slow
def test_planner_regret_quick_run(tmp_path):
    pytest.importorskip("matplotlib")
    profile = tmp_path / "profile.toml"
    profile.write_text(load_config().to_toml())
    out_json, out_png = tmp_path / "regret.json", tmp_path / "map.png"
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--count", "2", "--repeat", "1",
         "--pause", "0", "--config", str(profile), "--json", str(out_json),
         "--plot", str(out_png)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "estimate[profile]" in result.stdout and "always direct" in result.stdout
    record = json.loads(out_json.read_text())
    assert record["options"]["count"] == 2 and record["options"]["configs"] == {
        "profile": str(profile)}
    assert {"loadavg_start", "loadavg_end", "cpu", "blas", "versions"} <= set(record["machine"])
    rows = record["configurations"]
    assert len(rows) == 2
    for row in rows:
        methods = row["methods"]
        assert {"direct", "estimate", "estimate[profile]", "measure"} <= set(methods)
        assert any(name.startswith("fft:") for name in methods)
        timed = [m for m in methods.values() if m["status"] == "ok"]
        # Regret is relative to the fastest method of the configuration.
        assert min(m["regret"] for m in timed) == 1.0
        assert all(m["check"] in ("ok", "ref") for m in timed)
    summary = {e["method"]: e for e in record["summary"]}
    assert summary["estimate"]["calls"]["n"] == 2
    assert summary["estimate[profile]"]["calls"]["n"] == 2
    assert_png(out_png)
    # The results file can be summarized and drawn again without timing anything.
    again = subprocess.run(
        [sys.executable, str(BENCHMARK), "--from-json", str(out_json), "--plot",
         str(tmp_path / "again.png")], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "estimate[profile]" in again.stdout and "resolution:" in again.stdout
    assert_png(tmp_path / "again.png")


def _regret_module(monkeypatch):
    """benchmarks/planner_regret.py imported as a module."""
    spec = importlib.util.spec_from_file_location("planner_regret", BENCHMARK)
    regret = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "planner_regret", regret)  # for its dataclasses
    monkeypatch.setattr(sys, "path", list(sys.path))  # it puts benchmarks/ first
    spec.loader.exec_module(regret)
    return regret


def test_regret_rounds_take_the_methods_in_a_new_order_each(monkeypatch):
    """Every round times every method once, in an order drawn from the seed: a machine
    slowing down periodically must not hit the same method in every round."""
    regret = _regret_module(monkeypatch)
    calls_made: list[str] = []

    def method(name):
        return lambda: calls_made.append(name) or np.zeros(1)

    names = ["direct", "fft:512", "estimate", "measure"]

    def rounds(seed):
        calls_made.clear()
        out = regret.time_methods({n: method(n) for n in names}, 6, 0.0, lambda n, y: "",
                                  seed=seed)
        assert all(len(t.times_ms) == 6 for t in out.values())
        # WARM_CALLS calls each in table order, then an untimed and a timed call per turn
        timed = calls_made[len(names) * regret.WARM_CALLS:][1::2]
        return [tuple(timed[i:i + len(names)]) for i in range(0, len(timed), len(names))]

    orders = rounds(0)
    assert all(sorted(order) == sorted(names) for order in orders)
    assert len(set(orders)) > 1 and len({order[0] for order in orders}) > 1
    assert rounds(0) == orders and rounds(1) != orders


@pytest.mark.parametrize("close", [False, True])
def test_regret_close_calls_get_more_rounds(monkeypatch, close):
    """A close call (decided on the timings of the `repeat` rounds) is timed
    CLOSE_CALL_ROUNDS more rounds, every method alike; otherwise none."""
    regret = _regret_module(monkeypatch)
    names = ["direct", "fft:512", "estimate"]
    seen = []

    def close_call(timed):
        seen.append({n: (len(t.times_ms), t.min_ms) for n, t in timed.items()})
        return close

    out = regret.time_methods({n: (lambda: np.zeros(1)) for n in names}, 3, 0.0,
                              lambda n, y: "", close_call=close_call)
    assert len(seen) == 1 and all(k == 3 and ms is not None for k, ms in seen[0].values())
    expected = 3 + (regret.CLOSE_CALL_ROUNDS if close else 0)
    assert all(len(t.times_ms) == expected for t in out.values())
    assert all(t.min_ms == min(t.times_ms) for t in out.values())


def test_regret_resolution_compares_one_candidate_timed_in_two_objects(monkeypatch):
    regret = _regret_module(monkeypatch)
    ok = {"status": "ok", "chosen": None}
    rows = [{"planner_best_fft": "fft:512",
             "methods": {"fft:512": {**ok, "min_ms": 10.0},
                         "estimate": {**ok, "min_ms": 12.0, "chosen": "fft:512"},
                         "measure": {**ok, "min_ms": 8.0, "chosen": "fft:512"},
                         "estimate[p]": {"status": "n/a", "chosen": None}}},
            {"planner_best_fft": "fft:512",
             "methods": {"direct": {"status": "skipped", "chosen": None},
                         "estimate": {**ok, "min_ms": 5.0, "chosen": "direct"}}}]
    spread = regret.instance_spread(rows, ["estimate", "estimate[p]", "measure"])
    assert spread == [pytest.approx(1.2), pytest.approx(1.25)]
