"""What the process runs on: usable cores, the CPU model (for plans and records), and
whether its other threads are busy (for timings)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

#: Longest wait of :func:`wait_for_idle_threads`, seconds: OpenBLAS's workers spin
#: about 0.1 s after a call (2**28 cycles), an OpenMP runtime's 0.2 s by default.
IDLE_WAIT_SECONDS = 0.3
#: :func:`wait_for_idle_threads` samples the process's CPU time over this many seconds.
IDLE_SAMPLE_SECONDS = 0.004
#: CPU seconds per second below which the process's other threads count as idle.
IDLE_CPU_SHARE = 0.25
#: Consecutive samples that must be idle: on a loaded machine a spinning thread can
#: get no core for one 4 ms sample (a test of the wait failed so, once, with the
#: suite on two workers).
IDLE_SAMPLES = 2


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpuinfo_value(names: Iterable[str]) -> str:
    """The value of the first ``/proc/cpuinfo`` line named one of `names` ('' if none).

    Stripped of surrounding space; '' where the file cannot be read (not Linux).
    """
    wanted = set(names)
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() in wanted and value.strip():
                    return value.strip()
    except OSError:
        pass
    return ""


def wait_for_idle_threads(timeout: float = IDLE_WAIT_SECONDS) -> float:
    """Wait until no other thread of this process is busy; return the seconds waited.

    After a BLAS call its worker threads keep spinning for a while (OpenBLAS
    about 0.1 s), taking cores from whatever runs next: on two cores an FFT
    call timed right after a direct-path call took up to twice its time.  A
    program calling one layer repeatedly never sees that, so a timing of one
    path after another waits here first.  Samples the process's CPU time
    (:func:`time.process_time`, all its threads) while this thread sleeps for
    :data:`IDLE_SAMPLE_SECONDS`, until it advances less than
    :data:`IDLE_CPU_SHARE` of the time slept in :data:`IDLE_SAMPLES` samples in
    a row, or for `timeout` seconds at most (a thread busy with other work ends
    the wait there).
    """
    start = time.perf_counter()
    quiet = 0
    while True:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(IDLE_SAMPLE_SECONDS)
        now = time.perf_counter()
        quiet = quiet + 1 if time.process_time() - cpu < IDLE_CPU_SHARE * (now - wall) else 0
        if quiet == IDLE_SAMPLES or now - start >= timeout:
            return now - start
