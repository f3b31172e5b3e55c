"""`SignalConv1D`, the layer with tfc's arguments, and its functional form."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from fftconv import activations, dask_front, initializers, regularizers
from fftconv._arrays import array_module, as_real_array, float_dtype
from fftconv.config import Config
from fftconv.engine import Engine, check_backend, check_method, check_planning
from fftconv.parameters import (
    RDFTParameter,
    VariableParameter,
    deserialize_parameter,
    serialize_parameter,
)
from fftconv.planner import Plan
from fftconv.spec import ConvSpec, data_format_name, positive_int
from fftconv.vjp import Adjoint, Gradients, weight_gradients

_PARAMETERS = (RDFTParameter, VariableParameter)


class SignalConv1D:
    """1-D convolution layer with the semantics of ``tfc.SignalConv1D``.

    The output is: upsample by `strides_up` (zero insertion), convolve
    (`corr=False`) or correlate (`corr=True`) with the kernel centred at
    ``K // 2``, downsample by `strides_down`, add the bias, apply the activation.
    Every combination of arguments is implemented, including those for which
    tfc raises ``NotImplementedError``.

    Parameters
    ----------
    filters : int
        Output channels, or filters per input channel when `channel_separable`.
    kernel_support : int
        Kernel length ``K`` (tfc's one-element list spelling is accepted).
    corr : bool
        Cross-correlate instead of convolve.
    strides_down, strides_up : int
        Downsampling after and upsampling before filtering.
    padding : {'valid', 'same_zeros', 'same_reflect'}
        Boundary handling (case-insensitive, as in tfc).  For ``same_reflect``
        pads longer than the input keep reflecting (``numpy.pad`` 'reflect'
        semantics; a width-1 input is repeated), where tfc fails.
    extra_pad_end : bool or None
        When upsampling, keep ``strides_up - 1`` skipped samples after the last
        input.  None means True for ``same_*`` and False for ``valid``.
    channel_separable : bool
        Filter each input channel on its own; output channel ``c*filters + f``.
    data_format : {'channels_last', 'channels_first'}
        Input layout ``(batch, width, channels)`` or ``(batch, channels, width)``.
    activation : None, str or callable
        Applied last; names as in Keras (``'relu'``, ``'tanh'``, ...).
    use_bias : bool
    use_explicit : bool
        Accepted for compatibility with tfc; it selects a TensorFlow op there
        and does not change results here.
    kernel_parameter : array, 'rdft', 'variable', callable or parameter
        An array of shape ``(K, C_in, filters)`` is a fixed kernel; ``'rdft'``
        creates an :class:`~fftconv.parameters.RDFTParameter`, ``'variable'`` a
        :class:`~fftconv.parameters.VariableParameter` when the layer is built; a
        callable returns the kernel.
    bias_parameter : array, 'variable', callable or parameter
        The same for the bias, shape ``(C_out,)``.
    kernel_initializer, bias_initializer : str, dict or callable
        Keras initializers (``'variance_scaling'``, ``'zeros'``, ...).
    kernel_regularizer, bias_regularizer : None, str, dict or callable
        Their values are listed in :attr:`losses`.
    dtype : {'float32', 'float64'}
        Computation dtype, anything :class:`numpy.dtype` reads as one of these
        (``'f8'``, ``numpy.float64``, ...); inputs are converted to it.
    method : {'auto', 'direct', 'fft', 'direct-shifted', 'direct-windows'}
        Execution path; 'auto' lets the planner choose per input shape; the
        last two force the direct path's form (shifted GEMMs apply to layers
        that are not channel separable).
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        Where calls run.  'auto' follows the input: a CuPy array on its GPU,
        anything else on the CPU (pyFFTW when installed, else scipy.fft).
        'cupy' runs every call on a GPU (numpy inputs go there and back).
    config : Config, path or None
        Cost-model configuration for the planner (default: ``$FFTCONV_CONFIG``,
        else the packaged ``configs/default.toml``).
    planning : {'estimate', 'measure'} or None
        'estimate' runs the planner's choice; 'measure' times its best
        candidates on the first call of each input shape and keeps the fastest,
        remembered in the plan-wisdom file of the cache directory (see
        :mod:`fftconv.plan_wisdom`).  None: the configuration's
        ``planner.planning`` (``'estimate'`` by default).
    name : str or None
    trainable : bool
        Kept for configuration compatibility with Keras.
    """

    def __init__(
        self,
        filters: int,
        kernel_support: int | Sequence[int],
        corr: bool = False,
        strides_down: int | Sequence[int] = 1,
        strides_up: int | Sequence[int] = 1,
        padding: str = "valid",
        extra_pad_end: bool | None = None,
        channel_separable: bool = False,
        data_format: str = "channels_last",
        activation: str | Callable | None = None,
        use_bias: bool = False,
        use_explicit: bool = True,
        kernel_parameter: Any = "rdft",
        bias_parameter: Any = "variable",
        kernel_initializer: Any = "variance_scaling",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        *,
        dtype: str = "float32",
        method: str = "auto",
        backend: str = "auto",
        config: Config | str | None = None,
        planning: str | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        self.dtype = float_dtype(dtype)
        self.filters = positive_int(filters, "filters")
        self.spec = ConvSpec.from_arguments(
            kernel_support, corr, strides_down, strides_up, padding, extra_pad_end,
            channel_separable,
        )
        self.data_format = data_format_name(data_format)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.use_explicit = bool(use_explicit)
        self.kernel_parameter = self._check_parameter(
            kernel_parameter, "kernel_parameter", ("rdft", "variable"))
        self.bias_parameter = self._check_parameter(
            bias_parameter, "bias_parameter", ("variable",))
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")
        self.method = check_method(method)
        self.backend = check_backend(backend)
        self.config = config
        self.planning = check_planning(planning)
        self.engine = Engine(self.spec, self.filters, self.method, self.backend, config,
                             planning=self.planning)
        self.name = "signal_conv1d" if name is None else str(name)
        self.trainable = bool(trainable)
        self.input_channels: int | None = None
        # Building creates random parameters: it must happen once, whoever calls first.
        self._build_lock = threading.RLock()

    # -- arguments ---------------------------------------------------------

    def _check_parameter(self, value: Any, argument: str, names: tuple[str, ...]) -> Any:
        """Accept a parameter name, a parameter, a callable or a fixed array."""
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"`{argument}` must be an array, a callable or one of "
                                 f"{names}, got {value!r}.")
            return value
        if isinstance(value, dict):
            value = _deserialize_value(value)
        if isinstance(value, _PARAMETERS) or callable(value):
            return value
        fixed = np.array(as_real_array(value, argument, self.dtype), copy=True)
        fixed.flags.writeable = False
        return fixed

    @property
    def kernel_support(self) -> int:
        return self.spec.kernel_support

    @property
    def corr(self) -> bool:
        return self.spec.corr

    @property
    def strides_down(self) -> int:
        return self.spec.strides_down

    @property
    def strides_up(self) -> int:
        return self.spec.strides_up

    @property
    def padding(self) -> str:
        return self.spec.padding

    @property
    def extra_pad_end(self) -> bool:
        return self.spec.extra_pad_end

    @property
    def channel_separable(self) -> bool:
        return self.spec.channel_separable

    @property
    def built(self) -> bool:
        return self.input_channels is not None

    @property
    def time_major(self) -> bool:
        """Whether inputs and outputs are ``(B, W, C)`` arrays (``data_format='channels_last'``)."""
        return self.data_format == "channels_last"

    @property
    def _channel_axis(self) -> int:
        return 2 if self.time_major else 1

    def _output_channels(self, input_channels: int) -> int:
        return input_channels * self.filters if self.channel_separable else self.filters

    # -- building ----------------------------------------------------------

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Create the parameters for inputs of `input_shape` (rank 3).

        Raises
        ------
        ValueError
            If the shape is not of rank 3, its channel dimension is undefined or
            < 1, or a fixed kernel or bias has the wrong shape.
        """
        shape = _check_shape(input_shape, "input_shape")
        c_in = shape[self._channel_axis]
        if c_in is None or c_in < 1:
            raise ValueError(f"`input_shape` must have a defined channel dimension >= 1 "
                             f"(axis {self._channel_axis} for {self.data_format}), got {shape}.")
        with self._build_lock:
            self._build(c_in)

    def _build(self, c_in: int) -> None:
        kernel_shape = (self.kernel_support, c_in, self.filters)
        self.kernel_parameter = self._built_parameter(
            self.kernel_parameter, "kernel_parameter", kernel_shape, self.kernel_initializer,
            "kernel")
        if self.use_bias:
            self.bias_parameter = self._built_parameter(
                self.bias_parameter, "bias_parameter", (self._output_channels(c_in),),
                self.bias_initializer, "bias")
        self.input_channels = c_in

    def _built_parameter(self, value: Any, argument: str, shape: tuple[int, ...],
                         initializer: Callable, name: str) -> Any:
        if isinstance(value, str) and value == "rdft":
            return RDFTParameter(initializer(shape, self.dtype.name), name=name, dtype=self.dtype)
        if isinstance(value, str):
            init = np.asarray(initializer(shape, self.dtype.name), dtype=self.dtype)
            return VariableParameter(init, name=name, dtype=self.dtype)
        actual = np.shape(value() if callable(value) else value)
        if actual != shape:
            layout = " (kernel_support, C_in, filters)" if name == "kernel" else ""
            raise ValueError(f"`{argument}` must have shape {shape}{layout} for this layer and "
                             f"input, got {actual}.{_TORCH_HINT if name == 'kernel' else ''}")
        return value

    # -- parameters ----------------------------------------------------------

    def _value(self, parameter: Any, argument: str) -> np.ndarray:
        if isinstance(parameter, str):
            raise RuntimeError(f"`{argument}` is not created yet: call build() first.")
        value = parameter() if callable(parameter) else parameter
        return as_real_array(value, argument, self.dtype)

    @property
    def kernel(self) -> np.ndarray:
        """The time-domain kernel, shape ``(K, C_in, filters)``."""
        return self._value(self.kernel_parameter, "kernel_parameter")

    def _kernel_token(self) -> tuple | str | None:
        """Identifies the kernel's value for the spectrum cache (None: untrackable)."""
        p = self.kernel_parameter
        if isinstance(p, _PARAMETERS):
            return (id(p), p.version)
        if isinstance(p, np.ndarray):
            return "fixed"  # a private read-only copy
        return None

    @property
    def bias(self) -> np.ndarray | None:
        """The bias, shape ``(C_out,)``, or None without `use_bias`."""
        if not self.use_bias:
            return None
        return self._value(self.bias_parameter, "bias_parameter")

    def _trainable_parameters(self) -> list:
        # tfc's order: the layer's own variables first (kernel, then bias), then
        # those of nested parameter objects (an RDFT kernel: imag, real).
        params = [self.kernel_parameter] + ([self.bias_parameter] if self.use_bias else [])
        own = [p for p in params if isinstance(p, VariableParameter)]
        nested = [p for p in params if isinstance(p, RDFTParameter)]
        return own + nested

    @property
    def weights(self) -> list[np.ndarray]:
        return self.get_weights()

    def weight_names(self) -> list[str]:
        """Names of the arrays of :meth:`get_weights`, in its order, as tfc names them.

        ``['bias', 'kernel_imag', 'kernel_real']`` for an RDFT kernel,
        ``['kernel', 'bias']`` for a variable one (no ``'bias'`` without `use_bias`).
        """
        names = []
        for p in self._trainable_parameters():
            role = "kernel" if p is self.kernel_parameter else "bias"
            rdft = isinstance(p, RDFTParameter)
            names += [f"{role}_imag", f"{role}_real"] if rdft else [role]
        return names

    def get_weights(self) -> list[np.ndarray]:
        """Trainable arrays in tfc's order: ``[bias, kernel_imag, kernel_real]``
        for an RDFT kernel, ``[kernel, bias]`` for a variable kernel."""
        return [w for p in self._trainable_parameters() for w in p.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load arrays in the order and shapes of :meth:`get_weights`.

        Raises
        ------
        ValueError
            On a wrong number of arrays or a wrong shape.
        TypeError
            If `weights` is not a sequence of real numeric arrays.
        """
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError(f"`weights` must be a list of arrays, got {type(weights).__name__}.")
        params = self._trainable_parameters()
        counts = [len(p.get_weights()) for p in params]
        if len(weights) != sum(counts):
            expected = [w.shape for w in self.get_weights()]
            raise ValueError(f"`weights` must hold {sum(counts)} arrays of shapes {expected}, "
                             f"got {len(weights)}.")
        start = 0
        for p, n in zip(params, counts, strict=True):
            p.set_weights(list(weights[start:start + n]))
            start += n

    def count_params(self) -> int:
        """Number of trainable scalars."""
        if not self.built:
            raise RuntimeError("count_params() needs a built layer: call build() first.")
        return sum(w.size for w in self.get_weights())

    @property
    def losses(self) -> list[float]:
        """Values of the kernel and bias regularizers (empty before build)."""
        if not self.built:
            return []
        out = []
        if self.kernel_regularizer is not None:
            out.append(self.kernel_regularizer(self.kernel))
        if self.use_bias and self.bias_regularizer is not None:
            out.append(self.bias_regularizer(self.bias))
        return out

    # -- calling -----------------------------------------------------------

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """Output shape for `input_shape` (width may be None)."""
        shape = _check_shape(input_shape, "input_shape")
        c_in = shape[self._channel_axis]
        c_out = None if c_in is None else self._output_channels(c_in)
        width = shape[3 - self._channel_axis]
        if width is not None:
            width = self.spec.checked_output_width(width, "input_shape")
        if self.time_major:
            return (shape[0], width, c_out)
        return (shape[0], c_out, width)

    def plan_for(self, input_shape: Sequence[int]) -> Plan:
        """The plan the layer runs on inputs of `input_shape` (its `data_format`).

        The path, FFT length and direct form of :meth:`Engine.plan_for
        <fftconv.engine.Engine.plan_for>`, for arrays laid out as the layer's;
        before the first call of the shape the model's (or remembered) choice.

        Raises
        ------
        TypeError, ValueError
            If `input_shape` is not three integers, or too short for the layer.
        """
        shape = _check_shape(input_shape, "input_shape")
        if None in shape:
            raise ValueError(f"`input_shape` must be known in full, got {shape}.")
        last = self.time_major
        channels_first = (shape[0], shape[2], shape[1]) if last else shape
        return self.engine.plan_for(channels_first, self.dtype, last)

    def __call__(self, x: Any) -> np.ndarray:
        """Apply the layer.

        Parameters
        ----------
        x : array_like, shape (batch, width, C_in) or (batch, C_in, width)
            Real numbers; converted to the layer dtype.  A CuPy array is computed
            on its GPU (with ``backend='auto'`` or ``'cupy'``).

        Returns
        -------
        ndarray, shape (batch, width_out, C_out) or (batch, C_out, width_out)
            Where `x` lives: a CuPy array for a CuPy `x`, else a numpy array (also
            with ``backend='cupy'``, which computes on the GPU).  A lazy
            ``dask.array.Array`` for a Dask input (see :mod:`fftconv.dask_front`).
        """
        if dask_front.is_dask_array(x):
            return dask_front.apply(self, x)
        backend = self.engine.backend_for(x)
        placed = backend.owns(x)  # else the result goes back to the host
        # A named activation acts element-wise: on the engine's batch slices too.
        elementwise = activations.is_named(self.activation)
        with backend.activate():
            # Host data stays there: the engine moves it (by slices, overlapped).
            x = as_real_array(x, "x", self.dtype, xp=backend.xp if placed else None)
            self._check_input(x.shape)
            if self.time_major:
                x = x.transpose(0, 2, 1)
            y = self._output(x, activation=self.activation if elementwise else None,
                             to_host=elementwise and not placed)
            if not elementwise:
                y = self.activation(y)
            if self.time_major:
                y = y.transpose(0, 2, 1)
            y = array_module(y).ascontiguousarray(y, dtype=self.dtype)
        return y if placed or elementwise else backend.to_host(y)

    def _output(self, x: Any, keep: dict[int, list] | None = None,
                activation: Callable[[Any], Any] | None = None, to_host: bool = False) -> Any:
        """The output ``(B, C_out, n_out)`` for `x` ``(B, C_in, W)``: filtered, biased, activated.

        `activation` (None: the pre-activation output) must act element-wise.
        Laid out channels last in memory (a transposed view) for channels_last
        layers.  `keep`, `to_host`: see :meth:`Engine.__call__
        <fftconv.engine.Engine.__call__>`.
        """
        # On the call's device once, not once per batch slice.
        bias = (self.engine.backend_for(x).to_device(self.bias)[:, None] if self.use_bias
                else None)

        def finish(y: Any) -> Any:
            if bias is not None:
                y += bias
            return y if activation is None else activation(y)

        return self.engine(x, lambda: self.kernel, self._kernel_token(),
                           time_major=self.time_major, keep=keep,
                           to_host=to_host, finish=finish)

    # -- gradients -----------------------------------------------------------

    def vjp(self, x: Any, g: Any, keep_spectra: bool = False,
            ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vector-Jacobian products: the gradients of ``sum(self(x) * g)``.

        Computed by the engine's paths (see :mod:`fftconv.vjp`), with the
        activation's derivative at the pre-activation output (recomputed here).

        Parameters
        ----------
        x : array_like, shape (batch, width, C_in) or (batch, C_in, width)
        g : array_like, the shape of ``self(x)``
            Cotangent of the output.
        keep_spectra : bool
            With an activation, whose derivative needs the forward pass: if that
            pass runs the FFT path, keep the spectra of its input blocks for the
            kernel gradient rather than transforming the blocks again.  Saves
            those transforms for about ``(n_fft/2 + 1) / (n_fft - Kp + 1)``
            complex values per input sample and channel, held during the call
            (``n_fft`` the plan's FFT length, ``Kp`` its phase kernel length,
            ``K`` at stride 1).  The gradients are the same, to rounding.

        Returns
        -------
        dx : ndarray, the shape of `x`
        grads : list of ndarray
            The gradients of :meth:`get_weights`, in its order and shapes: for
            an ``'rdft'`` kernel with respect to ``kernel_imag`` and
            ``kernel_real`` themselves, as tfc's optimisers see them.

        Raises
        ------
        ValueError
            If `g` does not have the output's shape (or `x` is invalid as for
            :meth:`__call__`).
        TypeError
            If the activation is a callable whose derivative is unknown.
        """
        gradients = self._gradients(x, g, keep_spectra)
        return gradients.x, weight_gradients(self._trainable_parameters(),
                                             self.kernel_parameter, gradients)

    @cached_property
    def _adjoint(self) -> Adjoint:
        return Adjoint(self.engine)

    def _gradients(self, x: Any, g: Any, keep_spectra: bool = False) -> Gradients:
        """Input, kernel and bias gradients of ``sum(self(x) * g)``.

        `dx` in `x`'s layout, where `x` lives (as :meth:`__call__` returns `y`);
        the kernel and bias gradients, like the weights, on the host.
        `keep_spectra` as for :meth:`vjp`.
        """
        backend = self.engine.backend_for(x)
        placed = backend.owns(x)
        with backend.activate():
            x = _on_backend(backend, x, "x", self.dtype)
            self._check_input(x.shape)
            g = _on_backend(backend, g, "g", self.dtype)
            expected = self.compute_output_shape(x.shape)
            if g.shape != expected:
                raise ValueError(f"`g` must have the shape of the output {expected} for `x` "
                                 f"of shape {x.shape}, got {g.shape}.")
            last = self.time_major
            if last:
                x, g = x.transpose(0, 2, 1), g.transpose(0, 2, 1)
            kept = {} if keep_spectra else None
            if self.activation is not None:
                g = g * activations.derivative(self.activation)(self._output(x, kept))
            grads = self._adjoint(x, g, lambda: self.kernel, self._kernel_token(),
                                  time_major=last, kept=kept)
            dx = backend.xp.ascontiguousarray(grads.x.transpose(0, 2, 1) if last else grads.x)
        return Gradients(dx if placed else backend.to_host(dx), grads.kernel,
                         backend.to_host(grads.bias))

    def _check_input(self, shape: tuple[int, ...]) -> None:
        """Check the shape of an input `x`, building the layer on its first input."""
        if len(shape) != 3:
            raise ValueError(_rank_message(shape, self.data_format))
        if not self.built:
            with self._build_lock:
                if not self.built:  # another thread may have built it meanwhile
                    self.build(shape)
        c_in = shape[self._channel_axis]
        if c_in != self.input_channels:
            raise ValueError(f"`x` must have {self.input_channels} channels (axis "
                             f"{self._channel_axis}, {self.data_format}) as when the layer was "
                             f"built, got shape {shape}.")
        self.spec.checked_output_width(shape[3 - self._channel_axis], "x")

    # -- configuration -----------------------------------------------------

    def constructor_arguments(self) -> dict[str, Any]:
        """The constructor arguments that make this layer, by value (not serialised).

        ``type(layer)(**layer.constructor_arguments())`` makes an equal layer
        with newly drawn or given parameters; :meth:`get_config` is its
        serialisable form.
        """
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": self.dtype.name,
            "filters": self.filters,
            "kernel_support": self.kernel_support,
            "corr": self.corr,
            "strides_down": self.strides_down,
            "strides_up": self.strides_up,
            "padding": self.padding,
            "extra_pad_end": self.extra_pad_end,
            "channel_separable": self.channel_separable,
            "data_format": self.data_format,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "use_explicit": self.use_explicit,
            "kernel_parameter": self.kernel_parameter,
            "bias_parameter": self.bias_parameter,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "kernel_regularizer": self.kernel_regularizer,
            "bias_regularizer": self.bias_regularizer,
            "method": self.method,
            "backend": self.backend,
            "config": self.config,
            "planning": self.planning,
        }

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (parameters by shape, not value).

        Fixed arrays are stored by value; a plain callable parameter cannot be
        serialised (TypeError).
        """
        config = self.constructor_arguments()
        config.update(
            activation=activations.serialize(self.activation),
            kernel_parameter=_serialize_value(self.kernel_parameter, "kernel_parameter"),
            bias_parameter=_serialize_value(self.bias_parameter, "bias_parameter"),
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            config=_serialize_config(self.config),
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SignalConv1D:
        """Rebuild a layer from :meth:`get_config` output."""
        return cls(**config)

    def __repr__(self) -> str:
        s = self.spec
        return (f"SignalConv1D(filters={self.filters}, kernel_support={s.kernel_support}, "
                f"corr={s.corr}, strides_down={s.strides_down}, strides_up={s.strides_up}, "
                f"padding={s.padding!r}, channel_separable={s.channel_separable}, "
                f"data_format={self.data_format!r})")


def _on_backend(backend: Any, value: Any, argument: str, dtype: np.dtype) -> Any:
    """`value` as a real array of `dtype` on `backend`'s device.

    Host data is checked and converted on the host, then moved by
    :meth:`~fftconv.backends.Backend.to_device` (on a GPU, staged through pinned
    memory).
    """
    if backend.owns(value):
        return as_real_array(value, argument, dtype, xp=backend.xp)
    return backend.to_device(as_real_array(value, argument, dtype))


def signal_conv1d(x: Any, kernel: Any, bias: Any = None, **options: Any) -> np.ndarray:
    """Apply a `SignalConv1D` with a fixed `kernel` (and `bias`) to `x`.

    Parameters
    ----------
    x : array_like, shape (batch, width, C_in) or (batch, C_in, width)
    kernel : array_like, shape (K, C_in, filters)
        tfc's layout, taps first.  A ``torch.nn.Conv1d`` weight ``w`` of shape
        ``(C_out, C_in, K)`` is ``w.transpose(2, 1, 0)`` here, with ``corr=True``;
        nothing can tell the two layouts apart when the sizes happen to fit.
    bias : array_like, shape (C_out,), optional
    **options
        Any other `SignalConv1D` argument (`corr`, `strides_down`, `padding`,
        `data_format`, `method`, ...).  `dtype` defaults to float64 when `x` or
        `kernel` is float64, else float32.

    Returns
    -------
    ndarray, shape (batch, width_out, C_out) or (batch, C_out, width_out)
        A lazy ``dask.array.Array`` for a Dask `x` (see :mod:`fftconv.dask_front`).
    """
    layer, x = _fixed_kernel_layer("signal_conv1d", x, kernel, bias, options)
    return layer(x)


def signal_conv1d_vjp(x: Any, kernel: Any, g: Any, bias: Any = None, *,
                      keep_spectra: bool = False,
                      **options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of ``sum(signal_conv1d(x, kernel, bias, **options) * g)``.

    Parameters
    ----------
    x, kernel, bias, **options
        As for :func:`signal_conv1d`.
    g : array_like, the shape of the output
        Cotangent of the output.
    keep_spectra : bool
        As for :meth:`SignalConv1D.vjp`.

    Returns
    -------
    dx : ndarray, the shape of `x`
    dkernel : ndarray, shape (K, C_in, filters)
    dbias : ndarray, shape (C_out,), or None without `bias`
    """
    layer, x = _fixed_kernel_layer("signal_conv1d_vjp", x, kernel, bias, options)
    gradients = layer._gradients(x, g, keep_spectra)
    return gradients.x, gradients.kernel, None if bias is None else gradients.bias


