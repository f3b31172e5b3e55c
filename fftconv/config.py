"""Cost-model configuration: TOML files with every key required and typed.

A configuration is chosen, in this order, by the ``config=`` argument (a path or
a :class:`Config`), the ``FFTCONV_CONFIG`` environment variable (a path), the
user profile that ``fftconv tune`` writes (``profile.toml`` in
:func:`user_config_directory`: ``$FFTCONV_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/fftconv``, else ``~/.config/fftconv``), when that file
exists, or the default shipped with the package (``configs/default.toml``).
A user profile that exists but is invalid is an error naming it, as any other
configuration file is; it is never skipped silently.  :func:`config_origin`
says which one is used and why.

A file may also have a ``[machine]`` table: a flat table of strings, numbers
and booleans describing where its constants were measured (``fftconv tune``
writes the CPU, BLAS, library versions, date and the fit's regret there).  It
is kept as :attr:`Config.machine` and never changes a plan.

Every number must be finite (TOML's ``nan`` and ``inf`` are refused) and in
range: the unit costs the model multiplies by (per transform, per
multiply-accumulate, the radix penalty and the float64 factors) must be > 0,
since 0 would make a path free; fixed overheads, the gather cost,
``pyfftw.planning_timelimit`` (0: no limit) and ``planner.measure_seconds``
(0: measure nothing) must be >= 0.

The ``[cupy]`` section holds the GPU's cost model and budgets; a file without
it (a profile that ``fftconv tune`` wrote for a CPU) takes the packaged
default's.  :func:`device_config` gives the configuration as the planner and
the paths see it on one kind of device.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, fields, is_dataclass
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
#: Environment variable naming the user configuration directory (the profile's home).
DIR_ENV_VAR = "FFTCONV_CONFIG_DIR"
#: File name of the user profile in :func:`user_config_directory`.
PROFILE_FILE = "profile.toml"
#: :attr:`Config.source` of the packaged default configuration.
DEFAULT_SOURCE = "configs/default.toml"
#: Bytes of a float32 sample: the lengths the cost model is measured in
#: (``cupy.cufft_large_length``, the tuning command's transforms) are float32 rows.
FLOAT32_BYTES = 4
#: Why :func:`load_config` chose its configuration (see :func:`config_origin`).
ORIGINS = ("argument", ENV_VAR, "user profile", "default")


@dataclass(frozen=True)
class FFTCosts:
    """Costs of the FFT path (ns)."""

    ns_per_nlogn: float
    radix_penalty: float
    call_overhead_ns: float
    product_ns_per_mac: float
    small_product_ns_per_mac: float
    row_overhead_ns: float
    ns_per_byte: float
    spectra_ns_per_byte: float
    float64_factor: float
    max_fft_length: int
    plan_overhead_ns: float
    plan_ns_per_point: float
    #: Transforms whose real rows hold more than `large_row_bytes` bytes (0: none)
    #: cost `large_ns_per_nlogn` per N log2 N instead of `ns_per_nlogn`.
    large_row_bytes: int
    large_ns_per_nlogn: float


@dataclass(frozen=True)
class DirectCosts:
    """Costs of the direct path (ns)."""

    ns_per_mac: float
    gather_ns_per_byte: float
    call_overhead_ns: float
    float64_factor: float


@dataclass(frozen=True)
class MemoryLimits:
    """Working-memory budgets (bytes); `spectra_bytes` bounds one layer's kernel spectra."""

    fft_bytes: int
    direct_bytes: int
    spectra_bytes: int


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
    measure_after_seconds: float = 2.0


@dataclass(frozen=True)
class CupyCosts:
    """The GPU's cost model (ns) and budgets (bytes); see ``[cupy]`` in the default file."""

    launch_overhead_ns: float
    cufft_ns_per_nlogn: float
    cufft_large_length: int
    cufft_large_ns_per_nlogn: float
    cufft_radix_penalty: float
    cufft_row_overhead_ns: float
    bin_product_ns_per_mac: float
    bin_small_product_ns_per_mac: float
    gemm_ns_per_mac: float
    copy_ns_per_byte: float
    fp64_factor: float
    cufft_max_length: int
    cufft_plan_overhead_ns: float
    cufft_plan_ns_per_point: float
    fft_chunk_bytes: int
    direct_block_bytes: int
    kernel_spectra_bytes: int
    max_plans: int
    max_plan_bytes: int


