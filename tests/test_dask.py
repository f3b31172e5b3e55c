"""The Dask front: lazy layers on chunked arrays equal the in-memory call."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from golden import RTOL, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import geometry_options

from fftconv import SignalConv1D, dask_front, plan, signal_conv1d
from fftconv.spec import ConvSpec

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


@st.composite
def chunked_cases(draw):
    """A random layer, an input long enough for it, and random chunks along batch and width."""
    cfg = {
        "filters": draw(st.integers(1, 3)),
        "kernel_support": draw(st.one_of(st.integers(1, 12), st.integers(13, 300))),
        **draw(geometry_options()),
        "use_bias": draw(st.booleans()),
        "activation": draw(st.sampled_from([None, "relu", "tanh"])),
        "dtype": draw(st.sampled_from(["float64", "float32"])),
    }
    spec = ConvSpec.from_arguments(cfg["kernel_support"], cfg["corr"], cfg["strides_down"],
                                   cfg["strides_up"], cfg["padding"], cfg["extra_pad_end"])
    width = spec.min_input_width() + draw(st.integers(0, 400))
    batch = draw(st.integers(1, 3))
    c_in = draw(st.integers(1, 2))
    # Cut points anywhere: chunks shorter than the kernel, misaligned, or one chunk.
    cuts = draw(st.lists(st.integers(1, max(1, width - 1)), max_size=12, unique=True))
    widths = tuple(np.diff([0, *sorted(c for c in cuts if c < width), width]).tolist())
    batches = draw(st.sampled_from([(batch,), (1,) * batch]))
    min_chunk = draw(st.sampled_from([1, 1, 1, None]))
    return cfg, (batch, width, c_in), (batches, widths), min_chunk, draw(st.integers(0, 2**31))


@settings(max_examples=400, deadline=None)
@given(chunked_cases())
def test_chunked_equals_in_memory(case):
    cfg, (batch, width, c_in), (batches, widths), min_chunk, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width, c_in))
    chunks = (batches, widths, (c_in,))
    if cfg["data_format"] == "channels_first":
        x, chunks = np.ascontiguousarray(x.transpose(0, 2, 1)), (batches, (c_in,), widths)
    layer = SignalConv1D(**cfg, bias_initializer="random_normal")
    expected = layer(x)
    y = dask_front.apply(layer, da.from_array(x, chunks=chunks), min_chunk=min_chunk)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    with dask.config.set(scheduler="synchronous"):
        actual = y.compute()
    assert_close(actual, expected, RTOL[expected.dtype])


def test_layer_and_functional_dispatch_to_dask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3000, 3)).astype(np.float32)
    kernel = rng.standard_normal((257, 3, 4)).astype(np.float32) / 30
    bias = rng.standard_normal(4).astype(np.float32)
    options = {"corr": True, "strides_down": 4, "padding": "same_reflect"}
    lazy = signal_conv1d(da.from_array(x, chunks=(1, 700, 1)), kernel, bias, **options)
    assert isinstance(lazy, da.Array)
    assert_close(lazy.compute(), signal_conv1d(x, kernel, bias, **options),
                 RTOL[np.dtype(np.float32)])
    layer = SignalConv1D(4, 257, kernel_parameter=kernel, **options)
    assert_close(layer(da.from_array(x, chunks=(1, 700, 3))).compute(), layer(x),
                 RTOL[np.dtype(np.float32)])


def test_chunks_aligned_to_input_phases_and_owned_outputs():
    layer = SignalConv1D(2, 9, corr=True, strides_up=2, strides_down=6, padding="same_zeros")
    x = da.zeros((1, 1000, 1), chunks=(1, (101, 250, 3, 250, 396), 1))
    y = dask_front.apply(layer, x, min_chunk=50)
    # S = 3 input phases, P = 1 output phase: boundaries rounded up to multiples
    # of 3 (102, 351, 606; 354 would end a chunk shorter than 50), and a chunk of
    # 3*m inputs owns m outputs.
    assert y.chunks[1] == (34, 83, 85, 132)
    assert y.shape == (1, 334, 2) and y.chunks[2] == (2,)


def test_default_chunks_cover_an_fft_block():
    layer = SignalConv1D(1, 8191, corr=True, padding="same_zeros")
    y = layer(da.zeros((1, 400_000, 1), chunks=(1, 1000, 1)))
    chosen = plan(layer.spec, (1, 1, 400_000), np.float32, "auto", None, filters=1)
    assert chosen.path == "fft" and len(y.chunks[1]) > 1
    assert min(y.chunks[1][:-1]) >= chosen.block


def test_metadata_known_without_calling_the_blocks(monkeypatch):
    calls = []
    run_block = dask_front._run_block

    def counting(block, block_id=None, **kwargs):
        calls.append(block_id)
        return run_block(block, block_id=block_id, **kwargs)

    monkeypatch.setattr(dask_front, "_run_block", counting)
    layer = SignalConv1D(3, 31, strides_down=2, padding="same_zeros",
                         data_format="channels_first", dtype="float64")
    x = da.ones((4, 2, 1000), chunks=(2, 2, 300), dtype=np.float32)
    y = dask_front.apply(layer, x, min_chunk=1)
    assert (y.shape, y.dtype, y.chunks) == ((4, 3, 500), np.float64,
                                            ((2, 2), (3,), (150, 150, 150, 50)))
    assert type(y._meta) is np.ndarray and calls == []
    with dask.config.set(scheduler="synchronous"):
        y.compute()
    assert len(calls) == y.npartitions


def test_errors():
    layer = SignalConv1D(2, 5)
    with pytest.raises(TypeError, match="`x`"):
        layer(da.zeros((1, 10, 1), dtype=np.complex64))
    with pytest.raises(ValueError, match="rank 3"):
        layer(da.zeros((10, 1)))
    with pytest.raises(ValueError, match="unknown size"):
        x = da.zeros((1, 10, 1))
        layer(x[:, x[0, :, 0] > -1])
    with pytest.raises(ValueError, match="too short"):
        layer(da.zeros((1, 3, 1)))
    with pytest.raises(TypeError, match="dask.array.Array"):
        dask_front.apply(layer, np.zeros((1, 10, 1)))
    with pytest.raises(ValueError, match="`min_chunk`"):
        dask_front.apply(layer, da.zeros((1, 10, 1)), min_chunk=0)


def test_clear_error_without_dask(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)  # import dask.array now fails
    assert not dask_front.is_dask_array(np.zeros(3))
    with pytest.raises(ImportError, match=r"fftconv\[dask\]"):
        dask_front.apply(SignalConv1D(1, 3), np.zeros((1, 10, 1)))


def test_import_does_not_import_dask():
    # The NumPy backend: pyFFTW's own builders import dask.array.fft when installed.
    code = ("import sys, numpy, fftconv; "
            "fftconv.SignalConv1D(1, 3, backend='numpy')(numpy.ones((1, 9, 1))); "
            "assert not {'dask', 'distributed'} & {m.split('.')[0] for m in sys.modules}")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_cluster_equals_in_process_and_spectra_once_per_worker():
    distributed = pytest.importorskip("distributed")
    layer = SignalConv1D(2, 8191, corr=True, strides_down=4, padding="same_reflect",
                         use_bias=True, bias_initializer="random_normal")
    width, chunk = 2**24, 2**21
    x = da.random.default_rng(7).standard_normal((1, width, 1), chunks=(1, chunk, 1),
                                                  dtype=np.float32)
    expected = layer(x.compute(scheduler="synchronous"))
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        actual = layer(x).compute()
        stats = client.run(dask_front.process_stats)
    assert_close(actual, expected, RTOL[np.dtype(np.float32)])
    assert sum(s["blocks"] for s in stats.values()) == width // chunk
    for s in stats.values():
        # One layer per worker, whose phase kernels and spectra (at one or two
        # FFT lengths) were computed once, not once per block.
        assert s["layers"] == 1 and s["kernel_arrays"] == s["kernel_entries"] <= 3
