"""Cold start: few FFT lengths and block transforms across input widths, cheap plans first.

Counting, not timing: which FFT length the planner picks for nearby widths, how
many block transforms and FFTW plans calls on many widths make, with which
effort, and when a one-off call is cheaper on the direct path.
"""

from __future__ import annotations

import numpy as np
import pytest
from golden import RTOL, assert_close

import fftconv
from fftconv.backends import get_backend
from fftconv.config import load_config
from fftconv.paths.direct import corr_valid_direct
from fftconv.paths.fft import chunk_blocks, corr_valid_fft, kernel_spectra
from fftconv.planner import (
    Prepared,
    fft_lengths,
    long_fft_length,
    plan,
    prepared_for,
    problem_for,
)
from fftconv.spec import ConvSpec

DEFAULT = load_config()
F32 = np.dtype("float32")
VALID = {"corr": True, "padding": "valid"}


def _plan(taps: int, width: int, **kwargs):
    return plan(ConvSpec(taps, **VALID), (1, 1, width), F32, "pyfftw", DEFAULT, filters=1,
                **kwargs)


@pytest.fixture
def fftw():
    pytest.importorskip("pyfftw")
    from fftconv.backends import pyfftw_backend

    return pyfftw_backend


# -- the FFT length depends on the kernel, not on small changes of the width ---


def test_nearby_widths_choose_one_length():
    lengths = {_plan(1000, w).n_fft for w in range(90_000, 110_001, 250)}
    assert len(lengths) == 1
    assert lengths == {long_fft_length(problem_for(ConvSpec(1000, **VALID), (1, 1, 10**6), 1, 4),
                                       DEFAULT)}


