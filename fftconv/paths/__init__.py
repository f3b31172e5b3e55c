"""Execution paths for the one primitive, ``corr_valid``.

Each path is an entry of the engine's table (:data:`fftconv.engine.PATHS`), keyed
by the plan's variant (``'fft'``, ``'direct-shifted'``, ``'direct-windows'``,
``'direct-fir'``):
``prepare(w, plan, backend)`` turns the host phase kernels ``w`` into the
operands the path keeps on the device (cached by the engine), and
``run(x, operands, plan, job)`` computes the layer output from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fftconv.backends import Backend
    from fftconv.config import MemoryLimits
    from fftconv.reduction import Polyphase


@dataclass(frozen=True)
class Job:
    """What a path's ``run`` needs of one call besides the input, operands and plan.

    Attributes
    ----------
    poly : Polyphase
        The layer's phase bookkeeping.
    n_out : int
        Layer outputs.
    backend : Backend
        Where the input lives and the work runs.
    memory : MemoryLimits
        The device's working-memory budgets.
    time_major : bool
        Lay the result out channels last in memory (a transposed view).
    keep : dict or None
        Where the FFT path keeps the spectra of its input blocks, under its FFT
        length, for the kernel gradient (None: nowhere; direct paths keep none).
    """

    poly: Polyphase
    n_out: int
    backend: Backend
    memory: MemoryLimits
    time_major: bool
    keep: dict[int, list] | None = None
