"""The geometry of a `SignalConv1D` layer and tfc's shape arithmetic.

A :class:`ConvSpec` holds everything that decides *which* samples an output
depends on (kernel support, direction, strides, padding), but no weights and no
channel counts.  It is a small immutable value, so plans and caches can be keyed
by it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

PADDINGS = ("valid", "same_zeros", "same_reflect")
DATA_FORMATS = ("channels_last", "channels_first")


def positive_int(value: object, name: str) -> int:
    """Return `value` as an ``int >= 1``, accepting tfc's one-element list spelling.

    Raises
    ------
    TypeError
        If `value` is not an integer (bools and non-integral floats included).
    ValueError
        If `value` is smaller than 1, or a list that does not hold one element.
    """
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(
                f"`{name}` must be an integer or a one-element sequence (1-D layer), got {value!r}."
            )
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive integer, got {value!r}.")
    value = int(value)
    if value < 1:
        raise ValueError(f"`{name}` must be a positive integer (>= 1), got {value}.")
    return value


def padding_name(value: object) -> str:
    """Return the canonical (lower-case) padding name, as tfc accepts it."""
    if not isinstance(value, str):
        raise TypeError(f"`padding` must be one of {PADDINGS}, got {value!r}.")
    name = value.lower()
    if name not in PADDINGS:
        raise ValueError(f"`padding` must be one of {PADDINGS}, got {value!r}.")
    return name


def data_format_name(value: object) -> str:
    """Check a data format name (case-sensitive, like tfc)."""
    if value not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {DATA_FORMATS}, got {value!r}.")
    return str(value)


def optional_bool(value: object, name: str) -> bool | None:
    """Check that `value` is None or a bool (numpy bools included)."""
    if value is None:
        return None
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise TypeError(f"`{name}` must be None, True or False, got {value!r}.")
    return bool(value)


@dataclass(frozen=True)
class ConvSpec:
    """Geometry of a 1-D signal convolution with tfc's semantics.

    Parameters
    ----------
    kernel_support : int
        Kernel length ``K``.
    corr : bool
        Cross-correlate (True) or convolve (False).
    strides_up, strides_down : int
        Upsampling factor ``U`` before, downsampling factor ``D`` after filtering.
    padding : str
        ``'valid'``, ``'same_zeros'`` or ``'same_reflect'``.
    extra_pad_end : bool
        Already resolved: tfc's ``None`` means True for ``same_*``, False for ``valid``.
    channel_separable : bool
        Filter every input channel on its own (``filters`` filters each).
    """

    kernel_support: int
    corr: bool = False
    strides_up: int = 1
    strides_down: int = 1
    padding: str = "valid"
    extra_pad_end: bool = False
    channel_separable: bool = False

    @classmethod
    def from_arguments(
        cls,
        kernel_support: object,
        corr: object = False,
        strides_down: object = 1,
        strides_up: object = 1,
        padding: object = "valid",
        extra_pad_end: object = None,
        channel_separable: object = False,
    ) -> ConvSpec:
        """Validate tfc-style constructor arguments and build a spec."""
        padding = padding_name(padding)
        extra = optional_bool(extra_pad_end, "extra_pad_end")
        return cls(
            kernel_support=positive_int(kernel_support, "kernel_support"),
            corr=bool(corr),
            strides_up=positive_int(strides_up, "strides_up"),
            strides_down=positive_int(strides_down, "strides_down"),
            padding=padding,
            extra_pad_end=padding != "valid" if extra is None else extra,
            channel_separable=bool(channel_separable),
        )

    @property
    def centre(self) -> int:
        """Centre tap ``c`` of the correlation kernel (conv kernels are flipped first)."""
        k = self.kernel_support
        return k // 2 if self.corr else (k - 1) // 2

    @property
    def input_pads(self) -> tuple[int, int]:
        """Samples added to the input at (start, end) before upsampling."""
        if self.padding == "valid":
            return 0, 0
        c, k, u = self.centre, self.kernel_support, self.strides_up
        return -(-c // u), -(-(k - 1 - c) // u)

    def upsampled_width(self, width: int) -> int:
        """Length ``L`` of the filtered signal before `valid` cropping."""
        u = self.strides_up
        return width * u if self.extra_pad_end else (width - 1) * u + 1

    def output_width(self, width: int) -> int:
        """Output width for an input of `width` samples (< 1 when undefined)."""
        length = self.upsampled_width(width)
        if self.padding == "valid":
            length -= self.kernel_support - 1
        if length < 1:
            return length
        return (length - 1) // self.strides_down + 1

    def checked_output_width(self, width: int, argument: str) -> int:
        """Output width for an input of `width` samples, or a ValueError naming `argument`."""
        n_out = self.output_width(width)
        if width < 1 or n_out < 1:
            raise ValueError(
                f"`{argument}` width {width} is too short: padding={self.padding!r} with "
                f"kernel_support={self.kernel_support}, strides_up={self.strides_up}, "
                f"extra_pad_end={self.extra_pad_end} needs at least "
                f"{self.min_input_width()} samples.")
        return n_out

    def min_input_width(self) -> int:
        """Smallest input width that gives at least one output sample."""
        if self.padding != "valid":
            return 1
        u, k = self.strides_up, self.kernel_support
        # Smallest W with upsampled_width(W) >= K.
        if self.extra_pad_end:
            return max(1, -(-k // u))
        return max(1, -(-(k - 1) // u) + 1)
