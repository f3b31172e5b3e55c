"""PyTorch front: :class:`SignalConv1d`, a ``torch.nn.Module`` on fftconv's engine.

Forward and backward both run on the engine (the backward through
:class:`fftconv.vjp.Adjoint`), wrapped in one ``torch.autograd.Function``.  CPU
tensors reach it as NumPy views (``tensor.detach().numpy()``, no copy) and the
results come back through ``torch.from_numpy`` (no copy).  CUDA tensors go to
the engine as CuPy arrays through DLPack (no copy either), which runs them on
their GPU with ``backend='auto'`` or ``'cupy'`` (this needs CuPy; the branch has
not been run on a GPU yet).  The kernel and its gradient are small and computed
on the host.

Requires the optional dependency ``torch`` (``pip install 'fftconv[torch]'``);
``import fftconv`` does not import this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from fftconv import activations
from fftconv.config import Config
from fftconv.layer import SignalConv1D
from fftconv.spec import positive_int
from fftconv.vjp import Adjoint, rdft_gradients

__all__ = ["SignalConv1d"]

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


class SignalConv1d(nn.Module):
    """tfc's ``SignalConv1D`` as a PyTorch module, computed by fftconv's engine.

    The arguments are those of :class:`fftconv.SignalConv1D` (tfc's), plus
    `in_channels` so that the parameters exist before the first call, as
    in ``torch.nn.Conv1d``.  Parameters are ``kernel_real`` and ``kernel_imag``
    (``'rdft'``, each ``(in_channels, filters, K//2 + 1)``, tfc's RDFT layout)
    or ``kernel`` (``'variable'``, ``(K, in_channels, filters)``), and ``bias``
    (``(C_out,)``) with `use_bias`; they are initialised as the layer does.

    Parameters
    ----------
    in_channels : int
    filters, kernel_support, corr, strides_down, strides_up, padding, extra_pad_end,
    channel_separable, use_bias, kernel_initializer, bias_initializer
        As for :class:`fftconv.SignalConv1D`.
    data_format : {'channels_first', 'channels_last'}
        Input layout ``(N, C, W)`` (the default, torch's) or ``(N, W, C)``.
    activation : None, str or callable
        A name (``'relu'``, ``'tanh'``, ...) is applied in NumPy inside the
        autograd function, and its derivative in the backward pass (which keeps
        the pre-activation output); a callable is applied to the output tensor
        by torch, so any differentiable torch function works.
    kernel_parameter : {'rdft', 'variable'}
    dtype : torch.float32 or torch.float64
        Of the parameters; inputs must have the parameters' dtype (``.double()``
        converts both as usual).
    method, backend, config, planning
        Engine options, as for :class:`fftconv.SignalConv1D`.
    keep_spectra : bool
        Memory for speed.  When the forward pass runs the FFT path and the
        kernel's gradient is wanted, keep the spectra of its input blocks until
        the backward pass, which then takes them instead of transforming the
        blocks again (the same gradient, to rounding), and drops them.  They
        take about ``(n_fft/2 + 1) / (n_fft - Kp + 1)`` complex values per input
        sample and channel, ``n_fft / (n_fft - Kp + 1)`` times the input's bytes
        (``n_fft`` the plan's FFT length, ``Kp`` its phase kernel length, ``K``
        at stride 1): 4/3 for ``n_fft = 4*Kp``.  Off by default.

    Notes
    -----
    The gradients of ``kernel_real`` and ``kernel_imag`` are tfc's, through the
    ``irfft`` that makes the kernel (:func:`fftconv.vjp.rdft_gradients`): the
    ``rfft`` of the kernel's gradient, bins other than DC (and Nyquist for even
    ``K``) doubled, over ``sqrt(K)``.  Only the kernel and, with an activation,
    the pre-activation output are kept for the backward pass besides `x` (and
    the input spectra with `keep_spectra`).
    """

    def __init__(self, in_channels: int, filters: int, kernel_support: int,
                 corr: bool = False, strides_down: int = 1, strides_up: int = 1,
                 padding: str = "valid", extra_pad_end: bool | None = None,
                 channel_separable: bool = False, data_format: str = "channels_first",
                 activation: str | Callable | None = None, use_bias: bool = False,
                 kernel_parameter: str = "rdft", kernel_initializer: Any = "variance_scaling",
                 bias_initializer: Any = "zeros", *, dtype: torch.dtype = torch.float32,
                 method: str = "auto", backend: str = "auto", config: Config | str | None = None,
                 planning: str | None = None, keep_spectra: bool = False) -> None:
        super().__init__()
        if not (isinstance(kernel_parameter, str) and kernel_parameter in ("rdft", "variable")):
            raise ValueError(f"`kernel_parameter` must be 'rdft' or 'variable', got "
                             f"{kernel_parameter!r}.")
        if dtype not in _DTYPES:
            raise TypeError(f"`dtype` must be torch.float32 or torch.float64, got {dtype!r}.")
        self.in_channels = positive_int(in_channels, "in_channels")
        named = activation is None or isinstance(activation, str)
        self._layer = SignalConv1D(
            filters, kernel_support, corr, strides_down, strides_up, padding, extra_pad_end,
            channel_separable, data_format, activation if named else None, use_bias,
            kernel_parameter=kernel_parameter, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, dtype=_DTYPES[dtype], method=method,
            backend=backend, config=config, planning=planning)
        self.output_activation = None if named else activation
        self.keep_spectra = bool(keep_spectra)
        self._layer.build((None, None, self.in_channels) if self._layer.time_major else
                          (None, self.in_channels, None))
        self._adjoint = Adjoint(self._layer.engine)
        self.weight_names = self._layer.weight_names()
        for name, value in zip(self.weight_names, self._layer.get_weights(), strict=True):
            self.register_parameter(name, nn.Parameter(torch.from_numpy(value)))

    @property
    def data_format(self) -> str:
        return self._layer.data_format

    def time_domain_kernel(self) -> torch.Tensor:
        """The kernel, shape ``(K, in_channels, filters)`` (a new tensor, without gradient)."""
        return torch.from_numpy(self._kernel_array([_host(w) for w in self._kernel_weights()]))

    def _kernel_weights(self) -> list[torch.Tensor]:
        """The kernel's parameters, in :attr:`weight_names` order."""
        return [getattr(self, name) for name in self.weight_names if name != "bias"]

    def _kernel_array(self, weights: list[np.ndarray]) -> np.ndarray:
        """The time-domain kernel from the arrays of :meth:`_kernel_weights`.

        For ``'rdft'``: ``irfft(real + 1j*imag, n=K) * sqrt(K)``, as
        :class:`~fftconv.parameters.RDFTParameter` makes it, in NumPy: microseconds
        for a kernel, where torch's CPU transforms took about 10 ms a call, whatever
        their size, on the development machine.
        """
        if len(weights) == 1:
            return weights[0].copy()  # the parameter may change before the backward pass
        imag, real = weights
        support = self._layer.kernel_support
        kernel = np.fft.irfft(real + 1j * imag, n=support, axis=-1) * np.sqrt(support)
        return np.ascontiguousarray(kernel.transpose(2, 0, 1), dtype=real.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Parameters
        ----------
        x : Tensor, shape (N, C_in, W) or (N, W, C_in) per `data_format`
            On the parameters' device, in their dtype.

        Returns
        -------
        Tensor, shape (N, C_out, W_out) or (N, W_out, C_out)
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}.")
        weights = self._kernel_weights()
        if x.dtype != weights[0].dtype or x.device != weights[0].device:
            raise TypeError(f"`x` must have the parameters' dtype {weights[0].dtype} and "
                            f"device {weights[0].device}, got {x.dtype} on {x.device}.")
        self._layer.compute_output_shape(tuple(x.shape))  # checks the rank and the width
        axis = 1 if self.data_format == "channels_first" else 2
        if x.shape[axis] != self.in_channels:
            raise ValueError(f"`x` must have {self.in_channels} channels on axis {axis} "
                             f"({self.data_format}), got shape {tuple(x.shape)}.")
        keep = self.keep_spectra and torch.is_grad_enabled()  # else no backward pass follows
        y = _SignalConv.apply(x, getattr(self, "bias", None), self, keep, *weights)
        return y if self.output_activation is None else self.output_activation(y)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters in tfc's ``get_weights()`` order (:attr:`weight_names`)."""
        return [getattr(self, name).detach().cpu().numpy().copy() for name in self.weight_names]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Load arrays in tfc's ``get_weights()`` order and shapes, e.g. from a tfc layer.

        Raises
        ------
        ValueError, TypeError
            As :meth:`fftconv.SignalConv1D.set_weights` does.
        """
        self._layer.set_weights(weights)  # validates the count, shapes and values
        with torch.no_grad():
            for name, value in zip(self.weight_names, weights, strict=True):
                getattr(self, name).copy_(torch.as_tensor(np.asarray(value)))

    def extra_repr(self) -> str:
        s = self._layer.spec
        return (f"in_channels={self.in_channels}, filters={self._layer.filters}, "
                f"kernel_support={s.kernel_support}, corr={s.corr}, "
                f"strides_down={s.strides_down}, strides_up={s.strides_up}, "
                f"padding={s.padding!r}, channel_separable={s.channel_separable}, "
                f"data_format={self.data_format!r}, parameters={self.weight_names}")


class _SignalConv(torch.autograd.Function):
    """``y = act(layer(x, kernel) + bias)``: the engine's forward and vector-Jacobian product.

    The kernel's parameters come last (one ``kernel``, or ``kernel_imag`` and
    ``kernel_real``); their gradients are the kernel's mapped by
    :func:`~fftconv.vjp.rdft_gradients` for an RDFT kernel.  With `keep`, the
    spectra of the forward's input blocks wait in ``ctx`` for the kernel gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bias: torch.Tensor | None, module: SignalConv1d,
                keep: bool, *weights: torch.Tensor) -> torch.Tensor:
        layer = module._layer
        last = layer.time_major
        kernel = module._kernel_array([_host(w) for w in weights])
        token = _digest(kernel)
        xa = _array(x)
        ctx.kept = {} if keep and any(ctx.needs_input_grad[4:]) else None
        z = layer.engine(xa.transpose(0, 2, 1) if last else xa, lambda: kernel, token,
                         time_major=last, keep=ctx.kept)
        if bias is not None:
            z += _array(bias)[:, None]
        y = z if layer.activation is None else layer.activation(z)
        ctx.save_for_backward(x)
        ctx.module, ctx.kernel, ctx.token = module, kernel, token
        ctx.z = None if layer.activation is None else z
        return _tensor(y.transpose(0, 2, 1) if last else y)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        layer = ctx.module._layer
        last = layer.time_major
        needs = ctx.needs_input_grad
        xa, ga = _array(x), _array(g)
        if last:
            xa, ga = xa.transpose(0, 2, 1), ga.transpose(0, 2, 1)
        if ctx.z is not None:
            ga = ga * activations.derivative(layer.activation)(ctx.z)
        grads = ctx.module._adjoint(xa, ga, lambda: ctx.kernel, ctx.token, wrt_x=needs[0],
                                    wrt_kernel=any(needs[4:]), time_major=last, kept=ctx.kept)
        ctx.kept = None  # used: free the spectra now, not with the graph
        dx = None
        if needs[0]:
            dx = _tensor(grads.x.transpose(0, 2, 1) if last else grads.x)
        dbias = _tensor(grads.bias) if needs[1] else None
        dweights = [None] * (len(needs) - 4)
        if any(needs[4:]):
            arrays = rdft_gradients(grads.kernel) if len(dweights) == 2 else [grads.kernel]
            dweights = [torch.from_numpy(a).to(x.device) for a in arrays]
        return dx, dbias, None, None, *dweights


