"""The ``fftconv`` command line."""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from fftconv import audio
from fftconv.backends import BACKENDS
from fftconv.config import describe_config, load_config
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
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"need three positive sizes (>= 1), got {text!r}")
    return shape


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as one line, like the commands' own errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fftconv", description=__doc__)
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
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the estimated cost of the direct and the FFT path against "
                        "kernel length (K/64 to K*64) for this layer and input, marking its K "
                        "and the crossover, to FILE (format from its extension, e.g. .png); "
                        "needs matplotlib")
    t = commands.add_parser(
        "tune", help="fit the cost model to this machine and write a config file",
        description="Measure the cost model's constants with micro-benchmarks (FFTs, the "
                    "per-bin product, a GEMM, a window gather), time a seeded suite of real "
                    "layer calls (each problem's direct path and a few FFT lengths), and scale "
                    "the constants so that the planner's choices lose the least time on that "
                    "suite. Writes a TOML configuration with a header and a [machine] table "
                    "describing this machine and the suite's regret before and after the fit. "
                    "Without --output it is the user profile, which fftconv then reads "
                    "whenever neither config= nor FFTCONV_CONFIG is given. Budgets, FFTW "
                    "options and other settings are copied from the base configuration. "
                    "The file is replaced only when complete: an interrupted run (Ctrl-C, "
                    "SIGTERM, SIGHUP) leaves the old one.")
    t.add_argument("--output", metavar="TOML",
                   help="file to write (default: the user profile, profile.toml in "
                        "$FFTCONV_CONFIG_DIR, else $XDG_CONFIG_HOME/fftconv, else "
                        "~/.config/fftconv; the directory is created); an existing file is "
                        "only replaced if it is a fftconv configuration, or with --force")
    t.add_argument("--force", action="store_true",
                   help="replace OUTPUT even if it is not a fftconv configuration")
    t.add_argument("--quick", action="store_true",
                   help="a small suite (well under a minute on two cores) instead of the "
                        "full one (a few minutes)")
    t.add_argument("--base", metavar="TOML",
                   help="configuration to start from (default: FFTCONV_CONFIG, else the "
                        "packaged default; never the user profile)")
    t.add_argument("--repeat", type=_positive_int, default=5, metavar="N",
                   help="timed runs per measurement, >= 1 (default: 5)")
    t.add_argument("--backend", choices=("auto", "cupy"), default="auto",
                   help="auto: the CPU's constants, as described above; cupy: only the "
                        "[cupy] section, measured and fitted the same way on the current GPU "
                        "(needs CuPy and a GPU), the rest copied from the base")
    # For tests: 'tiny' times three small layer calls.
    t.add_argument("--suite", choices=("tiny", "quick", "full"), help=argparse.SUPPRESS)
    f = commands.add_parser(
        "filter", help="convolve an audio file with an impulse response file",
        description="Convolve INPUT with the impulse response IR and write OUTPUT (format "
                    "from its extension), reading and writing in blocks. A mono IR filters "
                    "every channel, an IR with the input's channel count filters each "
                    "channel with its own, and a 4-channel IR on a stereo input is true "
                    "stereo in the order LL, LR, RL, RR (from-to). OUTPUT is written under "
                    "a temporary name (.OUTPUT.XXXXXXXX.part, in its directory) and renamed "
                    "when complete; on an error, Ctrl-C (exit status 130), SIGTERM (143) or "
                    "SIGHUP (129) the temporary file is removed and an existing OUTPUT is "
                    "left as it was. NaN or infinite samples are an error unless "
                    "--nonfinite pass.")
    f.add_argument("input", metavar="INPUT", help="audio file to filter (WAV, FLAC, OGG, ...)")
    f.add_argument("ir", metavar="IR", help="impulse response file")
    f.add_argument("output", metavar="OUTPUT", help="file to write")
    f.add_argument("--length", choices=audio.LENGTHS, default="same",
                   help="same: the input's length, the IR's first sample aligned with the "
                        "input's; full: with the IR's tail (default: same)")
    f.add_argument("--mix", type=float, default=1.0, metavar="WET",
                   help="wet/dry mix in [0, 1]: WET*filtered + (1-WET)*input (default: 1)")
    f.add_argument("--gain-db", type=float, default=0.0, metavar="DB",
                   help="gain in dB applied to the mix (default: 0)")
    f.add_argument("--normalize", type=float, metavar="DBFS",
                   help="scale the peak to DBFS, e.g. -1 (two passes over the input)")
    f.add_argument("--subtype", metavar="SUBTYPE",
                   help="output sample format, e.g. FLOAT, PCM_16, PCM_24 (default: FLOAT, "
                        "or PCM_24 where the format has no float samples)")
    f.add_argument("--block-size", type=int, default=65536, metavar="FRAMES",
                   help="frames read and written at a time (default: 65536)")
    f.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="where the convolution runs: auto, numpy or pyfftw on the CPU, cupy "
                        "on the current GPU (default: auto)")
    f.add_argument("--method", choices=audio.METHODS, default="auto",
                   help="partitioning of the streaming convolution")
    f.add_argument("--resample", action="store_true",
                   help="resample the IR to the input's sample rate when they differ")
    f.add_argument("--no-progress", dest="progress", action="store_false",
                   help="do not show the progress bar on stderr")
    f.add_argument("--nonfinite", choices=audio.NONFINITE, default="error",
                   help="NaN or infinite samples in INPUT, IR or the result: error (default) "
                        "stops, naming the file and the first bad frame and channel; pass "
                        "writes them with a warning that counts them, to a FLOAT or DOUBLE "
                        "subtype only (any other subtype is still an error: integer samples "
                        "cannot hold them); --normalize refuses them")
    f.add_argument("--force", action="store_true",
                   help="allow OUTPUT to be INPUT or IR (the same file, or a link to it); "
                        "it is replaced once the new file is complete")
    from fftconv import demo

    d = commands.add_parser(
        "demo", help="reverberate a generated test signal; print the plan and the times",
        description="Make a stereo test signal and a synthetic stereo room impulse response, "
                    "convolve them with fftconv (the full convolution, with the reverb "
                    "tail), print the plan, fftconv's time (the first call, which plans, and "
                    "a repeat call) and scipy.signal.oaconvolve's on the same job, and write "
                    f"{demo.DRY_FILE}, {demo.IR_FILE}, {demo.WET_FILE} and, when matplotlib "
                    f"is installed, {demo.PLOT_FILE}. Existing files of these names are "
                    "replaced.")
    d.add_argument("--output-dir", default=".", metavar="DIR",
                   help="directory for the files, created if missing (default: the current "
                        "directory)")
    d.add_argument("--seconds", type=float, default=demo.DEFAULT_SECONDS, metavar="S",
                   help=f"length of the test signal, {demo.MIN_SECONDS:g} to "
                        f"{demo.MAX_SECONDS:g} (default: {demo.DEFAULT_SECONDS:g})")
    d.add_argument("--no-plot", dest="plot", action="store_false",
                   help=f"do not write {demo.PLOT_FILE}")
    d.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the test signal and the room, >= 0 (default: 0)")
    return parser