#: The values of ``planner.planning``.
PLANNING_MODES = ("estimate", "measure")


@dataclass(frozen=True)
class PlannerOptions:
    """How a plan is chosen: by the cost model, or measured on the first call of a shape.

    ``planning`` is ``'estimate'`` (the model's choice) or ``'measure'`` (time
    the model's best candidates on the first call's data, keep the fastest,
    remember it in the plan-wisdom file); ``measure_seconds`` bounds the time
    that measuring adds to a first call; ``save_wisdom`` false keeps new
    winners out of the plan-wisdom file (they are still looked up there).
    """

    planning: str
    measure_seconds: float
    save_wisdom: bool = True


@dataclass(frozen=True)
class Config:
    """A complete, validated cost-model configuration."""

    fft: FFTCosts
    direct: DirectCosts
    memory: MemoryLimits
    pyfftw: PyFFTWOptions
    streaming: StreamingCosts
    planner: PlannerOptions
    cupy: CupyCosts
    source: str = "<memory>"
    #: ``(key, value)`` pairs of the file's ``[machine]`` table, in file order.
    machine: tuple[tuple[str, str | int | float | bool], ...] = ()
    #: The kind of device whose costs `fft`, `direct` and `memory` hold: ``'cpu'``
    #: as read from a file, ``'cuda'`` from :func:`device_config`.
    device: str = "cpu"

    def to_toml(self) -> str:
        """The configuration as TOML text (the format :func:`load_config` reads)."""
        lines = []
        for section in fields(self):
            values = getattr(self, section.name)
            if not is_dataclass(values):  # source, machine
                continue
            lines.append(f"[{section.name}]")
            for f in fields(values):
                value = getattr(values, f.name)
                lines.append(f'{f.name} = "{value}"' if isinstance(value, str)
                             else f"{f.name} = {str(value).lower()}" if isinstance(value, bool)
                             else f"{f.name} = {value!r}")
            lines.append("")
        if self.machine:
            lines.append("[machine]")
            lines.extend(f"{_toml_key(key)} = {_toml_scalar(value)}"
                         for key, value in self.machine)
            lines.append("")
        return "\n".join(lines)


def device_config(config: Config, device: str) -> Config:
    """`config` as the planner and the paths see it on a kind of device.

    For ``'cpu'``, `config` itself.  For ``'cuda'``, its ``fft``, ``direct`` and
    ``memory`` sections hold the ``[cupy]`` constants (one GPU kernel launch is
    the fixed cost of a direct block, and four of an FFT call: the transform,
    its share of the block gather, the product and the scatter).

    Raises
    ------
    ValueError
        If `device` is not ``'cpu'`` or ``'cuda'``.
    """
    if device == "cpu":
        return config
    if device != "cuda":
        raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}.")
    return _cuda_config(config)


@cache
def _cuda_config(config: Config) -> Config:
    g = config.cupy
    fft = FFTCosts(
        ns_per_nlogn=g.cufft_ns_per_nlogn, radix_penalty=g.cufft_radix_penalty,
        call_overhead_ns=4 * g.launch_overhead_ns, product_ns_per_mac=g.bin_product_ns_per_mac,
        small_product_ns_per_mac=g.bin_small_product_ns_per_mac,
        row_overhead_ns=g.cufft_row_overhead_ns, ns_per_byte=g.copy_ns_per_byte,
        spectra_ns_per_byte=g.copy_ns_per_byte, float64_factor=g.fp64_factor,
        max_fft_length=g.cufft_max_length,
        plan_overhead_ns=g.cufft_plan_overhead_ns, plan_ns_per_point=g.cufft_plan_ns_per_point,
        large_row_bytes=FLOAT32_BYTES * g.cufft_large_length,
        large_ns_per_nlogn=g.cufft_large_ns_per_nlogn)
    direct = DirectCosts(ns_per_mac=g.gemm_ns_per_mac, gather_ns_per_byte=g.copy_ns_per_byte,
                         call_overhead_ns=g.launch_overhead_ns, float64_factor=g.fp64_factor)
    memory = MemoryLimits(fft_bytes=g.fft_chunk_bytes, direct_bytes=g.direct_block_bytes,
                          spectra_bytes=g.kernel_spectra_bytes)
    return dataclasses.replace(config, fft=fft, direct=direct, memory=memory, device="cuda")


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def _toml_scalar(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):  # JSON's escapes are TOML's for a basic string
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