def _fixed_kernel_layer(function: str, x: Any, kernel: Any, bias: Any,
                        options: dict[str, Any]) -> tuple[SignalConv1D, Any]:
    """The layer of `function` (:func:`signal_conv1d` and its vjp), and `x` as an array."""
    for argument in ("filters", "kernel_support", "kernel_parameter", "bias_parameter",
                     "use_bias"):
        if argument in options:
            raise TypeError(f"{function}() takes `{argument}` from `kernel`/`bias`; "
                            f"do not pass it.")
    x = x if dask_front.is_dask_array(x) else as_real_array(x, "x", None, xp=array_module(x))
    kernel = as_real_array(kernel, "kernel", None)
    if kernel.ndim != 3:
        raise ValueError(f"`kernel` must have shape (K, C_in, filters), got {kernel.shape}."
                         f"{_TORCH_HINT}")
    if x.ndim == 3:
        data_format = data_format_name(options.get("data_format", "channels_last"))
        c_in = x.shape[1 if data_format == "channels_first" else 2]
        if c_in != kernel.shape[1]:
            raise ValueError(f"`kernel` must have shape (K, C_in, filters) with C_in = {c_in}, "
                             f"the channels of `x` {x.shape}, got {kernel.shape}.{_TORCH_HINT}")
    if "dtype" not in options:
        wide = np.float64 in (x.dtype, kernel.dtype)
        options["dtype"] = "float64" if wide else "float32"
    layer = SignalConv1D(
        filters=kernel.shape[2], kernel_support=kernel.shape[0], kernel_parameter=kernel,
        use_bias=bias is not None, bias_parameter="variable" if bias is None else bias,
        **options)
    return layer, x


