"""Cost-model configuration: TOML files with every key required and typed.

A configuration is chosen, in this order, by the ``config=`` argument (a path or
a :class:`Config`), the ``FFTCONV_CONFIG`` environment variable (a path), or the
default shipped with the package (``configs/default.toml``).
"""

from __future__ import annotations

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
    """FFTW planning options."""

    planner_effort: str
    planning_timelimit: float
    threads: int


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
                             else f"{f.name} = {value!r}")
            lines.append("")
        return "\n".join(lines)


_CLASSES = {"fft": FFTCosts, "direct": DirectCosts, "memory": MemoryLimits,
            "pyfftw": PyFFTWOptions, "streaming": StreamingCosts}


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
              "str": isinstance(value, str)}[kind]
        if not ok:
            raise ValueError(f"{source}: key '{section}.{key}' must be of type {kind}, "
                             f"got {value!r}.")
        values[key] = float(value) if kind == "float" else value
    return cls(**values)


def _check_ranges(sections: dict[str, Any], source: str) -> None:
    for section, values in sections.items():
        for f in fields(values):
            value = getattr(values, f.name)
            if isinstance(value, float) and value < 0:
                raise ValueError(f"{source}: key '{section}.{f.name}' must be >= 0, "
                                 f"got {value}.")
    if sections["pyfftw"].planner_effort not in PLANNER_EFFORTS:
        raise ValueError(f"{source}: key 'pyfftw.planner_effort' must be one of "
                         f"{PLANNER_EFFORTS}, got {sections['pyfftw'].planner_effort!r}.")
    for key, minimum in (("fft.max_fft_length", 16), ("memory.fft_bytes", 1),
                         ("memory.direct_bytes", 1), ("pyfftw.threads", 0)):
        section, name = key.split(".")
        if getattr(sections[section], name) < minimum:
            raise ValueError(f"{source}: key '{key}' must be >= {minimum}.")


def read_config(path: str | os.PathLike) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{path}: configuration file not found.") from None
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
        If the file is missing or invalid (the message names the file and key).
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
    mtime = path.stat().st_mtime_ns if path.exists() else -1
    return _cached_file(str(path), mtime)