@pytest.mark.parametrize("taps", [31, 1000, 8191])
def test_widths_choose_few_lengths(taps):
    """Any width picks the long-input length or a power of two below it."""
    rng = np.random.default_rng(taps)
    widths = rng.integers(taps, 2_000_000, 300)
    chosen = {_plan(taps, int(w), method="fft").n_fft for w in widths}
    n_long = long_fft_length(problem_for(ConvSpec(taps, **VALID), (1, 1, 10**6), 1, 4), DEFAULT)
    powers = {1 << k for k in range(3, n_long.bit_length())}
    assert chosen <= powers | {n_long}
    assert n_long in chosen
    assert len(chosen) <= 1 + (n_long // max(taps, 8)).bit_length()


def test_long_inputs_consider_one_length():
    problem = problem_for(ConvSpec(1000, **VALID), (1, 1, 5_000_000), 1, 4)
    assert list(fft_lengths(problem, DEFAULT)) == [long_fft_length(problem, DEFAULT)]


# -- block transforms are shared by every width --------------------------------


@pytest.mark.parametrize("backend_name", ["numpy", "pyfftw"])
def test_widths_share_block_transforms(backend_name, monkeypatch):
    """Calls on 40 widths at one FFT length make one block transform and a few plans."""
    if backend_name == "pyfftw":
        fftw = pytest.importorskip("fftconv.backends.pyfftw_backend")
        backend = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")
    else:
        from fftconv.backends.numpy_backend import NumpyBackend
        backend = NumpyBackend(threads=1)
    rng = np.random.default_rng(0)
    kp, n_fft, budget = 100, 512, 1 << 18
    w = rng.standard_normal((1, 2, 3, kp)).astype(np.float32)
    spectra = kernel_spectra(w, n_fft, backend)
    widths = rng.integers(kp, 40 * n_fft, 40)
    for i, width in enumerate(widths):
        x = rng.standard_normal((2, 3, int(width))).astype(np.float32)
        y = corr_valid_fft(x, spectra, kp, n_fft, backend, budget)
        if i < 8:
            assert_close(y, corr_valid_direct(x.astype(np.float64), w.astype(np.float64)),
                         RTOL[F32])
    assert backend.blocks_made == 1
    if backend_name == "pyfftw":
        chunk = chunk_blocks(2, 3, 2, n_fft, 4, budget)
        (block,) = backend._blocks.values()
        # Plans over power-of-two pieces of rows, or the whole chunk, per direction.
        for direction, rows in (("forward", 6 * chunk), ("inverse", 4 * chunk)):
            sizes = [r for d, r in block.plan_efforts if d == direction]
            assert set(sizes) <= {1 << k for k in range(rows.bit_length())} | {rows}
        assert sum(backend.block_plans_built.values()) == len(block.plan_efforts)
        assert len(block.plan_efforts) <= 2 * (2 + (6 * chunk).bit_length())


def test_random_widths_make_few_transforms_end_to_end():
    """fftconv.convolve on 60 random widths: as many block transforms as FFT lengths."""
    backend = get_backend("auto", threads=DEFAULT.pyfftw.threads or None,
                          planner_effort=DEFAULT.pyfftw.planner_effort,
                          planning_timelimit=DEFAULT.pyfftw.planning_timelimit,
                          save_wisdom=DEFAULT.pyfftw.save_wisdom)
    rng = np.random.default_rng(1)
    h = rng.standard_normal(257).astype(np.float32)
    x = rng.standard_normal(400_000).astype(np.float32)
    widths = rng.integers(20_000, 400_000, 60)
    made = backend.blocks_made
    lengths = {_plan(257, int(w)).n_fft for w in widths}
    for width in widths:
        fftconv.convolve(x[:width], h, "valid")
    assert backend.blocks_made - made <= len(lengths) <= 3


# -- cheap plans first, measured plans when they recur -------------------------


def _use(block, rows_in, rows_out, rng):
    """One call's worth of transforms (one use), checked against numpy's."""
    x = rng.standard_normal((rows_in, block.n)).astype(np.float32)
    with block.use():
        block.real_in[:rows_in] = x
        spectra = block.forward(rows_in).copy()
        block.spectrum_in[:rows_out] = spectra[:rows_out]
        back = block.inverse(rows_out).copy()
    want = np.fft.rfft(x.astype(np.float64))
    assert np.max(np.abs(spectra - want)) <= RTOL[F32] * np.max(np.abs(want))
    assert_close(back / block.n, x[:rows_out].astype(np.float64), RTOL[F32])


def test_new_block_shape_estimates_then_measures_on_recurrence(fftw):
    import pyfftw

    pyfftw.forget_wisdom()  # no wisdom for these plans in this process
    backend = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_MEASURE",
                                 planning_timelimit=1.0, measure_after_seconds=0.0)
    block = backend.chunk_fft(12, 8, 96, np.float32)
    rng = np.random.default_rng(0)
    _use(block, 6, 5, rng)  # pieces 4 + 2 forward, 4 + 1 inverse
    assert set(block.plan_efforts.values()) == {"FFTW_ESTIMATE"}
    assert backend.block_plans_built == {"FFTW_ESTIMATE": 4}
    for _ in range(fftw.MEASURE_AT_USE - 2):
        _use(block, 6, 5, rng)
    assert "FFTW_MEASURE" not in backend.block_plans_built
    for measured in range(1, 5):  # from the MEASURE_AT_USE-th use on, one plan per use
        _use(block, 6, 5, rng)
        assert backend.block_plans_built == {"FFTW_ESTIMATE": 4, "FFTW_MEASURE": measured}
    assert set(block.plan_efforts.values()) == {"FFTW_MEASURE"}
    _use(block, 6, 5, rng)
    _use(block, 12, 8, rng)  # a new piece (the whole chunk): estimated first
    assert backend.block_plans_built == {"FFTW_ESTIMATE": 6, "FFTW_MEASURE": 4}
    # Another backend (as in a later process that loaded the wisdom) plans from wisdom.
    again = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_MEASURE")
    _use(again.chunk_fft(12, 8, 96, np.float32), 6, 5, rng)
    assert again.block_plans_built == {"wisdom": 4}


