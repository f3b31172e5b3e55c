"""FFT backends: agreement with numpy.fft, dtypes, ownership, plan reuse, threads, wisdom."""

from __future__ import annotations

import base64
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fftconv import _files
from fftconv.backends import BACKENDS, get_backend

TOL = {np.float32: 1e-5, np.float64: 1e-12}
NAMES = ["numpy", "pyfftw"]

# (shape, axis, n, view): n larger and smaller than the input, odd and even, strided views.
CASES = [
    ((16,), -1, 16, None),
    ((16,), 0, 25, None),
    ((15,), -1, 8, None),
    ((5,), -1, 1, None),
    ((4, 3, 20), -1, 32, None),
    ((4, 3, 20), 1, 5, None),
    ((6, 3, 20), 0, 7, None),
    ((8, 40), -1, 33, "strided"),      # every other sample: x[:, ::2]
    ((40, 8), 0, 12, "strided"),
    ((5, 6, 9), 1, 10, "transposed"),  # x.transpose(2, 0, 1)
    ((0, 8), -1, 8, None),             # empty batch
]


@pytest.fixture(scope="module", autouse=True)
def _cache_dir_for_this_process(tmp_path_factory):
    """Send wisdom I/O of this test process to a temporary directory.

    The pyFFTW backend exports wisdom at interpreter exit, after every fixture has been
    undone, so the variable stays set for the rest of the process (unless it was
    already set).
    """
    os.environ.setdefault("FFTCONV_CACHE_DIR", str(tmp_path_factory.mktemp("fftconv-cache")))


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FFTCONV_CACHE_DIR", str(tmp_path))


@pytest.fixture(params=NAMES)
def backend(request):
    if request.param == "pyfftw":
        pytest.importorskip("pyfftw")
    return get_backend(request.param, threads=2, planner_effort="FFTW_ESTIMATE")


@pytest.fixture
def pyfftw_backend(monkeypatch):
    pytest.importorskip("pyfftw")
    from fftconv.backends import pyfftw_backend

    monkeypatch.setattr(_files, "_warned", set())  # warnings once per process
    monkeypatch.setattr(pyfftw_backend, "_exit_save_disabled", False)
    return pyfftw_backend


