"""The GPU's direct path for few channels: one FIR kernel, run here by its NumPy emulation.

The stand-in (``device_standin``) emulates the CUDA kernel from its launch
arguments alone, so the launch wrapper's packing, grid and dtype dispatch, the
backend's kernel cache and the path's place in the planner are tested without
a GPU; ``test_golden.py`` runs every golden case through it on ``cupy-standin``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from device_standin import DeviceArray, use_device
from golden import RTOL, array, assert_close, signalconv_cases
from reference import PADDINGS, reference_signal_conv1d

from fftconv import SignalConv1D
from fftconv.backends import get_backend
from fftconv.backends.cupy_backend import CUDA_TRAITS, CupyBackend
from fftconv.config import device_config, load_config
from fftconv.paths.fir import FIR_KERNELS, FIR_SOURCE, fir_launch
from fftconv.planner import Problem, direct_cost, direct_variant, plan

RNG = np.random.default_rng(23)
F32, F64 = FIR_KERNELS[np.dtype(np.float32)], FIR_KERNELS[np.dtype(np.float64)]
FEW = CUDA_TRAITS.shifted_min_channels - 1
GOLDEN = "signalconv1d_tfc.npz"


def _problem(groups: int, c_in: int, c_out: int, kp: int = 9) -> Problem:
    return Problem(batch=2, groups=groups, in_channels=c_in, out_channels=c_out,
                   kernel_length=kp, outputs=1000, itemsize=4)


@pytest.mark.parametrize(("groups", "c_in", "c_out"), [(1, 1, 1), (1, FEW, 64), (1, 64, FEW),
                                                       (5, 1, 3), (3, FEW, FEW)])
def test_few_channels_run_the_fir_kernel_on_a_gpu_only(groups, c_in, c_out):
    p = _problem(groups, c_in, c_out)
    for method in ("auto", "direct", "fft"):
        assert direct_variant(p, "cuda", method) == "direct-fir"
        assert direct_variant(p, "cpu", method) in ("direct-windows", "direct-shifted")
    # A method naming another variant still forces it.
    assert direct_variant(p, "cuda", "direct-windows") == "direct-windows"
    # The kernel reads each input sample where it lies, gathering no windows.
    config = device_config(load_config(), "cuda")
    assert direct_cost(p, config, "direct-fir") < direct_cost(p, config, "direct-windows")
    assert direct_cost(p, config) == direct_cost(p, config, "direct-fir")


def test_many_channels_keep_their_variants_on_a_gpu():
    wide = CUDA_TRAITS.shifted_min_channels
    assert direct_variant(_problem(1, wide, wide), "cuda") == "direct-shifted"
    assert direct_variant(_problem(2, wide, wide), "cuda") == "direct-windows"


def test_the_plan_names_the_fir_path_on_a_gpu():
    layer = SignalConv1D(2, 31, padding="same_zeros", strides_down=2)
    shape = (4, 3, 5000)
    for backend, variant in (("cupy", "direct-fir"), ("numpy", "direct-windows")):
        chosen = plan(layer.spec, shape, "float32", backend, None, filters=2, method="direct")
        assert chosen.variant == variant


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(("strides_down", "strides_up", "corr"), [
    (1, 1, True), (2, 1, False), (1, 3, True), (3, 2, False), (2, 4, True)])
def test_layer_through_the_kernel_matches_the_reference(gpu, padding, separable, data_format,
                                                        strides_down, strides_up, corr):
    c_in, filters, k, width = 3, 2, 11, 37
    x = RNG.standard_normal((2, width, c_in))
    if data_format == "channels_first":  # channels_last: strided input and output
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    kernel = RNG.standard_normal((k, c_in, filters)) / np.sqrt(k * c_in)
    geometry = dict(corr=corr, strides_down=strides_down, strides_up=strides_up,
                    padding=padding, channel_separable=separable, data_format=data_format)
    want = reference_signal_conv1d(x, kernel, **geometry)
    for dtype in (np.float64, np.float32):
        layer = SignalConv1D(filters, k, **geometry, method="direct", dtype=dtype,
                             kernel_parameter=kernel)
        y = layer(gpu.xp.asarray(x.astype(dtype)))
        assert type(y) is DeviceArray and y.dtype == dtype
        assert_close(gpu.to_host(y), want, RTOL[np.dtype(dtype)])
    assert gpu.raw_kernel.compiled == [(F64, 0), (F32, 0)]  # both ran the kernel


def test_the_kernel_is_compiled_once_per_dtype_and_device_whatever_the_taps(gpu):
    x = RNG.standard_normal((2, 300, 2))
    for k, dtype, device in [(3, np.float32, 0), (40, np.float32, 0), (7, np.float64, 0),
                             (129, np.float64, 0), (5, np.float32, 1), (64, np.float32, 1)]:
        layer = SignalConv1D(3, k, padding="same_reflect", method="direct", dtype=dtype,
                             kernel_parameter=RNG.standard_normal((k, 2, 3)))
        with use_device(device):
            y = layer(gpu.xp.asarray(x.astype(dtype)))
        assert y.device.id == device
        assert_close(gpu.to_host(y), layer(x.astype(dtype)), RTOL[np.dtype(dtype)])
    assert gpu.raw_kernel.compiled == [(F32, 0), (F64, 0), (F32, 1)]


def test_an_empty_batch_launches_nothing(gpu):
    layer = SignalConv1D(2, 5, method="direct", kernel_parameter=RNG.standard_normal((5, 3, 2)))
    y = layer(gpu.xp.asarray(np.zeros((0, 20, 3), np.float32)))
    assert type(y) is DeviceArray and y.shape == (0, 16, 2)
    assert gpu.raw_kernel.compiled == []


def _launch_case(gpu, dtype=np.float32):
    """A backend of the stand-in and the arguments of one launch: G=2, Ci=3, Co=4, Kp=5,
    T=10, the input and the output strided (channels last in memory)."""
    xp = gpu.xp
    x = xp.asarray(RNG.standard_normal((2, 14, 6)).astype(dtype)).transpose(0, 2, 1)
    w = xp.asarray(RNG.standard_normal((2, 4, 3, 5)).astype(dtype))
    out = xp.empty((2, 10, 8), dtype).transpose(0, 2, 1)  # (B, G*Co, T)
    return get_backend("cupy"), x, w, out


def test_a_launch_computes_corr_valid_from_its_arguments(gpu):
    backend, x, w, out = _launch_case(gpu, np.float64)
    backend.launch(FIR_SOURCE, F64, *fir_launch(x, w, out))
    xh, wh = gpu.to_host(x).reshape(2, 2, 3, 14), gpu.to_host(w)
    windows = np.lib.stride_tricks.sliding_window_view(xh, 5, axis=-1)  # (B, G, Ci, T, Kp)
    want = np.einsum("bgitk,goik->bgot", windows, wh).reshape(2, 8, 10)
    assert_close(gpu.to_host(out), want, RTOL[np.dtype(np.float64)])


def test_bad_launches_raise_in_the_stand_in(gpu):
    backend, x, w, out = _launch_case(gpu)
    grid, block, args = fir_launch(x, w, out)
    with pytest.raises(TypeError, match=r"`w` is float64, the kernel takes float32"):
        backend.launch(FIR_SOURCE, F32, grid, block, (x, w.astype(np.float64), *args[2:]))
    with pytest.raises(TypeError, match=r"`x` is float32, the kernel takes float64"):
        backend.launch(FIR_SOURCE, F64, grid, block, args)
    with pytest.raises(TypeError, match="long long"):
        backend.launch(FIR_SOURCE, F32, grid, block, (*args[:3], *(int(v) for v in args[3:])))
    with pytest.raises(ValueError, match="does not cover the 160 outputs"):
        backend.launch(FIR_SOURCE, F32, grid, (128,), args)
    swapped = (*args[:5], args[6], args[5], *args[7:])  # Ci and Co exchanged
    with pytest.raises(ValueError, match=r"launch reaches `x` as shape \(2, 8, 14\)"):
        backend.launch(FIR_SOURCE, F32, grid, block, swapped)
    with pytest.raises(ValueError, match="emulates the kernels"):
        backend.launch(FIR_SOURCE.replace("f32", "f16"), F32, grid, block, args)
    assert gpu.raw_kernel.compiled == []  # nothing ran


def test_launch_without_kernels_says_so(gpu):
    backend = CupyBackend(dataclasses.replace(gpu, raw_kernel=None), 0, 4, 1 << 20)
    _, x, w, out = _launch_case(gpu)
    with pytest.raises(RuntimeError, match=rf"compile no CUDA kernels.*{F32}.*cuda:0"):
        backend.launch(FIR_SOURCE, F32, *fir_launch(x, w, out))


GOLDEN_CASES = [c for c in signalconv_cases() if c["expected"]["outcome"] == "output"]


@pytest.mark.slow
def test_golden_cases_through_the_kernel(gpu):
    """Every golden case with method 'direct' on the stand-in: few channels run the kernel."""
    fir = 0
    for case in GOLDEN_CASES:
        cid = case["id"]
        kw = dict(case["layer"], kernel_parameter=array(GOLDEN, f"{cid}_kernel"))
        if array(GOLDEN, f"{cid}_bias") is not None:
            kw["bias_parameter"] = array(GOLDEN, f"{cid}_bias")
        for dtype in (np.float32, np.float64):
            layer = SignalConv1D(**kw, method="direct", dtype=dtype)
            y = layer(gpu.xp.asarray(array(GOLDEN, f"{cid}_x").astype(dtype)))
            assert_close(gpu.to_host(y), array(GOLDEN, f"{cid}_y_ref"), RTOL[np.dtype(dtype)])
        (chosen,) = layer.engine._plans.values()
        p = chosen.problem
        assert (chosen.variant == "direct-fir") == (
            min(p.in_channels, p.out_channels) < CUDA_TRAITS.shifted_min_channels)
        fir += chosen.variant == "direct-fir"
    assert fir
