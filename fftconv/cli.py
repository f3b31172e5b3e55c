"""The ``fftconv`` command line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from fftconv.config import load_config
from fftconv.layer import SignalConv1D

#: Layer arguments the ``plan`` command takes as flags (name, type).
_LAYER_FLAGS = (
    ("filters", int), ("kernel_support", int), ("strides_down", int), ("strides_up", int),
    ("padding", str), ("data_format", str), ("method", str), ("backend", str),
)
_LAYER_SWITCHES = ("corr", "channel_separable")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape like 8,65536,4: {text!r}") from None
    if len(shape) != 3 or min(shape) < 0:
        raise argparse.ArgumentTypeError(f"need three non-negative sizes, got {text!r}")
    return shape


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fftconv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "plan", help="print the plan the planner picks for a layer and an input shape",
        description="Print the chosen plan and every candidate's estimated cost. The layer "
                    "comes from flags or from a JSON file of SignalConv1D arguments "
                    "(e.g. get_config() output); flags override the file.")
    p.add_argument("--layer", metavar="JSON", help="file with SignalConv1D arguments")
    for name, kind in _LAYER_FLAGS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    for name in _LAYER_SWITCHES:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, action="store_true",
                       default=None)
    p.add_argument("--extra-pad-end", dest="extra_pad_end", choices=("true", "false"))
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--config", metavar="TOML", help="cost-model configuration file")
    p.add_argument("--input-shape", type=_shape, required=True, metavar="B,W,C",
                   help="input shape in the layer's data format, e.g. 8,65536,4")
    t = commands.add_parser(
        "tune", help="measure the cost model on this machine and write a config file",
        description="Time FFTs, the per-bin product, a GEMM and a window gather, and write "
                    "a TOML configuration with the measured constants (budgets and FFTW "
                    "options are copied from the base configuration).")
    t.add_argument("--output", required=True, metavar="TOML", help="file to write")
    t.add_argument("--base", metavar="TOML", help="configuration to start from")
    t.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    return parser


def _tune(args: argparse.Namespace) -> int:
    from fftconv.tune import measure_config

    config = measure_config(load_config(args.base), repeat=args.repeat,
                            log=lambda line: print(line, file=sys.stderr))
    header = ("# fftconv cost model measured by `fftconv tune` on "
              f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores).\n"
              f"# Use it with config=PATH or FFTCONV_CONFIG={args.output}.\n\n")
    Path(args.output).write_text(header + config.to_toml())
    print(f"wrote {args.output}")
    return 0


def _layer_arguments(args: argparse.Namespace) -> dict:
    config: dict = {}
    if args.layer:
        with open(args.layer) as fh:
            config = json.load(fh)
        if not isinstance(config, dict):
            raise ValueError(f"{args.layer}: expected a JSON object of layer arguments.")
    for name in [n for n, _ in _LAYER_FLAGS] + list(_LAYER_SWITCHES) + ["dtype", "config"]:
        value = getattr(args, name)
        if value is not None:
            config[name] = value
    if args.extra_pad_end is not None:
        config["extra_pad_end"] = args.extra_pad_end == "true"
    for required in ("filters", "kernel_support"):
        if required not in config:
            raise ValueError(f"`{required}` is required (flag --{required.replace('_', '-')} "
                             f"or the --layer file).")
    return config


def _plan(args: argparse.Namespace) -> int:
    layer = SignalConv1D(**_layer_arguments(args))
    shape = args.input_shape
    layer.compute_output_shape(shape)  # validates the width
    channels_first = shape if layer.data_format == "channels_first" else (
        shape[0], shape[2], shape[1])
    print(layer)
    print(f"input shape {shape} -> output shape {layer.compute_output_shape(shape)}")
    print(layer.engine.plan_for(channels_first, layer.dtype))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return {"plan": _plan, "tune": _tune}[args.command](args)
    except (ValueError, TypeError, OSError) as err:
        print(f"fftconv {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
