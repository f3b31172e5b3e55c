"""What the process runs on: usable cores and the CPU model (for plans and records)."""

from __future__ import annotations

import os
from collections.abc import Iterable


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
