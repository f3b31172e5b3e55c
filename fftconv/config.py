"""Cost-model configuration: TOML files with every key required and typed.

A configuration is chosen, in this order, by the ``config=`` argument (a path or
a :class:`Config`), the ``FFTCONV_CONFIG`` environment variable (a path), or the
default shipped with the package (``configs/default.toml``).

Every number must be finite (TOML's ``nan`` and ``inf`` are refused) and in
range: the unit costs the model multiplies by (per transform, per
multiply-accumulate, the radix penalty and the float64 factors) must be > 0,
since 0 would make a path free; fixed overheads, the gather cost and
``pyfftw.planning_timelimit`` (0: no limit) must be >= 0.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fftconv.backends import PLANNER_EFFORTS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ENV_VAR = "FFTCONV_CONFIG"


@dataclass(frozen=True)
class FFTCosts:
    """Costs of the FFT path (ns)."""

    ns_per_nlogn: float
    radix_penalty: float
    call_overhead_ns: float
    product_ns_per_mac: float
    small_product_ns_per_mac: float
    float64_factor: float
    max_fft_length: int


@dataclass(frozen=True)
class DirectCosts:
    """Costs of the direct path (ns)."""

    ns_per_mac: float
    gather_ns_per_byte: float
    call_overhead_ns: float
    float64_factor: float


@dataclass(frozen=True)
class MemoryLimits:
    """Working-memory budgets (bytes)."""

    fft_bytes: int
    direct_bytes: int


@dataclass(frozen=True)
class StreamingCosts:
    """Costs of one level of a partitioned stream (ns), for choosing its layout."""

    fft_ns_per_nlogn: float
    ns_per_mac: float
    block_overhead_ns: float
    frame_overhead_ns: float


@dataclass(frozen=True)
class PyFFTWOptions:
    """FFTW planning options, and whether FFTW's wisdom is saved at interpreter exit."""

    planner_effort: str
    planning_timelimit: float
    threads: int
    save_wisdom: bool = True


@dataclass(frozen=True)
class Config:
    """A complete, validated cost-model configuration."""

    fft: FFTCosts
    direct: DirectCosts
    memory: MemoryLimits
    pyfftw: PyFFTWOptions
    streaming: StreamingCosts
    source: str = "<memory>"

    def to_toml(self) -> str:
        """The configuration as TOML text (the format :func:`load_config` reads)."""
        lines = []
        for section in fields(self)[:-1]:
            lines.append(f"[{section.name}]")
            values = getattr(self, section.name)
            for f in fields(values):
                value = getattr(values, f.name)
                lines.append(f'{f.name} = "{value}"' if isinstance(value, str)
                             else f"{f.name} = {str(value).lower()}" if isinstance(value, bool)
                             else f"{f.name} = {value!r}")
            lines.append("")
        return "\n".join(lines)


_CLASSES = {"fft": FFTCosts, "direct": DirectCosts, "memory": MemoryLimits,
            "pyfftw": PyFFTWOptions, "streaming": StreamingCosts}

#: Lower bound of each numeric key and whether the bound itself is excluded;
#: a key not listed must be >= 0.  A unit cost of 0 would make a transform, a
#: product or a path free, so the planner would always pick it.
_MINIMUMS: dict[str, tuple[int, bool]] = {
    "fft.ns_per_nlogn": (0, True),
    "fft.radix_penalty": (0, True),
    "fft.product_ns_per_mac": (0, True),
    "fft.small_product_ns_per_mac": (0, True),
    "fft.float64_factor": (0, True),
    "fft.max_fft_length": (16, False),
    "direct.ns_per_mac": (0, True),
    "direct.float64_factor": (0, True),
    "memory.fft_bytes": (1, False),
    "memory.direct_bytes": (1, False),
    "streaming.fft_ns_per_nlogn": (0, True),
    "streaming.ns_per_mac": (0, True),
}