_CLASSES = {"fft": FFTCosts, "direct": DirectCosts, "memory": MemoryLimits,
            "pyfftw": PyFFTWOptions, "streaming": StreamingCosts, "planner": PlannerOptions,
            "cupy": CupyCosts}
#: Sections that a file may leave out, taking the packaged default's.
_OPTIONAL_SECTIONS = ("cupy",)

#: Lower bound of each numeric key and whether the bound itself is excluded;
#: a key not listed must be >= 0.  A unit cost of 0 would make a transform, a
#: product or a path free, so the planner would always pick it.
_MINIMUMS: dict[str, tuple[int, bool]] = {
    "fft.ns_per_nlogn": (0, True),
    "fft.radix_penalty": (0, True),
    "fft.product_ns_per_mac": (0, True),
    "fft.small_product_ns_per_mac": (0, True),
    "fft.float64_factor": (0, True),
    "fft.large_ns_per_nlogn": (0, True),
    "fft.max_fft_length": (16, False),
    "direct.ns_per_mac": (0, True),
    "direct.float64_factor": (0, True),
    "memory.fft_bytes": (1, False),
    "memory.direct_bytes": (1, False),
    "memory.spectra_bytes": (1, False),
    "streaming.fft_ns_per_nlogn": (0, True),
    "streaming.ns_per_mac": (0, True),
    "cupy.cufft_ns_per_nlogn": (0, True),
    "cupy.cufft_large_ns_per_nlogn": (0, True),
    "cupy.cufft_radix_penalty": (0, True),
    "cupy.bin_product_ns_per_mac": (0, True),
    "cupy.bin_small_product_ns_per_mac": (0, True),
    "cupy.gemm_ns_per_mac": (0, True),
    "cupy.fp64_factor": (0, True),
    "cupy.cufft_max_length": (16, False),
    "cupy.fft_chunk_bytes": (1, False),
    "cupy.direct_block_bytes": (1, False),
    "cupy.kernel_spectra_bytes": (1, False),
    "cupy.max_plans": (1, False),
    "cupy.max_plan_bytes": (1, False),
}


def parse_config(data: dict[str, Any], source: str) -> Config:
    """Validate a parsed TOML document.

    Raises
    ------
    ValueError
        Naming `source` and the key: an unknown or missing section or key, a
        value of the wrong type, or a value out of range.
    """
    unknown = sorted(set(data) - set(_CLASSES) - {"machine"})
    if unknown:
        raise ValueError(f"{source}: unknown section [{unknown[0]}]; "
                         f"allowed sections are {sorted(_CLASSES)}.")
    # A file with a [machine] table was written by `fftconv tune`, perhaps of an
    # earlier version with fewer constants.
    hint = (" (a profile written by an earlier `fftconv tune`? Run `fftconv tune` "
            "again to measure every constant.)" if "machine" in data else ".")
    sections = {}
    for name, cls in _CLASSES.items():
        table = data.get(name)
        if table is None and name in _OPTIONAL_SECTIONS:
            sections[name] = getattr(_default_config(), name)
            continue
        if not isinstance(table, dict):
            raise ValueError(f"{source}: missing section [{name}].")
        sections[name] = _parse_section(table, cls, name, source, hint)
    _check_ranges(sections, source)
    return Config(**sections, source=source, machine=_parse_machine(data.get("machine", {}),
                                                                    source))


def _parse_machine(table: object, source: str) -> tuple[tuple[str, Any], ...]:
    """The ``[machine]`` table as ``(key, value)`` pairs: informative, any keys, scalars."""
    if not isinstance(table, dict):
        raise ValueError(f"{source}: 'machine' must be a table, got {table!r}.")
    for key, value in table.items():
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"{source}: key 'machine.{key}' must be a string, number or "
                             f"boolean, got {value!r}.")
    return tuple(table.items())


def _parse_section(table: dict[str, Any], cls: type, section: str, source: str,
                   hint: str = ".") -> Any:
    expected = {f.name: f.type for f in fields(cls)}
    for key in table:
        if key not in expected:
            raise ValueError(f"{source}: unknown key '{section}.{key}'; allowed keys are "
                             f"{sorted(expected)}.")
    values = {}
    for key, kind in expected.items():
        if key not in table:
            raise ValueError(f"{source}: missing key '{section}.{key}'{hint}")
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
    if sections["planner"].planning not in PLANNING_MODES:
        raise ValueError(f"{source}: key 'planner.planning' must be one of "
                         f"{PLANNING_MODES}, got {sections['planner'].planning!r}.")


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
    return parse_config(tomllib.loads(default_config_path().read_text(encoding="utf-8")),
                        DEFAULT_SOURCE)


