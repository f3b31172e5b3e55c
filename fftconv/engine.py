"""Run a layer geometry on inputs: plan, reduce to ``corr_valid``, run a path, reassemble."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import cached_property

import numpy as np

from fftconv.backends import Backend, check_backend, get_backend
from fftconv.config import Config, load_config
from fftconv.paths.direct import corr_valid_direct
from fftconv.paths.fft import corr_valid_fft, kernel_spectra
from fftconv.paths.shifted import layer_direct_shifted, shifted_weights, use_shifted
from fftconv.planner import Plan, check_method, plan
from fftconv.reduction import check_fits, polyphase
from fftconv.spec import ConvSpec
from fftconv.spectra import SpectrumCache

#: Input shapes whose plans an engine keeps (least recently used dropped first).
MAX_PLANS = 256


class Engine:
    """Runs one layer geometry: a plan per input shape, kernel spectra cached.

    Parameters
    ----------
    spec : ConvSpec
    filters : int
    method : {'auto', 'direct', 'fft'}
    backend : {'auto', 'numpy', 'pyfftw'}
    config : Config, path or None
        Cost model; see :func:`fftconv.config.load_config`.

    Attributes
    ----------
    spectra : SpectrumCache
        Phase kernels and their spectra at every FFT length used.
    plans_made : int
        Plans computed so far (a repeated input shape reuses its plan).
    """

    def __init__(self, spec: ConvSpec, filters: int, method: str = "auto",
                 backend: str = "auto", config: Config | str | None = None) -> None:
        self.spec = spec
        self.filters = filters
        self.method = check_method(method)
        self.backend_name = check_backend(backend)
        self.config = load_config(config)
        self.spectra = SpectrumCache()
        self.plans_made = 0
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    @cached_property
    def backend(self) -> Backend:
        options = self.config.pyfftw
        return get_backend(self.backend_name, threads=options.threads or None,
                           planner_effort=options.planner_effort,
                           planning_timelimit=options.planning_timelimit,
                           save_wisdom=options.save_wisdom)

    def plan_for(self, input_shape: tuple[int, int, int], dtype: np.dtype) -> Plan:
        """The plan for inputs ``(B, C_in, W)`` of `dtype`, computed once per shape.

        Raises
        ------
        ValueError
            If the call's arrays could not fit in memory (see
            :func:`fftconv.reduction.check_fits`).
        """
        key = (tuple(input_shape), np.dtype(dtype).str)
        with self._lock:
            found = self._plans.get(key)
            if found is None:
                check_fits(self.spec, key[0], self.filters, np.dtype(dtype).itemsize)
                found = plan(self.spec, key[0], np.dtype(dtype), self.backend.name,
                             self.config, filters=self.filters, method=self.method,
                             threads=self.backend.threads)
                self._plans[key] = found
                self.plans_made += 1
                if len(self._plans) > MAX_PLANS:
                    self._plans.popitem(last=False)
            else:
                self._plans.move_to_end(key)
            return found

    def __call__(self, x: np.ndarray, kernel: Callable[[], np.ndarray],
                 token: Hashable | None, time_major: bool = False) -> np.ndarray:
        """Filter `x`, without bias or activation.

        Parameters
        ----------
        x : ndarray, shape (B, C_in, W)
            Channels first, float32 or float64, ``W >= spec.min_input_width()``.
        kernel : callable
            Returns the kernel ``(K, C_in, filters)`` in the dtype of `x`; only
            called when the cache has nothing for `token`.
        token : hashable or None
            Identifies the kernel's current value (None: not cacheable).
        time_major : bool
            Lay the result out channels last in memory (the caller's layout),
            so that no transposing copy follows.

        Returns
        -------
        ndarray, shape (B, C_out, spec.output_width(W))
            Newly allocated; channels last in memory (a transposed view) when
            `time_major`.
        """
        return self.execute(x, kernel, token, self.plan_for(x.shape, x.dtype), time_major)

    def execute(self, x: np.ndarray, kernel: Callable[[], np.ndarray], token: Hashable | None,
                chosen: Plan, time_major: bool = False) -> np.ndarray:
        """Filter `x` with the given plan (any of its candidates, see :meth:`Plan.choose`).

        Arguments and result as for :meth:`__call__`; `chosen` must be a plan of
        this engine for ``x.shape`` and ``x.dtype``.
        """
        poly = polyphase(self.spec)
        n_out = self.spec.output_width(x.shape[-1])
        dtype = x.dtype.str
        problem = chosen.problem

        def phase_kernels() -> np.ndarray:
            return self.spectra.get(token, ("phase", dtype),
                                    lambda: poly.phase_kernels(kernel()))

        if chosen.path == "direct" and use_shifted(problem.groups, problem.in_channels,
                                                   problem.out_channels):
            weights = self.spectra.get(token, ("shifted", dtype),
                                       lambda: shifted_weights(phase_kernels()))
            return layer_direct_shifted(x, poly, weights, n_out,
                                        self.config.memory.direct_bytes, time_major)
        xs = poly.phase_inputs(x, n_out)
        if chosen.path == "direct":
            y = corr_valid_direct(xs, phase_kernels(), self.config.memory.direct_bytes,
                                  time_major)
        else:
            backend = self.backend
            spectra = self.spectra.get(
                token, ("fft", chosen.n_fft, dtype, backend.name),
                lambda: kernel_spectra(phase_kernels(), chosen.n_fft, backend))
            y = corr_valid_fft(xs, spectra, problem.kernel_length, chosen.n_fft,
                               backend, self.config.memory.fft_bytes, time_major)
        return poly.reassemble(y, n_out, x.shape[1], time_major)
