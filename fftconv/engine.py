"""Run a layer geometry on inputs: plan, reduce to ``corr_valid``, run a path, reassemble."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import cached_property
from typing import Any

import numpy as np

from fftconv import plan_wisdom
from fftconv._machine import wait_for_idle_threads
from fftconv.backends import Backend, backend_for, check_backend, get_backend
from fftconv.backends.blocks import plans_held
from fftconv.config import PLANNING_MODES, Config, device_config, load_config
from fftconv.paths import Job
from fftconv.paths.direct import WindowsPath
from fftconv.paths.fft import FFTPath
from fftconv.paths.fir import FIRPath
from fftconv.paths.shifted import ShiftedPath
from fftconv.planner import (
    Candidate,
    Plan,
    Prepared,
    check_method,
    measurable_fft_candidates,
    method_path,
    plan,
    prepared_for,
)
from fftconv.reduction import check_fits, polyphase
from fftconv.spec import ConvSpec
from fftconv.spectra import SpectrumCache

#: Input shapes whose plans an engine keeps (least recently used dropped first).
MAX_PLANS = 256
#: FFT lengths measured with ``planning='measure'``: the model's cheapest and its nearest.
#: On a 2-core CPU the cost of upsampled long-kernel layers is flat over three
#: octaves of length, and the fastest lay three octaves from the model's choice
#: (4096 against 32768 for a 3391-tap kernel upsampled 4x, 12 % faster in two runs).
MEASURED_FFT_LENGTHS = 5
#: Candidates the model estimates above this multiple of its best are not measured.
HOPELESS_FACTOR = 10.0
#: Rounds of timed runs of the measured candidates at most (each candidate's
#: fastest run counts).
MEASURE_ROUNDS = 5
#: Timed runs of each contender in a round after the first, after its untimed
#: run: back-to-back runs of one candidate, as a program calling the layer
#: makes, give two timings for three runs.  Near ties need many: drawn from the
#: planner report's own timings on a 2-core VM, the median worst regret over its
#: 64 layers was 1.15-1.16 with three timings per candidate, 1.09-1.13 with six.
ROUND_TIMED_RUNS = 2
#: After a round, the candidates slower than this multiple of the fastest so far
#: are not timed again (the model's choice excepted).
CONTENDER_FACTOR = 1.5

#: Host inputs of a GPU backend from this many bytes, of two samples or more, run
#: by batch slices, each slice's upload and download overlapping the computation
#: of its neighbours (see :meth:`Engine.__call__`).
PIPELINE_MIN_BYTES = 16 << 20
#: Bytes of input per batch slice, about: the upload of one slice and the
#: download of another fit in the GPU backend's pinned staging pool together.
PIPELINE_SLICE_BYTES = 16 << 20

#: The paths, by the plan's variant: ``prepare(w, plan, backend)`` makes the operands
#: kept on the device from the host phase kernels, ``run(x, operands, plan, job)``
#: the layer output (see :mod:`fftconv.paths`).  Both devices use the same entries;
#: the planner chooses ``'direct-fir'`` (a CUDA kernel) on a GPU only.
PATHS = {"fft": FFTPath(), "direct-shifted": ShiftedPath(), "direct-windows": WindowsPath(),
         "direct-fir": FIRPath()}


def check_planning(planning: object) -> str | None:
    """Validate the `planning` option: one of :data:`~fftconv.config.PLANNING_MODES` or None."""
    if planning is not None and (not isinstance(planning, str)
                                 or planning not in PLANNING_MODES):
        raise ValueError(f"`planning` must be one of {PLANNING_MODES} or None (the "
                         f"configuration's planner.planning), got {planning!r}.")
    return planning


class Engine:
    """Runs one layer geometry: a plan per input shape, kernel spectra cached.

    Parameters
    ----------
    spec : ConvSpec
    filters : int
    method : {'auto', 'direct', 'fft', 'direct-shifted', 'direct-windows'}
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        Where calls run (:meth:`backend_for`): ``'auto'`` follows the input (a
        CuPy array on its GPU, host data on the CPU, pyFFTW when installed);
        ``'cupy'`` runs every call on a GPU.
    config : Config, path or None
        Cost model; see :func:`fftconv.config.load_config`.
    planning : {'estimate', 'measure'} or None
        'estimate' runs the cost model's choice.  'measure' times the model's
        best candidates on the first call of each input shape and keeps the
        fastest (see :meth:`__call__`), remembered for later engines and
        processes in the plan wisdom (:mod:`fftconv.plan_wisdom`).  None: the
        configuration's ``planner.planning``.

    Attributes
    ----------
    spectra : SpectrumCache
        Phase kernels (host) and each path's operands derived from them (the
        spectra at every FFT length used, ...), per device.
    plans_made : int
        Plans computed so far (a repeated input shape reuses its plan).
    measurements : int
        Candidates timed so far (``planning='measure'``); a shape whose winner
        is known (measured before, or remembered in the plan wisdom) times none.
    """

    def __init__(self, spec: ConvSpec, filters: int, method: str = "auto",
                 backend: str = "auto", config: Config | str | None = None,
                 planning: str | None = None) -> None:
        self.spec = spec
        self.filters = filters
        self.method = check_method(method)
        self.backend_name = check_backend(backend)
        self.config = load_config(config)
        self.planning = check_planning(planning) or self.config.planner.planning
        self.spectra = SpectrumCache()
        self.plans_made = 0
        self.measurements = 0
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()  # least recently used first
        self._settled: set[tuple] = set()  # keys of _plans whose plan is final
        # Keys planned for a one-off call (missing FFT plans and spectra counted),
        # with the steady-state plan their next call takes.
        self._steady: dict[tuple, Plan] = {}
        self._lock = threading.Lock()

    @cached_property
    def backend(self) -> Backend:
        """The backend of host inputs: the CPU's, or the current GPU's for ``'cupy'``.

        Raises ImportError or RuntimeError for ``'cupy'`` without CuPy or a GPU.
        """
        return get_backend(self.backend_name, **backend_options(self.config))

    def backend_for(self, x: Any) -> Backend:
        """The backend that runs a call on `x` (see :func:`fftconv.backends.backend_for`).

        Raises
        ------
        TypeError
            If `x` is a GPU array and the engine's backend a CPU one.
        ImportError, RuntimeError
            For ``'cupy'`` without CuPy or without a GPU.
        """
        if self.backend_name != "cupy" and type(x).__module__ == "numpy":
            return self.backend  # the common case, without a look at the modules
        return backend_for(x, self.backend_name, **backend_options(self.config))

    def plan_for(self, input_shape: tuple[int, int, int], dtype: np.dtype,
                 time_major: bool = False) -> Plan:
        """The plan for inputs ``(B, C_in, W)`` of `dtype`, computed once per shape.

        `time_major`: the calls' arrays lie channels last in memory, as the
        ``time_major`` of :meth:`__call__` (see :func:`~fftconv.planner.plan`).

        With ``planning='measure'`` this is the winner measured by an earlier
        call or remembered in the plan wisdom; before the first call of a shape
        the plan wisdom does not know, the cost model's choice.  With
        ``'estimate'``, before the first call of a shape it is the plan of a
        one-off call (:func:`~fftconv.planner.prepared_for`: FFT plans and kernel
        spectra still to be made are paid for, so a short input with a long
        kernel runs direct), and the steady-state plan afterwards.

        For ``backend='cupy'`` the plan is the GPU's; planning needs no GPU
        (without one, nothing counts as prepared).

        Raises
        ------
        ValueError
            If the call's arrays could not fit in memory (see
            :func:`fftconv.reduction.check_fits`).
        """
        try:
            backend = self.backend
        except (ImportError, RuntimeError):
            if self.backend_name != "cupy":
                raise
            backend = None  # planning is pure: a GPU plan without a GPU
        if backend is None:
            key = _plan_key(input_shape, dtype, self.backend_name, "cuda", time_major)
        else:
            key = _plan_key(input_shape, dtype, backend.name, backend.device, time_major)
        return self._plan(key, backend)[0]

    def __call__(self, x: Any, kernel: Callable[[], np.ndarray],
                 token: Hashable | None, time_major: bool = False,
                 keep: dict[int, list] | None = None, to_host: bool = False,
                 finish: Callable[[Any], Any] | None = None) -> Any:
        """Filter `x`, without bias or activation (those are `finish`'s).

        With ``planning='measure'``, the first call of an input shape that the
        plan wisdom does not know times the candidates on `x` (see
        :meth:`_measure`) and returns the result of the fastest; later calls of
        the shape run the winner only.  Concurrent first calls measure once: the
        others wait for the winner.

        On a GPU, a host `x` of :data:`PIPELINE_MIN_BYTES` or more and two
        samples or more runs by batch slices of about :data:`PIPELINE_SLICE_BYTES`
        (output row ``b`` depends on input row ``b`` only): the upload of a
        slice is queued before the computation of the one before, and with
        `to_host` each slice's download is queued as soon as it is computed,
        so the copies overlap the computations.  Each slice shape is planned
        (and measured) as a call of its own.

        Parameters
        ----------
        x : array, shape (B, C_in, W)
            Channels first, float32 or float64, ``W >= spec.min_input_width()``;
            a numpy array, or an array of the device it runs on
            (:meth:`backend_for`).
        kernel : callable
            Returns the kernel ``(K, C_in, filters)`` in the dtype of `x`; only
            called when the cache has nothing for `token`.
        token : hashable or None
            Identifies the kernel's current value (None: not cacheable).
        time_major : bool
            Lay the result out channels last in memory (the caller's layout),
            so that no transposing copy follows.
        keep : dict or None
            If given and the call runs the FFT path, it receives the spectra of
            the input blocks, ``keep[n_fft]`` (see
            :func:`~fftconv.paths.fft.corr_valid_fft`), for the kernel gradient
            (:class:`~fftconv.vjp.Adjoint`).  A call that measures keeps none;
            a call that keeps does not run by slices.
        to_host : bool
            Return a numpy array (from a GPU, downloaded by slices as above).
        finish : callable or None
            Applied on the device to the result ``(b, C_out, n_out)`` of each batch
            slice (the whole batch when not sliced), before it is assembled or
            downloaded; returns an array of that shape, treating each sample
            on its own (a bias, an element-wise activation).

        Returns
        -------
        array of ``backend_for(x).xp``, shape (B, C_out, spec.output_width(W))
            Newly allocated on the device of the call (a numpy array with
            `to_host`); channels last in memory (a transposed view) when `time_major`.
        """
        backend = self.backend_for(x)
        with backend.activate():
            return self._call(backend, x, kernel, token, time_major, keep, to_host, finish)

    def _call(self, backend: Backend, x: Any, kernel: Callable[[], np.ndarray],
              token: Hashable | None, time_major: bool, keep: dict[int, list] | None,
              to_host: bool, finish: Callable[[Any], Any] | None) -> Any:
        if backend.device == "cpu":  # results are host arrays already
            y = self._compute(backend, backend.to_device(x), kernel, token, time_major, keep)
            return y if finish is None else finish(y)
        rows = _batch_slices(backend, x) if keep is None else [slice(None)]
        upload = backend.to_device_async(x[rows[0]])
        y, downloads = None, []
        for i, part in enumerate(rows):
            xi, uploaded = upload
            if i + 1 < len(rows):  # queued before this slice's work, to run meanwhile
                upload = backend.to_device_async(x[rows[i + 1]])
            backend.wait_event(uploaded)
            yi = self._compute(backend, xi, kernel, token, time_major, keep)
            if finish is not None:
                yi = finish(yi)
            if len(rows) == 1 and not to_host:
                return yi
            if y is None:
                where = get_backend("numpy") if to_host else backend
                y = where.empty_signal((x.shape[0], *yi.shape[1:]), yi.dtype, time_major)
            if to_host:
                downloads.append(backend.to_host_async(yi, y[part]))
            else:
                backend.assign(y[part], yi)
        for event in downloads:
            if event is not None:
                event.synchronize()
        return y

    def _compute(self, backend: Backend, x: Any, kernel: Callable[[], np.ndarray],
                 token: Hashable | None, time_major: bool,
                 keep: dict[int, list] | None) -> Any:
        """Plan (measuring if due) and run a call on `x`, an array of `backend`'s device."""
        key = _plan_key(x.shape, x.dtype, backend.name, backend.device, time_major)
        chosen, settled = self._plan(key, backend)
        if not settled:
            chosen, y = self._settle(key, chosen, backend, x, kernel, token, time_major)
            if y is not None:
                return y
        y = self._run(backend, x, kernel, token, chosen, time_major, self.spectra, keep)
        if key in self._steady:
            with self._lock:  # the shape was run once: its next call takes the steady plan
                steady = self._steady.pop(key, None)
                if steady is not None and key in self._plans:
                    self._plans[key] = steady
        return y

    def execute(self, x: Any, kernel: Callable[[], np.ndarray], token: Hashable | None,
                chosen: Plan, time_major: bool = False) -> Any:
        """Filter `x` with the given plan (any of its candidates, see :meth:`Plan.choose`).

        Arguments and result as for :meth:`__call__`; `chosen` must be a plan of
        this engine for ``x.shape`` and ``x.dtype`` on the device of `x`.
        """
        backend = self.backend_for(x)
        with backend.activate():
            return self._run(backend, backend.to_device(x), kernel, token, chosen, time_major,
                             self.spectra)

    # -- planning ------------------------------------------------------------

    def _plan(self, key: tuple, backend: Backend | None) -> tuple[Plan, bool]:
        """The plan for `key` (computed and cached if missing) and whether it is final.

        `key` is :func:`_plan_key`'s, for `backend` (None: a GPU plan made without
        a GPU).  Only a plan still to be measured (``planning='measure'``, more
        than one candidate worth timing, no remembered winner) is not final.
        """
        with self._lock:
            found = self._plans.get(key)
            if found is not None:
                self._plans.move_to_end(key)
                return found, key in self._settled
            shape, dtype, name, time_major = key[0], np.dtype(key[1]), key[2], key[4]
            threads = backend.threads if backend is not None else 1
            memory = backend.total_memory() if backend is not None else None
            check_fits(self.spec, shape, self.filters, dtype.itemsize, memory)
            found = plan(self.spec, shape, dtype, name, self.config, filters=self.filters,
                         method=self.method, threads=threads, time_major=time_major)
            self.plans_made += 1
            settled = True
            if self.planning == "estimate" and found.path == "fft" and self.method == "auto":
                one_off = self._one_off(found, shape, dtype, backend, time_major)
                if one_off.path != found.path:
                    self._steady[key], found = found, one_off
            if self.planning == "measure" and len(self._measurable(found)) > 1:
                remembered = self._remembered(found, backend)
                settled = remembered is not None
                found = remembered or found
            self._store(key, found, settled)
            return found, settled

    def _one_off(self, steady: Plan, shape: tuple[int, int, int], dtype: np.dtype,
                 backend: Backend | None, time_major: bool) -> Plan:
        """The plan of a first call, paying for the FFT plans and spectra it lacks."""
        if backend is None:
            prepared = Prepared()
        else:
            cached = {key[1] for key in self.spectra.keys()
                      if key[0] == "fft" and key[2:] == (dtype.str, backend.device)}
            prepared = prepared_for(steady.problem, self.config, backend, cached)
        return plan(self.spec, shape, dtype, steady.backend, self.config,
                    filters=self.filters, method=self.method, threads=steady.threads,
                    prepared=prepared, time_major=time_major)

    def _store(self, key: tuple, chosen: Plan, settled: bool) -> None:
        """Cache `chosen` for `key`, final if `settled`; ``self._lock`` must be held."""
        self._plans[key] = chosen
        self._plans.move_to_end(key)
        if settled:
            self._settled.add(key)
        if len(self._plans) > MAX_PLANS:
            dropped, _ = self._plans.popitem(last=False)
            self._settled.discard(dropped)
            self._steady.pop(dropped, None)

    def _settle(self, key: tuple, model: Plan, backend: Backend, x: Any,
                kernel: Callable[[], np.ndarray], token: Hashable | None, time_major: bool,
                ) -> tuple[Plan, Any]:
        """Make the plan of `key` final: measure it here unless another thread did.

        Returns the final plan and, if it was measured by this call, the
        call's result (else None).
        """
        wisdom_key = self._wisdom_key(model, backend)
        while True:
            # One measurement per problem in the process: a thread measuring it
            # stores the winner (here and in the plan wisdom) before releasing it.
            busy = plan_wisdom.claim(wisdom_key)
            if busy is None:
                break
            busy.wait()
        try:
            with self._lock:
                if key in self._settled:
                    return self._plans[key], None
            remembered = self._remembered(model, backend)
            if remembered is not None:
                chosen, y = remembered, None
            else:
                chosen, y = self._measure(model, wisdom_key, backend, x, kernel, token,
                                          time_major)
            with self._lock:
                self._store(key, chosen, True)
            return chosen, y
        finally:
            plan_wisdom.release(wisdom_key)

    def _measurable(self, model: Plan) -> list[Candidate]:
        """The candidates worth timing, the model's choice first, the others cheapest first.

        The candidates `method` allows, of which the direct one and
        :data:`MEASURED_FFT_LENGTHS` FFT lengths of
        :func:`~fftconv.planner.measurable_fft_candidates` (the planner's and
        the long-input length's neighbours), each estimated within
        :data:`HOPELESS_FACTOR` of the model's best; only the model's choice
        for an empty batch.  The FFT lengths nearest the model's cheapest one
        (in octaves; the cheaper of two as near) are taken first: an error of
        the model's constants moves the fastest length to a neighbour of its
        choice, not to a distant length it happens to rank second.
        """
        best = model.candidates[0]
        if model.problem.batch == 0:
            return [best]
        allowed = {"auto": ("direct", "fft"), "direct": ("direct",),
                   "fft": ("fft",)}[method_path(self.method)]
        config = device_config(self.config, model.device)
        lengths = measurable_fft_candidates(model.problem, config)
        nearest_first = sorted(lengths, key=lambda c: (_octaves(c.n_fft, lengths[0].n_fft),
                                                       c.cost_ns))
        others, ffts = [], int(best.path == "fft")
        for candidate in [c for c in model.candidates[1:] if c.path == "direct"] + nearest_first:
            if (candidate.path not in allowed or candidate.cost_ns > HOPELESS_FACTOR * best.cost_ns
                    or (candidate.path, candidate.n_fft) == (best.path, best.n_fft)):
                continue
            if candidate.path == "fft":
                if ffts == MEASURED_FFT_LENGTHS:
                    continue
                ffts += 1
            others.append(candidate)
        return [best, *sorted(others, key=lambda c: c.cost_ns)]

    def _wisdom_key(self, model: Plan, backend: Backend | None) -> str:
        """The plan-wisdom key of `model` on `backend` (None: a GPU plan made without a GPU,
        which no winner measured on a GPU applies to)."""
        model_name = "none" if backend is None else backend.device_model
        return plan_wisdom.wisdom_key(model.problem, model.backend, model.threads, self.method,
                                      model.direct_variant, model_name)

    def _remembered(self, model: Plan, backend: Backend | None) -> Plan | None:
        """`model` with the plan wisdom's winner chosen; None if unknown or no longer valid.

        A winner applies if `method` allows its path and, for the FFT path, its
        length is still one that measuring would time
        (:func:`~fftconv.planner.measurable_fft_candidates`).
        """
        found = plan_wisdom.lookup(self._wisdom_key(model, backend))
        if found is None:
            return None
        path, n_fft = found
        if method_path(self.method) not in ("auto", path):
            return None
        listed = [c for c in model.candidates if c.path == path
                  and (path == "direct" or c.n_fft == n_fft)]
        if listed:  # the direct path always is (see :func:`~fftconv.planner.plan`)
            return model.choose(listed[0])
        config = device_config(self.config, model.device)
        lengths = [c for c in measurable_fft_candidates(model.problem, config)
                   if c.n_fft == n_fft]
        return model.choose(lengths[0]) if lengths else None

    def _measure(self, model: Plan, wisdom_key: str, backend: Backend, x: Any,
                 kernel: Callable[[], np.ndarray], token: Hashable | None,
                 time_major: bool) -> tuple[Plan, Any]:
        """Time the candidates worth it (:meth:`_measurable`) on `x`; the fastest, and its result.

        Every timed run follows another run of the same candidate (the first an
        untimed one), as a program calling the layer repeatedly runs it: the
        untimed one makes the FFT plans and kernel spectra, and lets the memory
        that another candidate's run left behind settle; before it, the worker
        threads that run left spinning are waited for
        (:func:`~fftconv._machine.wait_for_idle_threads`; either can double the
        next run's time on a small machine).  The model's choice runs first.
        If the model estimates one more run of it longer than
        ``config.planner.measure_seconds``, that run's result is the call's and
        nothing is timed; else it is timed at once, and then, while the time
        (counted from the end of the first run) lasts, each other candidate,
        cheapest first, runs twice, the second run timed.  A candidate whose
        two runs the model estimates longer than the time left, or whose
        untimed run leaves no time, is left out, as are those after it.  Up to
        :data:`MEASURE_ROUNDS` rounds follow while the time left allows a whole
        round, each timing again the contenders (:func:`_contenders`): the
        fastest so far, the model's choice and every other candidate within
        :data:`CONTENDER_FACTOR` of the fastest (the slowest of these left out
        while the round would not fit), each with an untimed run and then
        :data:`ROUND_TIMED_RUNS` timed runs; each one's fastest run counts.  A
        path whose time swings between two levels from call to call (on a small
        shared machine, 1.5x and more) is caught at its lower level only if
        timed more than once.  The model's choice stays in however slow its
        first timed run: a path's first calls in a process can take two to
        three times its steady time (its large arrays fault in fresh memory, on
        Linux with transparent huge pages compacting it), and the model's
        estimate is evidence against such a run.  The fastest
        measured candidate wins, however close the runner-up: in 26 near ties
        (within 5 %) of three benchmark runs, the measured fastest was the faster
        of the two in the benchmark's own later timings 16 times, the model's
        choice 8 times.  The results of all these runs are dropped at once, the
        first one's too: a result held while the others run makes each of them
        allocate its arrays in memory the process has not touched yet, up to
        four times slower (with a 104 MB direct-path result held, that path's
        timed run took 400 ms against a steady 95, and it lost to FFT lengths
        30 % slower); the result returned is the winner's, from one more run.
        The runs keep the FFT plans they find (:func:`~fftconv.backends.blocks.plans_held`):
        a backend planning a transform again with more effort in one of them
        would charge that candidate seconds of planning, and leave the others
        out of the time left.

        The candidates' operands (FFT spectra, ...) go into a cache of this
        measurement; only the winner's are kept.  A winner out of two or more
        timed candidates is remembered in the plan wisdom.  On a GPU each run is
        timed to the end of its work on the device.
        """
        budget = self.config.planner.measure_seconds
        trial = SpectrumCache()
        seconds: dict[Candidate, float] = {}

        def run(candidate: Candidate) -> Any:
            with plans_held():
                y = self._run(backend, x, kernel, token, model.choose(candidate), time_major,
                              trial)
                backend.synchronize()
            return y

        def timed_run(candidate: Candidate) -> None:
            began = time.perf_counter()
            run(candidate)
            took = time.perf_counter() - began
            seconds[candidate] = min(seconds.get(candidate, took), took)

        result = run(model.candidates[0])
        start = time.perf_counter()

        def left() -> float:
            return budget - (time.perf_counter() - start)

        model_choice, *others = self._measurable(model)
        if model_choice.cost_ns * 1e-9 <= left():
            result = None  # held, it would slow the allocations of the runs below
            timed_run(model_choice)
            for candidate in others:
                if candidate.cost_ns * 1e-9 * 2 > left():
                    break
                wait_for_idle_threads()
                run(candidate)
                if left() <= 0:
                    break
                timed_run(candidate)
        with self._lock:
            self.measurements += len(seconds)
        runs = 1 + ROUND_TIMED_RUNS  # of each contender in a later round
        for _ in range(1, MEASURE_ROUNDS):
            contenders = _contenders(seconds, model.candidates[0])
            while contenders and runs * sum(seconds[c] for c in contenders) > left():
                contenders.pop()
            if len(contenders) < 2:
                break
            for candidate in contenders:
                wait_for_idle_threads()
                run(candidate)
                for _ in range(ROUND_TIMED_RUNS):
                    timed_run(candidate)
        winner = min(seconds, key=seconds.__getitem__) if seconds else model.candidates[0]
        chosen = model.choose(winner)
        if result is None:
            result = run(winner)
        if token is not None:
            key = _operands_key(chosen, x.dtype.str, backend.device)
            self.spectra.get(token, key, lambda: self._operands(
                trial, backend, token, kernel, chosen, x.dtype.str))
        if len(seconds) > 1:
            plan_wisdom.remember(
                wisdom_key, winner.path, winner.n_fft,
                {("direct" if c.path == "direct" else f"fft {c.n_fft}"): s
                 for c, s in seconds.items()},
                save=plan_wisdom.save_enabled(self.config.planner.save_wisdom))
        return chosen, result

    # -- running -------------------------------------------------------------

    def _run(self, backend: Backend, x: Any, kernel: Callable[[], np.ndarray],
             token: Hashable | None, chosen: Plan, time_major: bool, cache: SpectrumCache,
             keep: dict[int, list] | None = None) -> Any:
        """:meth:`execute` on `backend`, with the path's operands kept in `cache`."""
        operands = self._operands(cache, backend, token, kernel, chosen, x.dtype.str)
        config = device_config(self.config, chosen.device)
        job = Job(polyphase(self.spec), self.spec.output_width(x.shape[-1]), backend,
                  config.memory, time_major, keep)
        return PATHS[chosen.variant].run(x, operands, chosen, job)

    def _phase_kernels(self, token: Hashable | None, kernel: Callable[[], np.ndarray],
                       dtype: str) -> np.ndarray:
        """The phase kernels ``(G, Co, Ci, Kp)`` of the kernel, on the host (cached)."""
        return self.spectra.get(token, ("phase", dtype),
                                lambda: polyphase(self.spec).phase_kernels(kernel()))

    def _operands(self, cache: SpectrumCache, backend: Backend, token: Hashable | None,
                  kernel: Callable[[], np.ndarray], chosen: Plan, dtype: str) -> Any:
        """The operands of the plan's path on `backend`'s device, from `cache` (made if missing)."""
        return cache.get(token, _operands_key(chosen, dtype, backend.device),
                         lambda: PATHS[chosen.variant].prepare(
                             self._phase_kernels(token, kernel, dtype), chosen, backend))


def backend_options(config: Config) -> dict[str, Any]:
    """The keyword arguments of :func:`~fftconv.backends.get_backend` that `config` sets.

    An engine gets its backend with them, so a caller passing the same ones
    gets the same (shared) backend object, e.g. to read its counters.
    """
    options = config.pyfftw
    return {"threads": options.threads or None, "planner_effort": options.planner_effort,
            "planning_timelimit": options.planning_timelimit,
            "save_wisdom": options.save_wisdom,
            "measure_after_seconds": options.measure_after_seconds,
            "max_plans": config.cupy.max_plans, "max_plan_bytes": config.cupy.max_plan_bytes}


def _contenders(seconds: dict[Candidate, float], model_choice: Candidate) -> list[Candidate]:
    """The candidates a measuring round times again: the fastest so far first, then the
    model's choice (if timed), then the others within :data:`CONTENDER_FACTOR` of the
    fastest, fastest first; none if only one would be left."""
    ranked = sorted(seconds, key=seconds.__getitem__)
    if not ranked:
        return []
    fastest = ranked[0]
    chosen = [fastest]
    if model_choice != fastest and model_choice in seconds:
        chosen.append(model_choice)
    chosen += [c for c in ranked[1:] if c not in chosen
               and seconds[c] <= CONTENDER_FACTOR * seconds[fastest]]
    return chosen if len(chosen) > 1 else []


def _octaves(n: int, m: int) -> float:
    """How many octaves apart two FFT lengths are."""
    return abs(math.log2(n / m))


def _batch_slices(backend: Backend, x: Any) -> list[slice]:
    """The batch slices a GPU call on `x` runs by: one, unless `x` is a large host array.

    Two or more (at most B) of sizes differing by one at most, so at most two
    slice shapes are planned.
    """
    batch = x.shape[0]
    if (not isinstance(x, np.ndarray) or backend.owns(x) or batch < 2
            or x.nbytes < PIPELINE_MIN_BYTES):
        return [slice(None)]
    count = min(batch, max(2, -(-x.nbytes // PIPELINE_SLICE_BYTES)))
    bounds = [batch * i // count for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


def _plan_key(input_shape: tuple[int, ...], dtype: np.dtype, backend: str, device: str,
              time_major: bool) -> tuple:
    """An engine's plan-cache key: the input shape, the dtype, the backend's name and
    device, and whether the arrays are time-major.

    A plan measured on one GPU is not taken for a call on another.
    """
    return (tuple(input_shape), np.dtype(dtype).str, backend, device, bool(time_major))


def _operands_key(chosen: Plan, dtype: str, device: str) -> tuple:
    """The spectrum-cache key of a path's operands: ``(variant, n_fft, dtype, device)``."""
    return (chosen.variant, chosen.n_fft, dtype, device)