def parse_config(data: dict[str, Any], source: str) -> Config:
    """Validate a parsed TOML document.

    Raises
    ------
    ValueError
        Naming `source` and the key: an unknown or missing section or key, a
        value of the wrong type, or a value out of range.
    """
    unknown = sorted(set(data) - set(_CLASSES))
    if unknown:
        raise ValueError(f"{source}: unknown section [{unknown[0]}]; "
                         f"allowed sections are {sorted(_CLASSES)}.")
    sections = {}
    for name, cls in _CLASSES.items():
        table = data.get(name)
        if not isinstance(table, dict):
            raise ValueError(f"{source}: missing section [{name}].")
        sections[name] = _parse_section(table, cls, name, source)
    _check_ranges(sections, source)
    return Config(**sections, source=source)


def _parse_section(table: dict[str, Any], cls: type, section: str, source: str) -> Any:
    expected = {f.name: f.type for f in fields(cls)}
    for key in table:
        if key not in expected:
            raise ValueError(f"{source}: unknown key '{section}.{key}'; allowed keys are "
                             f"{sorted(expected)}.")
    values = {}
    for key, kind in expected.items():
        if key not in table:
            raise ValueError(f"{source}: missing key '{section}.{key}'.")
        value = table[key]
        ok = {"float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "str": isinstance(value, str),
              "bool": isinstance(value, bool)}[kind]
        if not ok:
            raise ValueError(f"{source}: key '{section}.{key}' must be of type {kind}, "
                             f"got {value!r}.")
        if kind == "float":
            try:
                value = float(value)
            except OverflowError:
                raise ValueError(f"{source}: key '{section}.{key}' must be a finite number, "
                                 f"got an integer too large for a float.") from None
        values[key] = value
    return cls(**values)


def _check_ranges(sections: dict[str, Any], source: str) -> None:
    for section, values in sections.items():
        for f in fields(values):
            value = getattr(values, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            key = f"{section}.{f.name}"
            minimum, strict = _MINIMUMS.get(key, (0, False))
            above = value > minimum if strict else value >= minimum
            if isinstance(value, float) and not (math.isfinite(value) and above):
                raise ValueError(f"{source}: key '{key}' must be a finite number "
                                 f"{'>' if strict else '>='} {minimum}, got {value!r}.")
            if not above:
                raise ValueError(f"{source}: key '{key}' must be an integer "
                                 f"{'>' if strict else '>='} {minimum}, got {value!r}.")
    if sections["pyfftw"].planner_effort not in PLANNER_EFFORTS:
        raise ValueError(f"{source}: key 'pyfftw.planner_effort' must be one of "
                         f"{PLANNER_EFFORTS}, got {sections['pyfftw'].planner_effort!r}.")


def read_config(path: str | os.PathLike) -> Config:
    """Read and validate a TOML configuration file.

    Raises
    ------
    ValueError
        Naming the file: if it is missing, cannot be read (a directory, no
        permission, ...), is not UTF-8 TOML, or is not a valid configuration
        (see :func:`parse_config`).
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{path}: configuration file not found.") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the configuration file: "
                         f"{err.strerror or err}.") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: not UTF-8 text ({err.reason} at byte "
                         f"{err.start}).") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}.") from None
    return parse_config(data, str(path))


@cache
def _default_config() -> Config:
    text = resources.files("fftconv.configs").joinpath("default.toml").read_text()
    return parse_config(tomllib.loads(text), "configs/default.toml")


@cache
def _cached_file(path: str, mtime_ns: int) -> Config:
    return read_config(path)


def load_config(config: Config | str | os.PathLike | None = None) -> Config:
    """Resolve the configuration: argument, then ``$FFTCONV_CONFIG``, then the default.

    Parameters
    ----------
    config : Config, path or None

    Raises
    ------
    ValueError
        If the file is missing, unreadable or invalid (the message names the
        file, and the key where one is at fault).
    TypeError
        If `config` is of another type.
    """
    if isinstance(config, Config):
        return config
    if config is None:
        config = os.environ.get(ENV_VAR) or None
        if config is None:
            return _default_config()
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f"`config` must be a Config, a path or None, got {config!r}.")
    path = Path(config)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:  # missing or unreadable: read_config says which and why
        return read_config(path)
    return _cached_file(str(path), mtime)