def test_held_uses_keep_their_plans(fftw):
    import threading

    import pyfftw

    from fftconv.backends.blocks import plans_held

    pyfftw.forget_wisdom()
    backend = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_MEASURE",
                                 planning_timelimit=1.0, measure_after_seconds=0.0)
    block = backend.chunk_fft(8, 8, 72, np.float32)
    rng = np.random.default_rng(3)
    with plans_held(), plans_held():  # nested: still held after the inner one
        pass
    with plans_held():
        with plans_held():
            _use(block, 8, 8, rng)
        for _ in range(fftw.MEASURE_AT_USE + 1):
            _use(block, 8, 8, rng)
        assert backend.block_plans_built == {"FFTW_ESTIMATE": 2}
        other = threading.Thread(target=_use, args=(block, 8, 8, rng))
        other.start()  # another thread's use is not held
        other.join()
        assert backend.block_plans_built == {"FFTW_ESTIMATE": 2, "FFTW_MEASURE": 1}
    _use(block, 8, 8, rng)  # once released, the next use measures the other plan
    assert backend.block_plans_built == {"FFTW_ESTIMATE": 2, "FFTW_MEASURE": 2}


def test_plans_that_ran_briefly_are_not_measured(fftw):
    assert DEFAULT.pyfftw.measure_after_seconds > 0.1
    backend = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_MEASURE",
                                 measure_after_seconds=DEFAULT.pyfftw.measure_after_seconds)
    block = backend.chunk_fft(4, 4, 80, np.float32)
    rng = np.random.default_rng(1)
    for _ in range(fftw.MEASURE_AT_USE + 2):
        _use(block, 3, 3, rng)
    assert set(backend.block_plans_built) <= {"FFTW_ESTIMATE", "wisdom"}


def test_estimate_effort_never_measures(fftw, monkeypatch):
    monkeypatch.setattr(fftw, "MEASURE_AFTER_SECONDS", 0.0)
    backend = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")
    block = backend.chunk_fft(4, 4, 80, np.float32)
    rng = np.random.default_rng(2)
    for _ in range(fftw.MEASURE_AT_USE + 1):
        _use(block, 4, 2, rng)
    assert set(backend.block_plans_built) == {"FFTW_ESTIMATE"}


def test_stream_transforms_are_planned_at_once(fftw):
    backend = fftw.PyFFTWBackend(threads=1, planner_effort="FFTW_MEASURE",
                                 planning_timelimit=0.5)
    block = backend.block_fft(3, 2, 40, np.float32)
    assert block.plan_efforts == {("forward", 3): "FFTW_MEASURE",
                                  ("inverse", 2): "FFTW_MEASURE"}


