#!/usr/bin/env python
"""Time many calls on inputs of random widths, from an empty cache and from a warm one.

Real use often filters inputs of many lengths (files, segments, batches cut to
size) with one filter, in short-lived processes.  Then what a call costs the
first time it meets a new width or a cold cache matters as much as its steady
speed.  For each filter (K = 1000 and K = 8191 taps, float32, mono) the script
makes the same seeded list of calls ``fftconv.convolve(x[:w], h, 'valid')`` on
widths ``w`` drawn uniformly from 10^4 .. 10^6, and times, each mode in a
process of its own:

* ``cold``: fftconv with an empty cache directory (a new temporary
  ``FFTCONV_CACHE_DIR``, set before fftconv is imported): no FFTW wisdom;
* ``warm``: the same calls in a new process with the cache that ``cold`` left;
  after each timed call the call is repeated twice, untimed in the total, and
  the faster repeat is the call's steady ``warm time``;
* ``oaconvolve``: ``scipy.signal.oaconvolve(x[:w], h, 'valid')`` on the same calls.

The three modes run ``--rounds`` times in turn (cold, warm, oaconvolve, cold,
...), each cold round from a new empty cache and each warm round on the cache
that cold round left; a call's time in a mode is its fastest over the rounds
(timings of one process on a shared machine swing by 30 %).

It prints one table, the acceptance targets (cold total <= 1.5x oaconvolve and
<= 1.2x the warm total; every cold call <= 3x its warm time + 50 ms) and the
worst ``first - 3 * warm - 50 ms`` over the calls.  The machine (from
``run_benchmarks.py``), the load averages before and after each mode and every
call's times go to ``benchmarks/results/variable_widths.json`` (git-ignored).
Run ``python benchmarks/variable_widths.py --help`` for options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "variable_widths.json"
#: Kernel lengths (taps) of the filters.
TAPS = (1000, 8191)
#: Smallest and largest input width.
WIDTHS = (10_000, 1_000_000)
#: Acceptance targets: cold total over oaconvolve's and over fftconv's warm total;
#: every cold call at most FIRST_FACTOR times its warm time plus FIRST_SLACK_S.
COLD_OVER_PEER = 1.5
COLD_OVER_WARM = 1.2
FIRST_FACTOR = 3.0
FIRST_SLACK_S = 0.05
#: Relative tolerance of the cross-check of fftconv against oaconvolve.
CHECK_TOLERANCE = 1e-4
#: Calls (the first ones) cross-checked in the warm process.
CHECKED_CALLS = 3
MODES = ("cold", "warm", "oaconvolve")


def make_calls(calls: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Widths, one long float32 signal to cut them from, and a kernel per tap count."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(WIDTHS[0], WIDTHS[1] + 1, size=calls)
    signal = rng.standard_normal(WIDTHS[1], dtype=np.float32)
    kernels = {k: (rng.standard_normal(k, dtype=np.float32) / np.float32(np.sqrt(k)))
               for k in TAPS}
    return widths, signal, kernels


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# -- one mode, in its own process ----------------------------------------------


def run_child(mode: str, calls: int, seed: int, out: Path) -> None:
    """Time the calls of `mode` and write them as JSON to `out`."""
    widths, signal, kernels = make_calls(calls, seed)
    if mode == "oaconvolve":
        import scipy.signal

        def call(x: np.ndarray, h: np.ndarray) -> np.ndarray:
            return scipy.signal.oaconvolve(x, h, "valid")
    else:
        try:
            import fftconv
        except ImportError:  # running from a checkout without an installed package
            sys.path.insert(0, str(HERE.parent))
            import fftconv
        # fftconv imports its FFT library on first use; pyFFTW imports its optional
        # interfaces (Dask's, where Dask is installed: ~0.2 s), a cost of the process,
        # not of any shape, so it is paid here, before timing, as SciPy's import is.
        with contextlib.suppress(ImportError):
            import pyfftw  # noqa: F401

        def call(x: np.ndarray, h: np.ndarray) -> np.ndarray:
            return fftconv.convolve(x, h, "valid")

    record: dict[str, Any] = {"mode": mode, "loadavg_start": _loadavg(), "filters": {}}
    for taps, h in kernels.items():
        first, steady, checks = [], [], []
        for i, w in enumerate(widths):
            x = signal[:w]
            start = time.perf_counter()
            y = call(x, h)
            first.append(time.perf_counter() - start)
            if mode == "warm":
                repeats = []
                for _ in range(2):
                    start = time.perf_counter()
                    call(x, h)
                    repeats.append(time.perf_counter() - start)
                steady.append(min(repeats))
                if i < CHECKED_CALLS:
                    import scipy.signal
                    ref = scipy.signal.oaconvolve(x.astype(np.float64), h.astype(np.float64),
                                                  "valid")
                    checks.append(float(np.max(np.abs(y - ref)) / np.max(np.abs(ref))))
        record["filters"][str(taps)] = {"first_s": first, "steady_s": steady,
                                        "check_rel_err": checks}
    if mode != "oaconvolve":
        record["fftconv"] = _fftconv_state()
    record["loadavg_end"] = _loadavg()
    out.write_text(json.dumps(record))


def _fftconv_state() -> dict[str, Any]:
    """The shared FFT backend's counters: block transforms and plans made in the process."""
    from fftconv.backends import get_backend
    from fftconv.config import load_config
    from fftconv.engine import backend_options

    backend = get_backend("auto", **backend_options(load_config()))
    state: dict[str, Any] = {"backend": repr(backend),
                             "block_transforms_made": getattr(backend, "blocks_made", None)}
    if hasattr(backend, "block_plans_built"):
        state["block_plans_built"] = dict(backend.block_plans_built)
        state["one_off_plans_built"] = backend.plans_built
    return state