def _host(t: torch.Tensor) -> np.ndarray:
    """A NumPy array of `t` (a view for a CPU tensor; the kernel's parameters are small)."""
    return t.detach().cpu().numpy()


def _array(t: torch.Tensor) -> Any:
    """`t` for the engine without a copy: a NumPy view, or a CuPy array through DLPack.

    Raises
    ------
    ImportError
        For a CUDA tensor without CuPy.
    TypeError
        For a tensor on another device.
    """
    t = t.detach()
    if t.device.type == "cpu":
        return t.numpy()
    if t.device.type != "cuda":
        raise TypeError(f"fftconv.torch takes CPU or CUDA tensors, got one on {t.device}.")
    try:
        import cupy
    except ImportError:
        raise ImportError("CUDA tensors need CuPy (pip install 'fftconv[cuda12]'), which is not "
                          "installed.") from None
    return cupy.from_dlpack(t)


def _tensor(a: Any) -> torch.Tensor:
    """`a` as a tensor on its device, without a copy (NumPy, or DLPack for CuPy arrays)."""
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.from_dlpack(a)


def _digest(kernel: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    """A content hash of `kernel`: the spectrum-cache token (unchanged weights reuse spectra)."""
    data = np.ascontiguousarray(kernel)
    return data.shape, hashlib.blake2b(data.data, digest_size=20).digest()
