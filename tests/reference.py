"""Literal float64 reference for ``SignalConv1D`` semantics.

This module is deliberately slow and simple: it loops over output samples and
kernel taps so that every index can be checked by eye against the definition
below. It is meant for small test inputs only.

Definition (``U = strides_up``, ``D = strides_down``, ``K = kernel_support``):

1. ``extra_pad_end=None`` means ``True`` for the ``same_*`` paddings and
   ``False`` for ``valid``.
2. The input is upsampled by inserting ``U - 1`` zeros after each sample:
   ``xu[i * U] = x[i]``.
3. The upsampled length is ``L = W * U`` with ``extra_pad_end`` and
   ``(W - 1) * U + 1`` without; ``valid`` subtracts ``K - 1``. The output has
   ``(L - 1) // D + 1`` samples; fewer than one is a ``ValueError``.
4. Convolution (``corr=False``) is correlation with the flipped kernel
   ``g[j] = h[K - 1 - j]``; correlation uses ``g = h``. The kernel centre is
   ``c = K // 2`` for correlation and ``(K - 1) // 2`` for convolution.
5. ``same_zeros`` / ``same_reflect``: the input is first extended (before
   upsampling) by ``ceil(c / U)`` samples at the start and
   ``ceil((K - 1 - c) / U)`` at the end, with zeros or with
   ``numpy.pad(mode="reflect")`` values, then upsampled, keeping position 0 at
   ``x[0]``; ``y[n] = sum_j g[j] * xu_ext[n * D + j - c]``.
   ``valid``: ``y[n] = sum_j g[j] * xu[n * D + j]``.
6. Without channel separability, ``y[:, n, f]`` sums over input channels.
   With it, output channel ``c * filters + f`` is input channel ``c``
   filtered by ``kernel[:, c, f]``.
7. A bias is added per output channel.
"""

import numpy as np

PADDINGS = ("valid", "same_zeros", "same_reflect")
DATA_FORMATS = ("channels_last", "channels_first")


def _resolve_extra_pad_end(padding, extra_pad_end):
    if extra_pad_end is None:
        return padding != "valid"
    return bool(extra_pad_end)


def reference_output_width(width, kernel_support, strides_up, strides_down,
                           padding, extra_pad_end=None):
    """Number of output samples, or a value < 1 when there is no output."""
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}")
    extra_pad_end = _resolve_extra_pad_end(padding, extra_pad_end)
    if extra_pad_end:
        length = width * strides_up
    else:
        length = (width - 1) * strides_up + 1
    if padding == "valid":
        length -= kernel_support - 1
    return (length - 1) // strides_down + 1


def _ceil_div(a, b):
    return -(-a // b)


def _upsample(x, U):
    """Zero-stuffed upsampling along axis 1: ``out[:, i * U] = x[:, i]``.

    Each sample is followed by ``U - 1`` zeros, so the result has ``W * U``
    samples along axis 1.
    """
    B, W, C = x.shape
    out = np.zeros((B, W * U, C))
    for i in range(W):
        out[:, i * U, :] = x[:, i, :]
    return out


def _upsampled_signal(x, *, kernel_support, corr, strides_up, padding,
                      extra_pad_end):
    """Return ``(xu, origin)``: ``xu[:, origin + p, :]`` is the upsampled
    (and, for the ``same_*`` paddings, extended) signal at upsampled position
    ``p``, where ``p = 0`` is ``x[:, 0]``."""
    K, U = kernel_support, strides_up
    W = x.shape[1]
    if padding == "valid":
        L_up = W * U if extra_pad_end else (W - 1) * U + 1
        return _upsample(x, U)[:, :L_up, :], 0
    c = K // 2 if corr else (K - 1) // 2
    pad_start = _ceil_div(c, U)
    pad_end = _ceil_div(K - 1 - c, U)
    mode = "constant" if padding == "same_zeros" else "reflect"
    x_ext = np.pad(x, ((0, 0), (pad_start, pad_end), (0, 0)), mode=mode)
    # Sample i of x_ext sits at upsampled position (i - pad_start) * U.
    return _upsample(x_ext, U), pad_start * U


def reference_signal_conv1d(x, kernel, bias=None, *, corr=False,
                            strides_down=1, strides_up=1, padding="valid",
                            extra_pad_end=None, channel_separable=False,
                            data_format="channels_last"):
    """Float64 ``SignalConv1D`` output computed directly from the definition.

    ``x``: ``(B, W, C_in)`` (channels_last) or ``(B, C_in, W)``
    (channels_first). ``kernel``: ``(K, C_in, filters)``. ``bias``:
    ``(C_out,)`` or ``None``. Returns float64 in ``data_format``.
    """
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}")
    if data_format not in DATA_FORMATS:
        raise ValueError(f"unknown data_format {data_format!r}")
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if x.ndim != 3 or kernel.ndim != 3:
        raise ValueError("x and kernel must have rank 3")
    if data_format == "channels_first":
        x = np.transpose(x, (0, 2, 1))
    B, W, C_in = x.shape
    K, kc_in, filters = kernel.shape
    if kc_in != C_in:
        raise ValueError(f"kernel has {kc_in} input channels, x has {C_in}")
    if K < 1 or filters < 1 or strides_up < 1 or strides_down < 1:
        raise ValueError("kernel_support, filters and strides must be >= 1")

    extra_pad_end = _resolve_extra_pad_end(padding, extra_pad_end)
    n_out = reference_output_width(W, K, strides_up, strides_down, padding,
                                   extra_pad_end)
    if n_out < 1:
        raise ValueError(
            f"input width {W} is too short for padding={padding!r} with "
            f"kernel_support={K}, strides_up={strides_up}, "
            f"extra_pad_end={extra_pad_end}")

    g = kernel if corr else kernel[::-1]  # (K, C_in, filters)
    c = 0 if padding == "valid" else (K // 2 if corr else (K - 1) // 2)
    D = strides_down
    xu, origin = _upsampled_signal(
        x, kernel_support=K, corr=corr, strides_up=strides_up,
        padding=padding, extra_pad_end=extra_pad_end)

    C_out = C_in * filters if channel_separable else filters
    y = np.zeros((B, n_out, C_out))
    for n in range(n_out):
        for j in range(K):
            p = n * D + j - c                # upsampled input position read
            # The extension pads cover every position the filter reads.
            assert 0 <= origin + p < xu.shape[1]
            s = xu[:, origin + p, :]         # (B, C_in)
            if channel_separable:
                # output channel ci * filters + f <- s[:, ci] * g[j, ci, f]
                y[:, n, :] += (s[:, :, None] * g[j][None]).reshape(B, C_out)
            else:
                y[:, n, :] += s @ g[j]       # sum over input channels

    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        if bias.shape != (C_out,):
            raise ValueError(f"bias must have shape ({C_out},), got {bias.shape}")
        y += bias

    if data_format == "channels_first":
        y = np.transpose(y, (0, 2, 1))
    return y