def test_pieces_cover_the_rows():
    from fftconv.backends.blocks import MAX_PIECES, pieces

    for capacity in (1, 5, 8, 42, 47, 96):
        for rows in range(1, capacity + 1):
            sizes = pieces(rows, capacity)
            assert rows <= sum(sizes) <= capacity
            assert len(sizes) <= MAX_PIECES
            assert sizes == [capacity] or all(s & (s - 1) == 0 for s in sizes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_right_on_every_piece(fftw, monkeypatch, dtype):
    """Every row count of a chunk, with estimated and measured plans, matches direct."""
    monkeypatch.setattr(fftw, "MEASURE_AFTER_SECONDS", 0.0)
    backend = fftw.PyFFTWBackend(threads=2, planner_effort="FFTW_MEASURE",
                                 planning_timelimit=0.2)
    rng = np.random.default_rng(3)
    kp, n_fft, budget = 7, 21, 3 * 2 * 4 * 21 * np.dtype(dtype).itemsize * 11  # 11 blocks
    w = rng.standard_normal((2, 1, 1, kp)).astype(dtype)
    spectra = kernel_spectra(w, n_fft, backend)
    for blocks in list(range(1, 24)) + [5, 17, 3]:
        x = rng.standard_normal((1, 2, blocks * (n_fft - kp + 1) + kp - 1)).astype(dtype)
        y = corr_valid_fft(x, spectra, kp, n_fft, backend, int(budget))
        assert_close(y, corr_valid_direct(x.astype(np.float64), w.astype(np.float64)),
                     RTOL[np.dtype(dtype)])
    # Measured plans: made now, or from the wisdom of an earlier test's in this process.
    assert {"FFTW_MEASURE", "wisdom"} & set(backend.block_plans_built)


# -- planning time in the choice of a one-off call -------------------------------


def test_one_off_long_kernel_short_input_runs_direct():
    """W=10, K=100001: a one-off call would spend far longer planning than filtering."""
    spec = ConvSpec(100_001, corr=True, padding="same_zeros")
    cold = plan(spec, (1, 1, 10), F32, "pyfftw", DEFAULT, filters=1, prepared=Prepared())
    assert cold.path == "direct"
    problem = problem_for(spec, (1, 1, 10), 1, 4)
    fresh = prepared_for(problem, DEFAULT, get_backend("numpy"))
    assert plan(spec, (1, 1, 10), F32, "numpy", DEFAULT, filters=1,
                prepared=fresh).path == "direct"


def test_what_is_prepared_costs_nothing():
    spec = ConvSpec(1000, **VALID)
    problem = problem_for(spec, (1, 1, 50_000), 1, 4)
    lengths = frozenset(int(n) for n in fft_lengths(problem, DEFAULT))
    ready = Prepared(spectra=lengths, transforms=lengths)
    steady = plan(spec, (1, 1, 50_000), F32, "pyfftw", DEFAULT, filters=1)
    assert plan(spec, (1, 1, 50_000), F32, "pyfftw", DEFAULT, filters=1,
                prepared=ready) == steady
    cold = plan(spec, (1, 1, 50_000), F32, "pyfftw", DEFAULT, filters=1, prepared=Prepared())
    assert {c.n_fft: c.cost_ns for c in cold.candidates if c.path == "fft"} != {
        c.n_fft: c.cost_ns for c in steady.candidates if c.path == "fft"}
    # A length with spectra and transforms ready costs what it costs in the steady state.
    best = steady.candidates[0]
    warm_one = Prepared(spectra=frozenset({best.n_fft}), transforms=frozenset({best.n_fft}))
    warm = plan(spec, (1, 1, 50_000), F32, "pyfftw", DEFAULT, filters=1, prepared=warm_one)
    assert warm.candidates[0] == best


def test_prepared_for_sees_the_backends_transforms():
    backend = get_backend("numpy")
    spec = ConvSpec(300, **VALID)
    problem = problem_for(spec, (1, 1, 7777), 1, 4)
    n_fft = plan(spec, (1, 1, 7777), F32, "numpy", DEFAULT, filters=1).n_fft
    x = np.random.default_rng(4).standard_normal((1, 1, 7777)).astype(np.float32)
    w = np.ones((1, 1, 1, 300), np.float32)
    corr_valid_fft(x, kernel_spectra(w, n_fft, backend), 300, n_fft, backend,
                   DEFAULT.memory.fft_bytes)
    ready = prepared_for(problem, DEFAULT, backend, spectra=[n_fft])
    assert n_fft in ready.transforms and ready.spectra == {n_fft} and not ready.plans


def test_prepared_must_be_a_prepared():
    with pytest.raises(TypeError, match="prepared"):
        _plan(100, 1000, prepared={"spectra": ()})


def test_engine_runs_a_one_off_call_direct_then_the_steady_plan():
    """W=50, K=100001: the first call pays no FFT planning; the recurring shape does."""
    layer = fftconv.SignalConv1D(1, 100001, corr=True, padding="same_zeros", backend="pyfftw")
    x = np.random.default_rng(0).standard_normal((1, 50, 1)).astype(np.float32)
    assert layer.plan_for(x.shape).path == "direct"
    first = layer(x)
    assert layer.plan_for(x.shape).path == "fft"
    np.testing.assert_allclose(layer(x), first, atol=1e-6 * np.abs(first).max())
