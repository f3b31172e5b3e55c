"""Cost-model configurations shipped with fftconv (installed as ``fftconv.configs``)."""