def _filter(args: argparse.Namespace) -> int:
    try:
        # SIGTERM and SIGHUP unwind like Ctrl-C, so the temporary file is removed.
        with audio.terminate_on_signals(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = audio.filter_file(
                args.input, args.ir, args.output, length=args.length, mix=args.mix,
                gain_db=args.gain_db, normalize=args.normalize, subtype=args.subtype,
                block_size=args.block_size, backend=args.backend, method=args.method,
                resample=args.resample, progress=args.progress, nonfinite=args.nonfinite,
                force=args.force)
    except audio.Terminated as err:
        print(f"fftconv filter: {err}", file=sys.stderr)
        return 128 + err.signum
    for warning in caught:
        print(f"fftconv filter: warning: {warning.message}", file=sys.stderr)
    if not math.isfinite(result.peak):  # NaN or inf, written with --nonfinite pass
        peak = f"{result.peak}"
    elif result.peak > 0:
        peak = f"{20 * math.log10(result.peak):+.1f} dBFS"
    else:
        peak = "silent"
    if result.nonfinite:
        peak += f" ({result.nonfinite} non-finite samples)"
    channels = f"{result.channels} channel{'' if result.channels == 1 else 's'}"
    print(f"wrote {result.output}: {result.duration:.2f} s, {channels}, "
          f"{result.samplerate} Hz, {result.subtype}, peak {peak}, "
          f"{result.realtime_factor:.1f}x real time")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from fftconv import tune
    from fftconv._files import replace_atomically
    from fftconv.config import ENV_VAR, read_config, user_profile_path

    # The user profile is never the base: tuning again starts afresh, and a broken
    # profile can be replaced.
    base = load_config(args.base, user_profile=False)
    profile = args.output is None
    output = user_profile_path() if profile else Path(args.output)
    name = "the user profile" if profile else "--output"
    # Checked before measuring, which takes a while.
    if (not profile and args.output.endswith(("/", os.sep))) or output.is_dir():
        raise ValueError(f"{name} {output}: is a directory; give the file to write.")
    if profile:
        output.parent.mkdir(parents=True, exist_ok=True)
    elif not output.parent.is_dir():
        raise ValueError(f"--output {args.output}: directory {output.parent} does not exist.")
    if os.path.lexists(output) and not args.force:
        try:
            read_config(output)
        except ValueError:
            raise ValueError(f"{name} {output} exists and is not a fftconv configuration; "
                             f"use --force to replace it.") from None
    if args.backend == "cupy":
        from fftconv import tune_gpu
        from fftconv.backends import get_backend

        gpu = get_backend("cupy")  # ImportError or RuntimeError without CuPy or a GPU
        run = functools.partial(tune_gpu.tune_cupy, base, gpu)
    else:
        run = functools.partial(tune.tune_config, base)
    suite = args.suite or ("quick" if args.quick else "full")
    command = " ".join(["fftconv tune", *(["--backend cupy"] if args.backend == "cupy" else []),
                        *([f"--suite {suite}"] if args.suite else []),
                        *(["--quick"] if args.quick and not args.suite else []),
                        *([f"--base {args.base}"] if args.base else []),
                        *([f"--repeat {args.repeat}"] if args.repeat != 5 else [])])
    use = ("Read automatically as the user profile unless config= or FFTCONV_CONFIG names "
           "another file." if profile else f"Use it with config=PATH or {ENV_VAR}={output}.")
    # SIGTERM and SIGHUP unwind like Ctrl-C: the old file stays, no temporary is left.
    with audio.terminate_on_signals():
        try:
            try:
                result = run(suite=suite, repeat=args.repeat,
                             log=lambda line: print(line, file=sys.stderr))
            except RuntimeError as err:
                print(f"fftconv tune: error: {err} Nothing was written.", file=sys.stderr)
                return 2
            # An interrupted run leaves the old file or none, never part of one.
            replace_atomically(output, tune.profile_text(result, command, use))
        except audio.Terminated as err:
            print(f"fftconv tune: terminated; {output} was not changed.", file=sys.stderr)
            return 128 + err.signum
    for label, stats in result.regret.items():
        print(f"regret {label:<17} {stats}")
    print(f"wrote {output}" + (" (user profile)" if profile else ""))
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
    if args.plot is not None:
        from fftconv.plot import figure_class

        try:
            figure_class()  # checked before planning, so a missing matplotlib fails fast
        except ImportError as err:
            print(f"fftconv plan: error: --plot: {err}", file=sys.stderr)
            return 2
    layer = SignalConv1D(**_layer_arguments(args))
    shape = args.input_shape
    layer.compute_output_shape(shape)  # validates the width
    channels_first = (shape[0], shape[2], shape[1]) if layer.time_major else shape
    print(layer)
    print(f"input shape {shape} -> output shape {layer.compute_output_shape(shape)}")
    print(layer.plan_for(shape))
    print(describe_config(_layer_arguments(args).get("config")))
    if args.plot is not None:
        from fftconv.plot import describe_layer, plan_cost_curves, plan_cost_figure

        engine = layer.engine
        curves = plan_cost_curves(layer.spec, channels_first, layer.dtype,
                                  filters=layer.filters, config=engine.config,
                                  backend=engine.backend.name, threads=engine.backend.threads,
                                  time_major=layer.time_major)
        title = describe_layer(layer.spec, channels_first, layer.dtype, layer.filters,
                               engine.config)
        plan_cost_figure(curves, title).savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fftconv.demo import TOLERANCE, run_demo

    result = run_demo(args.output_dir, seconds=args.seconds, plot=args.plot, seed=args.seed)
    if not result.agrees:
        print(f"fftconv demo: error: fftconv and scipy.signal.oaconvolve differ by "
              f"{result.max_abs_diff:.2e}, more than {TOLERANCE:g} of max|y| = "
              f"{result.max_abs_output:.3g}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return {"plan": _plan, "tune": _tune, "filter": _filter,
                "demo": _demo}[args.command](args)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as err:
        # ImportError and RuntimeError: a backend without its package or its GPU.
        print(f"fftconv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fftconv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