# -- driver --------------------------------------------------------------------


def run_mode(mode: str, calls: int, seed: int, cache_dir: Path, work: Path) -> dict:
    out = work / f"{mode}.json"
    env = dict(os.environ, FFTCONV_CACHE_DIR=str(cache_dir))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode,
               "--calls", str(calls), "--seed", str(seed), "--out", str(out)]
    log(f"{mode}: {calls} calls per filter ...")
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    log(f"{mode}: done in {time.perf_counter() - start:.1f} s")
    return json.loads(out.read_text())


def fastest_rounds(rounds: list[dict]) -> dict:
    """One mode's record whose per-call times are the fastest over `rounds` (its records)."""
    merged = dict(rounds[0], rounds=len(rounds), loadavg_end=rounds[-1]["loadavg_end"])
    merged["filters"] = {
        key: {**first, **{name: np.min([r["filters"][key][name] for r in rounds], axis=0).tolist()
                          for name in ("first_s", "steady_s") if first[name]}}
        for key, first in rounds[0]["filters"].items()}
    return merged


def summarise(results: dict[str, dict]) -> list[dict]:
    rows = []
    for taps in TAPS:
        key = str(taps)
        cold = np.array(results["cold"]["filters"][key]["first_s"])
        warm = np.array(results["warm"]["filters"][key]["first_s"])
        steady = np.array(results["warm"]["filters"][key]["steady_s"])
        peer = np.array(results["oaconvolve"]["filters"][key]["first_s"])
        excess = cold - FIRST_FACTOR * steady - FIRST_SLACK_S
        worst = int(np.argmax(excess))
        rows.append({
            "filter": f"K={taps}", "calls": int(cold.size),
            "cold_s": float(cold.sum()), "warm_s": float(warm.sum()),
            "steady_s": float(steady.sum()), "oaconvolve_s": float(peer.sum()),
            "cold_over_oaconvolve": float(cold.sum() / peer.sum()),
            "cold_over_warm": float(cold.sum() / warm.sum()),
            "first_cold_call_s": float(cold[0]),
            "worst_first_excess_s": float(excess[worst]), "worst_call": worst,
            "worst_cold_s": float(cold[worst]), "worst_steady_s": float(steady[worst]),
            "max_check_rel_err": max(results["warm"]["filters"][key]["check_rel_err"],
                                     default=None),
        })
    total = {"filter": "total", "calls": sum(r["calls"] for r in rows)}
    for name in ("cold_s", "warm_s", "steady_s", "oaconvolve_s"):
        total[name] = sum(r[name] for r in rows)
    total["cold_over_oaconvolve"] = total["cold_s"] / total["oaconvolve_s"]
    total["cold_over_warm"] = total["cold_s"] / total["warm_s"]
    total["worst_first_excess_s"] = max(r["worst_first_excess_s"] for r in rows)
    rows.append(total)
    return rows


