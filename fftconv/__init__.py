"""fftconv: frequency-domain convolution with the semantics of tfc's ``SignalConv1D``."""

from fftconv.config import Config, load_config
from fftconv.layer import SignalConv1D, signal_conv1d
from fftconv.parameters import RDFTParameter, VariableParameter
from fftconv.planner import Plan, plan
from fftconv.spec import ConvSpec

__all__ = [
    "Config",
    "ConvSpec",
    "Plan",
    "RDFTParameter",
    "SignalConv1D",
    "VariableParameter",
    "load_config",
    "plan",
    "signal_conv1d",
]
__version__ = "0.1.0"