_TORCH_HINT = (" A torch.nn.Conv1d weight (C_out, C_in, K) is w.transpose(2, 1, 0) in this "
               "layout, with corr=True (torch correlates).")


def _rank_message(shape: tuple[int, ...], data_format: str) -> str:
    """The error for an input of the wrong rank, showing the reshape that fixes it."""
    first = data_format == "channels_first"
    layout = "(batch, channels, width)" if first else "(batch, width, channels)"
    message = f"`x` must have rank 3, {layout} for data_format={data_format!r}, got shape {shape}."

    if len(shape) == 1:
        message += (f" For one signal of {shape[0]} samples pass "
                    f"{'x[None, None, :]' if first else 'x[None, :, None]'} (batch 1, one "
                    f"channel), or use fftconv.convolve for scipy-style 1-D convolution.")
    elif len(shape) == 2:
        message += (f" For a batch of one-channel signals pass "
                    f"{'x[:, None, :]' if first else 'x[:, :, None]'}; for one "
                    f"multi-channel signal, x[None].")
    return message


def _check_shape(shape: Any, argument: str) -> tuple[int | None, ...]:
    try:
        shape = tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"`{argument}` must be a sequence of integers, got {shape!r}.") from None
    if len(shape) != 3:
        raise ValueError(f"`{argument}` must have rank 3 (batch, width, channels) or "
                         f"(batch, channels, width), got {shape}.")
    return shape


def _serialize_config(config: Config | str | None) -> str | None:
    if isinstance(config, Config):
        return config.source
    return None if config is None else str(config)


def _serialize_value(value: Any, argument: str) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, _PARAMETERS):
        return serialize_parameter(value)
    if isinstance(value, np.ndarray):
        return {"class_name": "ndarray", "config": {"value": value.tolist(),
                                                    "dtype": value.dtype.name}}
    raise TypeError(f"`{argument}` is a callable that cannot be serialised; use an array, "
                    f"a parameter object, 'rdft' or 'variable'.")


def _deserialize_value(config: dict) -> Any:
    """A parameter object, or the plain list of a fixed array (frozen by the caller)."""
    if config.get("class_name") == "ndarray":
        return config["config"]["value"]
    return deserialize_parameter(config)