def default_config_path() -> Path:
    """The packaged ``default.toml``: installed as ``fftconv.configs``, or, in a source
    checkout used without installing (``PYTHONPATH`` at the repository root),
    ``configs/default.toml`` beside the package."""
    try:
        return Path(str(resources.files("fftconv.configs").joinpath("default.toml")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / DEFAULT_SOURCE


@cache
def _cached_file(path: str, mtime_ns: int) -> Config:
    return read_config(path)


def user_config_directory() -> Path:
    """fftconv's user configuration directory, from the environment now.

    ``$FFTCONV_CONFIG_DIR`` if set, else ``$XDG_CONFIG_HOME/fftconv``, else
    ``~/.config/fftconv``.  It may not exist yet.
    """
    directory = os.environ.get(DIR_ENV_VAR)
    if directory:
        return Path(directory)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "fftconv"


def user_profile_path() -> Path:
    """The user profile: ``profile.toml`` in :func:`user_config_directory` (may not exist)."""
    return user_config_directory() / PROFILE_FILE


def config_origin(config: Config | str | os.PathLike | None = None, *,
                  user_profile: bool = True) -> tuple[str, Config | Path | None]:
    """Which configuration :func:`load_config` takes for `config`, and why.

    Parameters
    ----------
    config : Config, path or None
    user_profile : bool
        Consider the user profile (as :func:`load_config` does).

    Returns
    -------
    origin : {'argument', 'FFTCONV_CONFIG', 'user profile', 'default'}
    what : Config, Path or None
        `config` itself for 'argument' (a :class:`Config` stays one), the
        file's path for 'FFTCONV_CONFIG' and 'user profile', None for the
        packaged default.  Nothing is read or validated here.
    """
    if config is not None:
        return "argument", config if isinstance(config, Config) else Path(config)
    env = os.environ.get(ENV_VAR)
    if env:
        return ENV_VAR, Path(env)
    if user_profile:
        profile = user_profile_path()
        # lexists: a dangling link or an unreadable entry is reported, not skipped.
        if os.path.lexists(profile):
            return "user profile", profile
    return "default", None


def describe_config(config: Config | str | os.PathLike | None = None) -> str:
    """One line naming the configuration :func:`load_config` takes for `config`, and why.

    E.g. ``config: /home/me/.config/fftconv/profile.toml (user profile)`` or
    ``config: packaged default (default: ...)``.  Nothing is read.
    """
    origin, what = config_origin(config)
    if what is None:
        return (f"config: packaged default (default: no config argument, no {ENV_VAR}, "
                f"no user profile {user_profile_path()})")
    name = what.source if isinstance(what, Config) else str(what)
    return f"config: {name} ({origin})"


def load_config(config: Config | str | os.PathLike | None = None, *,
                user_profile: bool = True) -> Config:
    """Resolve the configuration.

    In this order: the `config` argument, the ``$FFTCONV_CONFIG`` file, the
    user profile (:func:`user_profile_path`) if that file exists, the
    packaged default.

    Parameters
    ----------
    config : Config, path or None
    user_profile : bool
        False skips the user profile (``fftconv tune`` starts from the
        packaged default, not from an earlier profile).

    Raises
    ------
    ValueError
        If the file is missing, unreadable or invalid (the message names the
        file, and the key where one is at fault); an invalid user profile is
        such an error too.
    TypeError
        If `config` is of another type.
    """
    if isinstance(config, Config):
        return config
    if config is not None and not isinstance(config, (str, os.PathLike)):
        raise TypeError(f"`config` must be a Config, a path or None, got {config!r}.")
    origin, path = config_origin(config, user_profile=user_profile)
    if path is None:
        return _default_config()
    try:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:  # missing or unreadable: read_config says which and why
            return read_config(path)
        return _cached_file(str(path), mtime)
    except ValueError as err:
        if origin != "user profile":
            raise
        raise ValueError(f"{err} It is the user profile, read when neither config= nor "
                         f"{ENV_VAR} is given: replace it with `fftconv tune --force`, or "
                         f"remove it.") from None