def render(rows: list[dict]) -> str:
    header = ["filter", "calls", "cold s", "warm s", "steady s", "oaconvolve s",
              "cold/oa", "cold/warm", "worst first-3*warm-50ms"]
    lines = []
    for r in rows:
        lines.append([r["filter"], str(r["calls"]), f"{r['cold_s']:.3f}", f"{r['warm_s']:.3f}",
                      f"{r['steady_s']:.3f}", f"{r['oaconvolve_s']:.3f}",
                      f"{r['cold_over_oaconvolve']:.2f}", f"{r['cold_over_warm']:.2f}",
                      f"{r['worst_first_excess_s'] * 1e3:+.1f} ms"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def targets(total: dict) -> list[tuple[str, bool]]:
    return [
        (f"cold total <= {COLD_OVER_PEER}x oaconvolve total "
         f"({total['cold_over_oaconvolve']:.2f}x)",
         total["cold_over_oaconvolve"] <= COLD_OVER_PEER),
        (f"cold total <= {COLD_OVER_WARM}x fftconv warm total ({total['cold_over_warm']:.2f}x)",
         total["cold_over_warm"] <= COLD_OVER_WARM),
        (f"every cold call <= {FIRST_FACTOR:g}x its warm time + {FIRST_SLACK_S * 1e3:g} ms "
         f"(worst excess {total['worst_first_excess_s'] * 1e3:+.1f} ms)",
         total["worst_first_excess_s"] <= 0),
    ]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=None,
                        help="calls per filter (default 400, or 40 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 calls per filter")
    parser.add_argument("--seed", type=int, default=0, help="seed of the widths and data")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times each mode runs; a call counts its fastest (default 2)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"where to write the results (default {DEFAULT_JSON})")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 40 if args.quick else 400
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args.child, args.calls, args.seed, args.out)
        return 0
    # The machine record of run_benchmarks.py, so that both describe a machine alike.
    sys.path.insert(0, str(HERE))
    from run_benchmarks import machine_record, usable_cores

    machine = machine_record(usable_cores())
    if machine["loadavg_start"] and machine["loadavg_start"][0] > 0.5:
        log(f"warning: load average {machine['loadavg_start'][0]:.2f} before the run; "
            f"other processes may distort the timings.")
    rounds: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="fftconv-widths-") as tmp:
            work = Path(tmp)
            cache = work / "cache"
            cache.mkdir()
            log(f"round {round_ + 1}/{args.rounds}")
            for mode in MODES:
                rounds[mode].append(run_mode(mode, args.calls, args.seed, cache, work))
    results = {mode: fastest_rounds(records) for mode, records in rounds.items()}
    machine["loadavg_end"] = _loadavg()
    rows = summarise(results)
    print(f"fftconv.convolve(x[:w], h, 'valid') vs scipy.signal.oaconvolve, float32 mono, "
          f"{args.calls} calls per filter, w uniform in {WIDTHS[0]}..{WIDTHS[1]} "
          f"(seed {args.seed}), {machine['cores_usable']} cores, totals in s of each call's "
          f"fastest of {args.rounds} round(s)")
    print(render(rows))
    print("load average (1, 5, 15 min) before the first round / after the last: "
          + "; ".join(f"{m} {results[m]['loadavg_start']} / {results[m]['loadavg_end']}"
                      for m in MODES))
    for mode in ("cold", "warm"):
        print(f"{mode}: {results[mode]['fftconv']}")
    errors = [r["max_check_rel_err"] for r in rows[:-1]]
    print(f"cross-check, first {CHECKED_CALLS} calls: max|y - ref| / max|ref| = "
          f"{max(errors):.2e} ({'ok' if max(errors) < CHECK_TOLERANCE else 'ERROR'})")
    print("acceptance targets:")
    for text, ok in targets(rows[-1]):
        print(f"  [{'pass' if ok else 'FAIL'}] {text}")
    record = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "options": {"calls": args.calls, "seed": args.seed, "rounds": args.rounds,
                          "widths": WIDTHS,
                          "taps": TAPS, "call": "fftconv.convolve(x, h, 'valid')"},
              "machine": machine, "summary": rows, "modes": results, "rounds": rounds}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
