"""The GPU backend's logic, run with NumPy standing in for CuPy (see ``device_standin``).

Backend selection, where results go, plans and kernel operands cached per device,
chunked transforms, bounded plan caches and the error messages without CuPy or a
GPU.  The numbers themselves are checked on every backend by the golden and
property tests; ``test_gpu.py`` repeats what needs a real device.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

import numpy as np
import pytest
from device_standin import DeviceArray, use_device
from golden import RTOL, assert_close

import fftconv
from fftconv.backends import backend_for, cupy_backend, get_backend
from fftconv.backends.cpu import CPUBackend
from fftconv.backends.cupy_backend import CupyBackend, PlanCache
from fftconv.config import device_config, load_config

RNG = np.random.default_rng(11)


def _layer(**options):
    options.setdefault("kernel_parameter", RNG.standard_normal((257, 3, 4)).astype(
        np.float32) / 16)
    return fftconv.SignalConv1D(4, 257, corr=True, padding="same_zeros", **options)


def _input(width=3000, batch=2):
    return RNG.standard_normal((batch, width, 3)).astype(np.float32)


def test_a_device_array_runs_on_its_device_and_stays_there(gpu):
    layer, x = _layer(), _input()
    want = layer(x)
    with use_device(1):
        xd = gpu.xp.asarray(x)
    y = layer(xd)
    assert type(y) is DeviceArray and y.device.id == 1
    assert_close(gpu.to_host(y), want, RTOL[np.dtype("float32")])
    backend = layer.engine.backend_for(xd)
    assert isinstance(backend, CupyBackend) and backend.device == "cuda:1"


def test_host_data_with_backend_cupy_goes_there_and_back(gpu):
    layer, x = _layer(backend="cupy", method="fft"), _input()
    y = layer(x)
    assert type(y) is np.ndarray
    assert_close(y, _layer(method="fft", kernel_parameter=layer.kernel)(x),
                 RTOL[np.dtype("float32")])
    backend = layer.engine.backend
    assert backend.name == "cupy" and backend.plans.made >= 2  # forward and inverse plans
    assert [key for key in layer.engine.spectra.keys() if key[0] == "fft"][0][-1] == "cuda:0"


def test_auto_keeps_host_data_on_the_cpu(gpu):
    layer = _layer()
    assert isinstance(layer.engine.backend_for(_input()), CPUBackend)
    assert type(layer(_input().tolist())) is np.ndarray


def test_signal_conv1d_follows_its_input(gpu):
    x, kernel = _input(), RNG.standard_normal((9, 3, 5)).astype(np.float32)
    want = fftconv.signal_conv1d(x, kernel, strides_down=4)
    y = fftconv.signal_conv1d(gpu.xp.asarray(x), gpu.xp.asarray(kernel), strides_down=4)
    assert type(y) is DeviceArray and y.dtype == np.float32
    assert_close(gpu.to_host(y), want, RTOL[np.dtype("float32")])


def test_bias_and_activations_run_on_the_device(gpu):
    x = _input(500)
    for activation in ("relu", "gelu", "sigmoid", "swish", "tanh", "softplus"):
        layer = _layer(use_bias=True, bias_parameter=RNG.standard_normal(4),
                       activation=activation)
        y = layer(gpu.xp.asarray(x))
        assert type(y) is DeviceArray
        assert_close(gpu.to_host(y), layer(x), RTOL[np.dtype("float32")])


def test_a_cpu_backend_refuses_a_device_array(gpu):
    x = gpu.xp.asarray(_input())
    for name in ("numpy", "pyfftw"):
        with pytest.raises(TypeError, match=rf"array on a GPU.*backend='{name}'.*'auto' or "
                                            r"'cupy'"):
            _layer(backend=name)(x)


def test_operands_are_cached_per_device(gpu):
    layer, x = _layer(method="fft"), _input()
    for device in (0, 1, 0, 1):
        with use_device(device):
            xd = gpu.xp.asarray(x)
        assert layer(xd).device.id == device
    keys = [key for key in layer.engine.spectra.keys() if key[0] == "fft"]
    assert sorted(key[-1] for key in keys) == ["cuda:0", "cuda:1"]
    assert layer.engine.spectra.computed == 3  # the host phase kernels, and once per device
    layer(x)  # the CPU adds its own
    assert sorted(key[-1] for key in layer.engine.spectra.keys() if key[0] == "fft") == [
        "cpu", "cuda:0", "cuda:1"]


def test_plans_are_per_device_and_pure(gpu):
    layer, x = _layer(), _input(200_000, batch=4)
    cpu_plan = layer.plan_for(x.shape)
    layer(gpu.xp.asarray(x))
    plans = layer.engine._plans
    assert [plans[key].device for key in plans] == ["cpu", "cuda"]  # one per device
    assert [key[2] for key in plans][1] == "cupy" and cpu_plan.device == "cpu"
    with use_device(1):
        layer(gpu.xp.asarray(x))  # a plan of its own on another GPU (measured ones differ)
    assert [key[2:4] for key in plans] == [(layer.engine.backend.name, "cpu"),
                                          ("cupy", "cuda:0"), ("cupy", "cuda:1")]
    gpu_plan = fftconv.plan(layer.spec, (4, 3, 200_000), "float32", "cupy", None, filters=4)
    assert gpu_plan.device == "cuda" and gpu_plan.threads == 1
    assert "device=cuda" in str(gpu_plan) and gpu_plan.variant in ("fft", "direct-fir")
    assert gpu_plan.candidates != cpu_plan.candidates  # another cost model


def test_block_transforms_run_in_chunks_within_the_budget(gpu):
    config = load_config()
    small = dataclasses.replace(config, cupy=dataclasses.replace(
        config.cupy, fft_chunk_bytes=1 << 20, cufft_max_length=2048))
    assert device_config(small, "cuda").memory.fft_bytes == 1 << 20
    layer, x = _layer(method="fft", config=small), _input(25_000)
    y = layer(gpu.xp.asarray(x))
    chosen = layer.engine._plans[next(iter(layer.engine._plans))]
    assert chosen.n_fft == 2048 and -(-chosen.problem.outputs // chosen.block) == 14
    # 6 blocks per chunk (3 * 2 * (3 + 4) * 2048 * 4 bytes each): chunks of 6, 6 and 2.
    # Forward plans over 36 rows, then 8 + 4 (12 rows); inverse over 48, then 16.
    assert gpu.fft.plans_made == 5 == get_backend("cupy").plans.made
    assert_close(gpu.to_host(y), _layer(method="fft", kernel_parameter=layer.kernel)(x),
                 RTOL[np.dtype("float32")])


def test_plan_cache_is_bounded_by_count_and_bytes():
    made = []
    cache = PlanCache(max_plans=3, max_bytes=100, nbytes=lambda plan: plan)
    for key, size in enumerate((10, 20, 30, 40)):
        cache.get(key, lambda size=size: made.append(size) or size)
    assert len(cache) == 3 and cache.nbytes == 90 and cache.made == 4
    cache.get(1, lambda: pytest.fail("a cached plan is made again"))
    cache.get(9, lambda: 60)  # 1 is now the most recent: 2 and 3 go, over 100 bytes
    assert len(cache) == 2 and cache.nbytes == 80
    cache.get(10, lambda: 500)  # alone over the bound: kept, the others dropped
    assert len(cache) == 1 and cache.nbytes == 500


def test_gpu_plan_cache_stays_bounded_over_many_widths(gpu):
    config = load_config()
    bounded = dataclasses.replace(config, cupy=dataclasses.replace(config.cupy, max_plans=4))
    layer = _layer(method="fft", config=bounded)
    for width in range(3000, 3000 + 40 * 997, 997):
        layer(gpu.xp.asarray(_input(width, batch=1)))
    backend = layer.engine.backend_for(gpu.xp.asarray(_input(10)))
    assert backend.plans.max_plans == 4 and len(backend.plans) <= 4 < backend.plans.made


def test_transform_pieces_match_numpy(gpu):
    backend = get_backend("cupy")
    block = backend.chunk_fft(11, 7, 48, np.float64)
    for rows in (1, 5, 11):
        data = RNG.standard_normal((rows, 48))
        block.real_in[:rows] = gpu.xp.asarray(data)
        spectra = block.forward(rows)
        assert spectra.shape == (rows, 25)
        np.testing.assert_allclose(gpu.to_host(spectra), np.fft.rfft(data), atol=1e-12)
    assert backend.plans.made <= 6  # power-of-two pieces: 1, 4, 8, 2, the whole ...


def test_errors_without_cupy(monkeypatch):
    monkeypatch.setattr(cupy_backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match=r"needs CuPy.*fftconv\[cuda12\].*fftconv\[cuda13\]"):
        get_backend("cupy")
    layer = _layer(backend="cupy")  # made, and planned, without CuPy
    assert layer.engine.plan_for((2, 3, 5000), np.float32).device == "cuda"
    with pytest.raises(ImportError, match="needs CuPy"):
        layer(_input())
    assert type(_layer()(_input())) is np.ndarray  # the CPU is unaffected


def test_errors_without_a_device(monkeypatch):
    fake = _fake_cupy(devices=0)
    monkeypatch.setattr(cupy_backend, "_cupy", None)
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(RuntimeError, match=r"needs a CUDA GPU, and CuPy 99\.0 finds none"):
        get_backend("cupy")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        _layer(backend="cupy")(_input())


def _fake_cupy(devices: int) -> dict[str, types.ModuleType]:
    """Modules named like CuPy's, with `devices` CUDA devices and nothing else."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "99.0"
    runtime = types.SimpleNamespace(getDeviceCount=lambda: devices,
                                    CUDARuntimeError=type("CUDARuntimeError", (RuntimeError,), {}))
    cupy.cuda = types.SimpleNamespace(runtime=runtime)
    modules = {"cupy": cupy}
    for name in ("cupy.cublas", "cupyx", "cupyx.scipy", "cupyx.scipy.fft",
                 "cupyx.scipy.special"):
        modules[name] = types.ModuleType(name)
    return modules