def _input(shape, view, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if view == "strided":
        return x[:, ::2] if shape[1] > shape[0] else x[::2]
    if view == "transposed":
        return x.transpose(2, 0, 1)
    return x


def _spectrum(x, n, axis, seed=1):
    """Random complex bins, ``n // 2 + 1`` along `axis`, in the complex dtype of `x`."""
    shape = list(x.shape)
    shape[axis] = n // 2 + 1
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return z.astype(np.result_type(x.dtype, np.complex64))


def _assert_close(got, want, dtype):
    assert got.shape == want.shape
    if want.size:
        assert np.max(np.abs(got - want)) <= TOL[dtype] * np.max(np.abs(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis", "n", "view"), CASES)
def test_rfft_matches_numpy(backend, dtype, shape, axis, n, view):
    x = _input(shape, view, dtype)
    before = x.copy()
    got = backend.rfft(x, n, axis=axis)
    assert got.dtype == np.result_type(dtype, np.complex64)
    _assert_close(got, np.fft.rfft(x.astype(np.float64), n, axis=axis), dtype)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis", "n", "view"), CASES)
def test_irfft_matches_numpy(backend, dtype, shape, axis, n, view):
    z = _spectrum(_input(shape, view, dtype), n, axis)
    if view is not None:
        z = np.swapaxes(np.swapaxes(z, 0, -1).copy(), 0, -1)  # non-contiguous complex input
    before = z.copy()
    got = backend.irfft(z, n, axis=axis)
    assert got.dtype == dtype
    _assert_close(got, np.fft.irfft(z.astype(np.complex128), n, axis=axis), dtype)
    np.testing.assert_array_equal(z, before)


@pytest.mark.parametrize("n_bins", [3, 9])  # fewer and more bins than n // 2 + 1 = 5
def test_irfft_crops_or_pads_bins_like_numpy(backend, n_bins):
    z = _spectrum(np.zeros((3, 2 * n_bins - 2)), 2 * n_bins - 2, -1)
    _assert_close(backend.irfft(z, 8), np.fft.irfft(z, 8), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_successive_results_are_distinct_arrays(backend, dtype):
    x, y = (_input((3, 64), None, dtype, seed=s) for s in (2, 3))
    first = backend.rfft(x, 64)
    kept = first.copy()
    second = backend.rfft(y, 64)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
    back = backend.irfft(first, 64)
    kept = back.copy()
    backend.irfft(second, 64)
    np.testing.assert_array_equal(back, kept)


def test_round_trip_float32_stays_single_precision(backend):
    x = _input((2, 1000), None, np.float32)
    spectrum = backend.rfft(x, 1024)
    assert spectrum.dtype == np.complex64
    back = backend.irfft(spectrum, 1024)
    assert back.dtype == np.float32
    _assert_close(back[:, :1000], x.astype(np.float64), np.float32)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda b: b.rfft(np.arange(8), 8), TypeError, ["`a`", "int64", "float32"]),
        (lambda b: b.rfft(np.ones(8, np.complex64), 8), TypeError, ["`a`", "complex64"]),
        (lambda b: b.irfft(np.ones(5), 8), TypeError, ["`a`", "float64", "complex128"]),
        (lambda b: b.rfft(np.ones(8), 0), ValueError, ["`n`", "0"]),
        (lambda b: b.rfft(np.ones(8), 8.0), TypeError, ["`n`", "8.0"]),
        (lambda b: b.irfft(np.ones((2, 5), np.complex64), 8, axis=2), ValueError,
         ["`axis`", "2", "[-2, 2)"]),
    ],
)
def test_bad_arguments_name_the_argument(backend, call, error, words):
    with pytest.raises(error) as info:
        call(backend)
    for word in words:
        assert word in str(info.value)


def test_pyfftw_reuses_plans(pyfftw_backend):
    backend = pyfftw_backend.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")
    x = _input((4, 3, 20), None, np.float32)
    backend.rfft(x, 32)
    backend.irfft(backend.rfft(x, 32), 32)
    built = backend.plans_built
    assert built == 2
    backend.rfft(_input((4, 3, 20), None, np.float32, seed=5), 32)
    backend.rfft(x.reshape(12, 20), 32)  # same rows, length and dtype: same plan
    backend.rfft(x.transpose(2, 0, 1), 32, axis=0)
    backend.irfft(backend.rfft(x, 32), 32)
    assert backend.plans_built == built
    backend.rfft(x.astype(np.float64), 32)
    backend.rfft(x, 31)
    assert backend.plans_built == built + 2


def test_pyfftw_plan_cache_is_bounded(pyfftw_backend, monkeypatch):
    monkeypatch.setattr(pyfftw_backend, "MAX_PLANS", 2)
    backend = pyfftw_backend.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")
    x = np.ones((2, 8))
    for n in (8, 9, 10, 8):
        backend.rfft(x, n)
    assert backend.plans_built == 4  # n=8 was evicted by n=10
    backend.rfft(x, 10)
    assert backend.plans_built == 4


def test_pyfftw_concurrent_calls(pyfftw_backend):
    backend = get_backend("pyfftw", threads=2, planner_effort="FFTW_ESTIMATE")
    shapes = [(3, 100), (5, 64)]

    def work(seed):
        out = []
        for k in range(20):
            x = _input(shapes[k % 2], None, np.float32 if seed % 2 else np.float64, seed + k)
            spectrum = backend.rfft(x, 128)
            out.append((x, spectrum.copy(), backend.irfft(spectrum, 128)))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for run in results:
        for x, spectrum, back in run:
            want = np.fft.rfft(x.astype(np.float64), 128)
            _assert_close(spectrum, want, x.dtype.type)
            _assert_close(back, np.fft.irfft(want, 128), x.dtype.type)


def test_block_plans_use_the_effort_and_one_off_plans_estimate(monkeypatch):
    pyfftw = pytest.importorskip("pyfftw")
    from fftconv.backends import pyfftw_backend

    limits = []

    class RecordingFFTW(pyfftw.FFTW):
        def __init__(self, *args, planning_timelimit=None, **kwargs):
            limits.append(planning_timelimit)
            super().__init__(*args, planning_timelimit=planning_timelimit, **kwargs)

    monkeypatch.setattr(pyfftw_backend.pyfftw, "FFTW", RecordingFFTW)
    backend = pyfftw_backend.PyFFTWBackend(threads=1, planner_effort="FFTW_MEASURE",
                                           planning_timelimit=0.25)
    block = backend.block_fft(3, 2, 40, np.float32)
    assert "FFTW_MEASURE" in block._forward.flags and "FFTW_MEASURE" in block._inverse.flags
    assert limits == [0.25, 0.25]
    x = np.random.default_rng(0).standard_normal((3, 40)).astype(np.float32)
    block.real_in[...] = x
    _assert_close(block.forward(), np.fft.rfft(x.astype(np.float64)), np.float32)
    backend.rfft(x, 40)
    (slot,) = backend._slots.values()
    assert "FFTW_ESTIMATE" in slot.fftw.flags


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_fft_transforms_any_row_count(backend, dtype):
    """One chunk transform serves every row count up to its capacity, and is shared."""
    made = backend.blocks_made
    block = backend.chunk_fft(11, 7, 48, dtype)
    assert backend.has_chunk_fft(11, 7, 48, dtype) and not backend.has_chunk_fft(11, 7, 64, dtype)
    assert backend.chunk_fft(11, 7, 48, dtype) is block
    for rows_in, rows_out in [(11, 7), (1, 1), (6, 3), (9, 7), (3, 2)]:
        x = _input((rows_in, 48), None, dtype, seed=rows_in)
        with block.use():
            block.real_in[:rows_in] = x
            _assert_close(block.forward(rows_in), np.fft.rfft(x), dtype)
            z = _spectrum(x[:rows_out], 48, -1)
            block.spectrum_in[:rows_out] = z
            _assert_close(block.inverse(rows_out) / 48, np.fft.irfft(z, 48), dtype)
    assert block.uses == 5
    assert backend.blocks_made - made <= 1  # none if an earlier test made it


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pyfftw_chunk_rows_avoid_cache_aliasing_strides(pyfftw_backend, dtype):
    """Power-of-two blocks: every buffer row starts 64-byte aligned, but the row stride
    is no multiple of 4096 bytes (rows would share cache sets), and every row count
    still transforms right through the padded rows."""
    backend = pyfftw_backend.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")
    n = 1024
    block = backend.chunk_fft(6, 5, n, dtype)
    buffers = (block.real_in, block.spectrum_in, block._spectra, block._real_out)
    for a in buffers:
        assert a.strides[0] % 64 == 0 and a.strides[0] % 4096 != 0
        assert a.ctypes.data % 64 == 0
    assert block.real_in.strides[0] == n * np.dtype(dtype).itemsize + 64
    for rows in (6, 3, 1):
        x = _input((rows, n), None, dtype, seed=rows)
        with block.use():
            block.real_in[:rows] = x
            _assert_close(block.forward(rows), np.fft.rfft(x), dtype)
            z = _spectrum(x[:rows], n, -1)[:min(rows, 5)]
            block.spectrum_in[:len(z)] = z
            _assert_close(block.inverse(len(z)) / n, np.fft.irfft(z, n), dtype)


@pytest.mark.parametrize("channels", [2, 5, 38])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assign_copies_time_major_blocks_in_pieces(monkeypatch, channels, dtype):
    """Blocks or windows of a time-major signal (channels the fastest axis) copied into
    rows piece by piece along time: the same values, whatever the piece size."""
    from fftconv.backends import cpu

    backend = get_backend("numpy")
    signal = np.random.default_rng(0).standard_normal((2, 1000, channels)).astype(dtype)
    x = signal.transpose(0, 2, 1)  # (B, C, L), time-major in memory
    blocks = backend.windows(x, 256, 200)  # (B, C, 4, 256)
    monkeypatch.setattr(cpu, "TIME_MAJOR_PIECE_BYTES", 80 * channels * x.itemsize)
    real_setitem = np.ndarray.__setitem__

    def copies(src: np.ndarray) -> int:
        """Copy `src` with assign; how many numpy copies it took."""
        pieces = []

        class Rows(np.ndarray):
            def __setitem__(self, key, value):
                pieces.append(key)
                real_setitem(self, key, value)

        out = np.full(src.shape, np.nan, dtype).view(Rows)
        backend.assign(out, src)
        np.testing.assert_array_equal(out, src)
        return len(pieces)

    assert copies(blocks) == -(-256 // 80)  # 80 samples of every channel at a time
    # The direct path's windows (G, Ci, Kp, B, T), here of `channels` groups of one channel.
    windows = backend.windows(x[:, :, None], 3, 1).transpose(1, 2, 4, 0, 3)
    assert copies(windows) == -(-998 // 80)
    assert copies(backend.windows(np.ascontiguousarray(x), 256, 200)) == 1  # channels first


def test_wisdom_round_trip(pyfftw_backend, tmp_path):
    get_backend("pyfftw", threads=1, planner_effort="FFTW_MEASURE").block_fft(2, 2, 48, float)
    path = pyfftw_backend.save_wisdom()
    assert path == tmp_path / "fftw-wisdom.json"
    data = json.loads(path.read_text())
    assert sorted(data) == ["double", "long_double", "single"]
    assert base64.b64decode(data["double"]).startswith(b"(fftw-")
    assert pyfftw_backend.load_wisdom() is True
    assert pyfftw_backend.load_wisdom(tmp_path / "elsewhere.json") is False  # missing: silent
    # no temporary file left behind (the lock file stays: see fftconv._files.file_lock)
    assert [p for p in tmp_path.iterdir() if p.name != "fftw-wisdom.json.lock"] == [path]


def test_wisdom_default_location(pyfftw_backend, tmp_path, monkeypatch):
    monkeypatch.delenv("FFTCONV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pyfftw_backend.wisdom_path() == tmp_path / "xdg" / "fftconv" / "fftw-wisdom.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pyfftw_backend.wisdom_path() == tmp_path / ".cache" / "fftconv" / "fftw-wisdom.json"


@pytest.mark.parametrize(
    "text",
    ["not json", '["a", "b", "c"]', '{"double": "!!", "single": "", "long_double": ""}',
     json.dumps({"double": base64.b64encode(b"(garbage)").decode(), "single": "",
                 "long_double": ""})],
)
def test_corrupt_wisdom_warns(pyfftw_backend, tmp_path, text):
    (tmp_path / "fftw-wisdom.json").write_text(text)
    with pytest.warns(RuntimeWarning, match="wisdom"):
        assert pyfftw_backend.load_wisdom() is False


def test_unwritable_wisdom_location_warns(pyfftw_backend, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.warns(RuntimeWarning, match="could not be saved"):
        pyfftw_backend.save_wisdom(tmp_path / "file" / "fftw-wisdom.json")


def test_first_backend_imports_wisdom_and_exports_at_exit(pyfftw_backend, tmp_path, monkeypatch):
    registered = []
    monkeypatch.setattr(pyfftw_backend, "_wisdom_imported", False)
    monkeypatch.setattr(pyfftw_backend.atexit, "register", registered.append)
    (tmp_path / "fftw-wisdom.json").write_text("corrupt")
    with pytest.warns(RuntimeWarning, match="invalid"):
        pyfftw_backend.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")
    pyfftw_backend.PyFFTWBackend(threads=1, planner_effort="FFTW_ESTIMATE")  # no second import
    assert len(registered) == 1
    registered[0]()
    assert pyfftw_backend.load_wisdom() is True


def test_get_backend_auto_and_cache():
    pytest.importorskip("pyfftw")
    assert BACKENDS == ("auto", "numpy", "pyfftw", "cupy")
    auto = get_backend("auto", threads=2, planner_effort="FFTW_ESTIMATE")
    assert auto.name == "pyfftw"
    assert auto is get_backend("pyfftw", threads=2, planner_effort="FFTW_ESTIMATE")
    assert get_backend("numpy", threads=2) is get_backend("numpy", threads=2,
                                                         planner_effort="FFTW_PATIENT")
    assert get_backend("numpy").threads >= 1
    assert auto.xp is np
    patient = get_backend("pyfftw", threads=2, planner_effort="FFTW_ESTIMATE",
                          measure_after_seconds=0)
    assert patient is not auto and patient.measure_after_seconds == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"name": "fftw"}, ValueError, ["backend", "'fftw'", "'pyfftw'"]),
        ({"threads": 0}, ValueError, ["`threads`", "0"]),
        ({"threads": "4"}, TypeError, ["`threads`", "'4'"]),
        ({"threads": True}, TypeError, ["`threads`", "True"]),
        ({"planner_effort": "FFTW_FAST"}, ValueError,
         ["`planner_effort`", "FFTW_FAST", "FFTW_MEASURE"]),
        ({"planning_timelimit": -1.0}, ValueError, ["`planning_timelimit`", "-1.0", ">= 0"]),
        ({"planning_timelimit": float("nan")}, ValueError, ["`planning_timelimit`", "nan"]),
        ({"planning_timelimit": float("inf")}, ValueError, ["`planning_timelimit`", "inf"]),
        ({"planning_timelimit": "1s"}, TypeError, ["`planning_timelimit`", "'1s'"]),
        ({"save_wisdom": "no"}, TypeError, ["`save_wisdom`", "'no'", "bool"]),
        ({"measure_after_seconds": -0.5}, ValueError, ["`measure_after_seconds`", "-0.5"]),
        ({"measure_after_seconds": "2"}, TypeError, ["`measure_after_seconds`", "'2'"]),
    ],
)
def test_get_backend_errors_name_the_argument(kwargs, error, words):
    with pytest.raises(error) as info:
        get_backend(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_pyfftw_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyfftw", None)
    monkeypatch.setitem(sys.modules, "fftconv.backends.pyfftw_backend", None)
    monkeypatch.setattr(_files, "_warned", set())  # warnings once per process
    with pytest.raises(ImportError, match="pyFFTW"):
        get_backend("pyfftw", threads=7)
    with pytest.warns(RuntimeWarning, match="pyFFTW is not installed: backend 'auto' runs"):
        assert get_backend("auto", threads=7).name == "numpy"
