"""Bad input gets a clear ValueError/TypeError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from fftconv import SignalConv1D, signal_conv1d

X = np.random.default_rng(0).standard_normal((2, 16, 3)).astype(np.float32)


def layer(**kw):
    args = {"filters": 2, "kernel_support": 3}
    args.update(kw)
    return SignalConv1D(**args)


@pytest.mark.parametrize("argument", ["filters", "kernel_support", "strides_down", "strides_up"])
@pytest.mark.parametrize("value", [0, -1, [0]])
def test_counts_below_one(argument, value):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        layer(**{argument: value})


@pytest.mark.parametrize("argument", ["filters", "kernel_support", "strides_down", "strides_up"])
@pytest.mark.parametrize("value", [2.5, 2.0, "3", True, None])
def test_counts_not_integers(argument, value):
    with pytest.raises(TypeError, match=f"`{argument}`"):
        layer(**{argument: value})


def test_numpy_and_list_integers_accepted():
    lay = layer(filters=np.int64(2), kernel_support=[5], strides_down=np.int32(2))
    assert (lay.filters, lay.kernel_support, lay.strides_down) == (2, 5, 2)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("padding", "same"),
        ("padding", "reflect"),
        ("data_format", "NWC"),
        ("data_format", "Channels_Last"),
        ("activation", "no_such_activation"),
        ("kernel_initializer", "no_such_initializer"),
        ("bias_initializer", "no_such_initializer"),
        ("kernel_regularizer", "no_such_regularizer"),
        ("kernel_parameter", "fourier"),
        ("bias_parameter", "rdft"),
        ("method", "winograd"),
        ("backend", "tpu"),
        ("dtype", "float16"),
    ],
)
def test_unknown_names(argument, value):
    with pytest.raises(ValueError, match=f"`{argument}`") as info:
        layer(**{argument: value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(("argument", "value"), [("padding", 3), ("extra_pad_end", "yes"),
                                                 ("activation", 3)])
def test_wrong_types(argument, value):
    with pytest.raises(TypeError, match=f"`{argument}`"):
        layer(**{argument: value})


def test_padding_case_insensitive():
    assert layer(padding="Same_Zeros").padding == "same_zeros"


@pytest.mark.parametrize("shape", [(16, 3), (1, 2, 16, 3), ()])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match="`x`"):
        layer()(np.zeros(shape, np.float32))


def test_channel_count_differs_from_built():
    lay = layer()
    lay(X)
    with pytest.raises(ValueError, match="`x` must have 3 channels"):
        lay(X[:, :, :2])


@pytest.mark.parametrize("bad", [X.astype(np.complex64), np.full((1, 8, 3), "a"),
                                 np.full((1, 8, 3), None, dtype=object), [[[1, 2], [3]]]])
def test_non_real_input(bad):
    with pytest.raises(TypeError, match="`x`"):
        layer()(bad)


def test_integer_input_converted():
    lay = layer(kernel_parameter=np.ones((3, 3, 2)))
    y = lay(np.ones((1, 8, 3), dtype=np.int16))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, lay(np.ones((1, 8, 3), np.float32)))


def test_float64_input_to_float32_layer():
    assert layer()(X.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_empty_batch(data_format):
    lay = layer(strides_down=2, padding="same_zeros", data_format=data_format)
    x = np.zeros((0, 16, 3) if data_format == "channels_last" else (0, 3, 16), np.float32)
    y = lay(x)
    assert y.shape == lay.compute_output_shape(x.shape)
    assert y.shape == ((0, 8, 2) if data_format == "channels_last" else (0, 2, 8))


@pytest.mark.parametrize(("kw", "width"), [({}, 2), ({"strides_up": 3}, 1),
                                           ({"padding": "same_zeros"}, 0)])
def test_valid_input_too_short(kw, width):
    with pytest.raises(ValueError, match="`x` width .* too short"):
        layer(**kw)(np.zeros((1, width, 3), np.float32))
    with pytest.raises(ValueError, match="`input_shape` width"):
        layer(**kw).compute_output_shape((1, width, 3))


def test_fixed_kernel_of_wrong_shape():
    with pytest.raises(ValueError, match="`kernel_parameter` must have shape"):
        layer(kernel_parameter=np.ones((3, 4, 2)))(X)


def test_fixed_bias_of_wrong_shape():
    with pytest.raises(ValueError, match="`bias_parameter` must have shape"):
        layer(use_bias=True, bias_parameter=np.ones(3))(X)


def test_complex_kernel():
    with pytest.raises(TypeError, match="`kernel_parameter`"):
        layer(kernel_parameter=np.ones((3, 3, 2), complex))


def test_build_needs_channels():
    with pytest.raises(ValueError, match="`input_shape`"):
        layer().build((1, 16, None))


@pytest.mark.parametrize(
    ("weights", "error"),
    [
        ([np.zeros((3, 2, 2))], ValueError),  # one array missing
        ([np.zeros((3, 2, 2)), np.zeros((3, 2, 3))], ValueError),  # wrong shape
        ([np.zeros((3, 2, 2)), np.zeros((3, 2, 2)), np.zeros(2)], ValueError),  # one too many
        ([np.zeros((3, 2, 2), complex), np.zeros((3, 2, 2))], TypeError),
        (np.zeros((2, 3, 2, 2)), TypeError),  # not a list
    ],
)
def test_malformed_weights(weights, error):
    lay = layer()
    lay.build(X.shape)
    with pytest.raises(error, match="`weights`"):
        lay.set_weights(weights)


def test_unbuilt_kernel_and_count_params():
    with pytest.raises(RuntimeError, match="build"):
        layer().kernel  # noqa: B018
    with pytest.raises(RuntimeError, match="build"):
        layer().count_params()


def test_signal_conv1d_validation():
    with pytest.raises(ValueError, match="`kernel`"):
        signal_conv1d(X, np.ones((3, 3)))
    with pytest.raises(TypeError, match="`filters`"):
        signal_conv1d(X, np.ones((3, 3, 1)), filters=1)
    with pytest.raises(ValueError, match=r"`kernel` must have shape .*C_in = 3.*transpose"):
        signal_conv1d(X, np.ones((3, 2, 1)))