def test_backend_for_recognises_cupy_arrays_without_importing_cupy():
    code = ("import sys, numpy as np, fftconv\n"
            "from fftconv.backends import backend_for\n"
            "layer = fftconv.SignalConv1D(2, 5)\n"
            "layer(np.ones((1, 50, 3)))\n"
            "assert backend_for(np.ones(3)).name in ('numpy', 'pyfftw')\n"
            "assert 'cupy' not in sys.modules, 'cupy imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_for_names_the_backend_of_a_call(gpu):
    assert backend_for(np.ones(3), "numpy").name == "numpy"
    assert backend_for(np.ones(3), "cupy").device == "cuda:0"
    with use_device(2):
        on_two = gpu.xp.asarray(np.ones(3))
    assert backend_for(on_two).device == "cuda:2"
    assert backend_for(on_two) is backend_for(on_two, "cupy")  # one instance per device


def test_filter_file_on_the_gpu_backend(gpu, tmp_path):
    pytest.importorskip("soundfile")
    from audio_data import RTOL as AUDIO_RTOL
    from audio_data import decaying, noise, read, reference, write

    from fftconv import audio

    x, ir = noise(20_000, 2, seed=1), decaying(3000, 2, seed=2)
    source, response = write(tmp_path / "in.wav", x), write(tmp_path / "ir.wav", ir)
    result = audio.filter_file(source, response, tmp_path / "out.wav", length="full",
                               block_size=4096, backend="cupy", progress=False)
    assert result.frames == 20_000 + 3000 - 1
    assert get_backend("cupy").blocks_made > 0  # the stream's transforms ran there
    want = reference(read(source), read(response), "full")
    assert_close(read(tmp_path / "out.wav"), want, AUDIO_RTOL)


def test_tune_measures_the_cupy_section(gpu, tmp_path, monkeypatch, capsys):
    from fftconv import cli, tune_gpu
    from fftconv.config import read_config

    for name, value in (("FFT_POINTS", 1 << 14), ("SHORT_LENGTHS", (64,)),
                        ("LONG_LENGTHS", (4096,)), ("GEMM_ROWS", 256), ("COPY_SAMPLES", 4096)):
        monkeypatch.setattr(tune_gpu, name, value)
    out = tmp_path / "gpu.toml"
    assert cli.main(["tune", "--backend", "cupy", "--suite", "tiny", "--output", str(out),
                     "--repeat", "1"]) == 0
    err = capsys.readouterr().err
    assert "kernel launch" in err and "case 1/3" in err and "fit: regret" in err
    measured, default = read_config(out), load_config(None, user_profile=False)
    assert measured.cupy != default.cupy and measured.cupy.max_plans == default.cupy.max_plans
    assert (measured.fft, measured.direct, measured.memory) == (default.fft, default.direct,
                                                                default.memory)


def test_tune_without_cupy_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    from fftconv import cli

    monkeypatch.setattr(cupy_backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)
    out = tmp_path / "gpu.toml"
    assert cli.main(["tune", "--backend", "cupy", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fftconv tune: error: backend 'cupy' needs CuPy") and "cuda13" in err
    assert not out.exists()


def test_scipy_style_functions_compute_on_the_gpu_and_return_host_arrays(gpu):
    x, h = RNG.standard_normal((4, 3000)), RNG.standard_normal((1, 65))
    y = fftconv.convolve(x, h, "same", axes=1, backend="cupy", method="fft")
    assert type(y) is np.ndarray
    assert_close(y, fftconv.convolve(x, h, "same", axes=1), RTOL[np.dtype("float64")])
    assert get_backend("cupy").blocks_made > 0
