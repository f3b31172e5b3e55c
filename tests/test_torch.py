"""The PyTorch module: autograd against finite differences, tfc's gradients, the layer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from fft_chunks import gathered_rows, short_chunks
from golden import RTOL_TFC, array

torch = pytest.importorskip("torch")

from fftconv import SignalConv1D  # noqa: E402
from fftconv.torch import SignalConv1d  # noqa: E402

FILE = "signalconv1d_grads_tfc.npz"

GRADCHECK = [
    dict(filters=3, kernel_support=5, strides_down=2, padding="same_zeros"),
    dict(filters=2, kernel_support=4, strides_up=3, padding="same_zeros", channel_separable=True,
         use_bias=True),
    dict(filters=2, kernel_support=6, corr=True, padding="same_reflect", use_bias=True,
         activation="tanh", kernel_parameter="variable"),
    dict(filters=2, kernel_support=7, strides_up=2, strides_down=3, padding="valid",
         data_format="channels_last", use_bias=True, activation="softplus"),
]


def _inputs(module: SignalConv1d, width: int = 13, device: str = "cpu") -> torch.Tensor:
    shape = ((2, 2, width) if module.data_format == "channels_first" else (2, width, 2))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, generator=generator)
    return x.to(device).requires_grad_(True)


def _gradcheck(module: SignalConv1d, x: torch.Tensor) -> None:
    names = [name for name, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())

    def call(x, *values):
        return torch.func.functional_call(module, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(call, (x, *params))


@pytest.mark.parametrize("options", GRADCHECK)
def test_gradcheck(options):
    module = SignalConv1d(2, **options, dtype=torch.float64, bias_initializer="random_normal")
    _gradcheck(module, _inputs(module))


def test_gradcheck_torch_activation():
    module = SignalConv1d(2, 2, 3, padding="same_zeros", activation=torch.sin,
                          dtype=torch.float64)
    _gradcheck(module, _inputs(module))


@pytest.mark.gpu
def test_gradcheck_cuda():
    pytest.importorskip("cupy")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    module = SignalConv1d(2, 3, 5, strides_down=2, padding="same_reflect", dtype=torch.float64,
                          backend="cupy").cuda()
    _gradcheck(module, _inputs(module, device="cuda"))


@pytest.mark.parametrize("index", range(40))
def test_tfc_gradients(index):
    case = json.loads(str(array(FILE, "configs")[index]))
    cid = case["id"]
    layer = dict(case["layer"])
    module = SignalConv1d(case["input_shape"][2], layer.pop("filters"),
                          layer.pop("kernel_support"), **layer, data_format="channels_last")
    weights = [array(FILE, f"{cid}_w{j}") for j in range(case["n_weights"])]
    module.set_weights(weights)
    assert module.weight_names == case["weight_names"]
    for ours, theirs in zip(module.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    x = torch.from_numpy(array(FILE, f"{cid}_x")).requires_grad_(True)
    module(x).backward(torch.from_numpy(array(FILE, f"{cid}_g")))
    expected = [array(FILE, f"{cid}_dx")] + [array(FILE, f"{cid}_dw{j}")
                                             for j in range(case["n_weights"])]
    actual = [x.grad] + [getattr(module, name).grad for name in module.weight_names]
    for ours, theirs in zip(actual, expected, strict=True):
        scale = np.abs(theirs).max()
        assert np.abs(ours.numpy() - theirs).max() <= RTOL_TFC * scale


def test_matches_the_layer():
    module = SignalConv1d(3, 4, 9, corr=True, strides_down=2, padding="same_zeros",
                          use_bias=True, activation="relu", bias_initializer="random_normal")
    layer = SignalConv1D(4, 9, corr=True, strides_down=2, padding="same_zeros", use_bias=True,
                         activation="relu", data_format="channels_first")
    layer.build((None, 3, None))
    layer.set_weights(module.get_weights())
    x = torch.randn(2, 3, 40)
    np.testing.assert_allclose(module(x).detach().numpy(), layer(x.numpy()), atol=1e-6)


def test_only_needed_gradients():
    module = SignalConv1d(1, 2, 5, padding="same_zeros", use_bias=True)
    module.requires_grad_(False)
    x = torch.randn(1, 1, 16, requires_grad=True)
    module(x).sum().backward()  # an expanded cotangent (zero strides)
    assert x.grad.shape == x.shape and module.kernel_real.grad is None


def test_arguments_checked():
    with pytest.raises(ValueError, match="kernel_parameter"):
        SignalConv1d(1, 1, 3, kernel_parameter=np.ones((3, 1, 1)))
    with pytest.raises(TypeError, match="dtype"):
        SignalConv1d(1, 1, 3, dtype=torch.int32)
    module = SignalConv1d(2, 1, 3)
    with pytest.raises(TypeError, match="dtype"):
        module(torch.ones(1, 2, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="2 channels"):
        module(torch.ones(1, 3, 8))
    with pytest.raises(ValueError, match="rank 3"):
        module(torch.ones(2, 8))
    with pytest.raises(ValueError, match="weights"):
        module.set_weights([np.ones(3)])


def test_import_fftconv_does_not_import_torch():
    code = "import sys, fftconv; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- input spectra kept from the forward pass ------------------------------------------

#: float64 results with and without the kept spectra: the same arithmetic, to rounding.
RTOL_KEPT = 1e-12

KEPT = [
    dict(filters=3, kernel_support=9, strides_down=2, padding="same_zeros"),
    dict(filters=2, kernel_support=7, strides_up=3, padding="same_zeros", channel_separable=True,
         use_bias=True),
    dict(filters=2, kernel_support=33, corr=True, padding="same_reflect", use_bias=True,
         activation="tanh", kernel_parameter="variable", data_format="channels_last"),
]


def _kept_pair(options: dict) -> tuple[SignalConv1d, SignalConv1d]:
    """One float64 FFT module in several chunks, without and with `keep_spectra`."""
    plain, kept = (SignalConv1d(2, **options, dtype=torch.float64, method="fft",
                                config=short_chunks(), bias_initializer="random_normal",
                                keep_spectra=keep) for keep in (False, True))
    kept.set_weights(plain.get_weights())
    return plain, kept


@pytest.mark.parametrize("options", KEPT)
def test_kept_spectra_give_the_same_gradients(options):
    results = []
    for module in _kept_pair(options):
        x = _inputs(module, width=150)
        y = module(x)
        y.backward(torch.from_numpy(np.random.default_rng(2).standard_normal(tuple(y.shape))))
        results.append([y.detach(), x.grad] + [p.grad for p in module.parameters()])
    for ours, theirs in zip(*results, strict=True):
        assert np.abs(ours.numpy() - theirs.numpy()).max() <= RTOL_KEPT * theirs.abs().max()


def test_kept_spectra_are_not_transformed_again(monkeypatch):
    rows = gathered_rows(monkeypatch)
    backward = []
    for module in _kept_pair(KEPT[0]):
        x = _inputs(module, width=150).requires_grad_(False)  # the kernel gradient only
        rows.clear()
        y = module(x)
        forward = list(rows)
        assert bool(y.grad_fn.kept) == module.keep_spectra
        rows.clear()
        y.backward(torch.ones_like(y))
        backward.append(sum(rows))
        assert y.grad_fn.kept is None  # freed
    assert len(forward) > 1 and backward == [sum(forward), 0]
