"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

PADDINGS = ["valid", "same_zeros", "same_reflect"]


@st.composite
def geometry_options(draw) -> dict:
    """Random `SignalConv1D` geometry arguments, tfc's refused combinations included.

    ``corr``, strides 1-4, ``padding``, ``extra_pad_end``, ``channel_separable``
    and ``data_format``: everything but the kernel length and the filters.
    """
    return {
        "corr": draw(st.booleans()),
        "strides_down": draw(st.integers(1, 4)),
        "strides_up": draw(st.integers(1, 4)),
        "padding": draw(st.sampled_from(PADDINGS)),
        "extra_pad_end": draw(st.sampled_from([None, True, False])),
        "channel_separable": draw(st.booleans()),
        "data_format": draw(st.sampled_from(["channels_last", "channels_first"])),
    }
