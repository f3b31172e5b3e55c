"""fftconv: frequency-domain convolution with the semantics of tfc's ``SignalConv1D``."""

from fftconv.config import Config, load_config
from fftconv.functional import convolve, correlate, upfirdn
from fftconv.layer import SignalConv1D, signal_conv1d, signal_conv1d_vjp
from fftconv.parameters import RDFTParameter, VariableParameter
from fftconv.planner import Plan, plan
from fftconv.resample import resample_poly
from fftconv.spec import ConvSpec
from fftconv.streaming import StreamingConv1D

__all__ = [
    "Config",
    "ConvSpec",
    "Plan",
    "RDFTParameter",
    "SignalConv1D",
    "StreamingConv1D",
    "VariableParameter",
    "convolve",
    "correlate",
    "load_config",
    "plan",
    "resample_poly",
    "signal_conv1d",
    "signal_conv1d_vjp",
    "upfirdn",
]
__version__ = "0.1.0"
