"""fftconv: frequency-domain convolution with the semantics of tfc's ``SignalConv1D``."""

from fftconv.layer import SignalConv1D, signal_conv1d
from fftconv.parameters import RDFTParameter, VariableParameter
from fftconv.spec import ConvSpec

__all__ = ["ConvSpec", "RDFTParameter", "SignalConv1D", "VariableParameter", "signal_conv1d"]
__version__ = "0.1.0"
