"""``fftconv demo``: reverberate a generated test signal and show what the planner chose.

:func:`run_demo` makes a deterministic stereo test signal (:func:`demo_signal`:
plucked notes, noise bursts and clicks) and a synthetic stereo room impulse
response (:func:`room_impulse_response`: a direct path, early reflections and a
noise tail that decays faster at high frequencies), convolves them with a
:class:`~fftconv.layer.SignalConv1D`, times the first call (which includes all
planning) and a repeat call, checks the result against
:func:`scipy.signal.oaconvolve` and writes the signals as WAV files and, when
matplotlib is installed, a figure as PNG.

The convolution is the *full* one, with the reverb tail: a channel-separable
layer with ``padding='valid'`` on the input zero-padded by ``K - 1`` samples at
both ends, so that output ``n`` is ``sum_k ir[k] * dry[n - k]`` for
``0 <= n < N + K - 1``, per channel (frame ``n`` of
``scipy.signal.fftconvolve(dry, ir, axes=0)``).
"""

from __future__ import annotations

import math
import numbers
import os
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fftconv._arrays import finite_float
from fftconv.audio import soundfile
from fftconv.layer import SignalConv1D
from fftconv.planner import Plan

#: Sample rate of everything the demo makes, Hz.
SAMPLERATE = 48000
#: Default length of the test signal, seconds.
DEFAULT_SECONDS = 4.0
#: Allowed lengths of the test signal, seconds (the demo holds it in memory).
MIN_SECONDS, MAX_SECONDS = 0.1, 60.0
#: Length of the room impulse response, seconds.
IR_SECONDS = 1.5
#: Peak level of the written dry and wet signals, dBFS.
PEAK_DBFS = -1.0
#: Ratio of the slowest to the fastest timed call beyond which the times are called noisy.
NOISY = 2.0
#: Largest allowed difference from scipy, relative to ``max|y|`` (float32 FFTs).
TOLERANCE = 1e-5
#: Timed repeat calls of fftconv and of scipy, taking turns (medians are reported).
REPEATS = 5
#: Names of the files written.
DRY_FILE, IR_FILE, WET_FILE, PLOT_FILE = "demo_dry.wav", "demo_ir.wav", "demo_wet.wav", "demo.png"
#: What is printed when matplotlib is missing.
NO_MATPLOTLIB_NOTE = f"{PLOT_FILE} skipped: matplotlib is not installed (pip install matplotlib)"

# Test signal: A minor pentatonic from A3, eighth notes at 120 bpm.
_SCALE_SEMITONES = (0, 3, 5, 7, 10, 12, 15, 17, 19, 22, 24)
_ROOT_HZ = 220.0
_STEP_SECONDS = 0.25
_NOTE_SECONDS = 1.5
# Room: reverberation time (60 dB decay) per octave band, longer at low frequencies.
_BAND_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
_BAND_RT60_SECONDS = (1.6, 1.5, 1.35, 1.2, 1.0, 0.8, 0.6, 0.4)
_TAIL_ONSET_SECONDS = 0.012
_TAIL_LEVEL = 0.03
_REFLECTIONS = 10
_DTYPE = "float32"


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` did.

    Attributes
    ----------
    files : tuple of str
        Paths written, in order: dry signal, impulse response, wet signal and,
        when made, the figure.
    plot_note : str or None
        Why no figure was written (None when it was, or when not asked for).
    plan : Plan
        The planner's choice for the convolution.
    samplerate : int
    dry_frames, ir_frames, wet_frames : int
        Samples per channel of the three signals.
    first_call : float
        Seconds of the first call of the layer, planning included: the cost
        model's choice, the FFT plans (FFTW measures them unless wisdom has
        them) and the kernel's spectra.
    repeat_call : float
        Median seconds of :data:`REPEATS` further calls, which reuse all of that.
    scipy_first_call, scipy_call : float
        Seconds of the first call of :func:`scipy.signal.oaconvolve` on the
        same float32 job, and the median of :data:`REPEATS` further calls
        (made in turn with fftconv's).
    max_abs_diff : float
        ``max|y_fftconv - y_scipy|``.
    max_abs_output : float
        ``max|y_scipy|``, before the wet signal is scaled to :data:`PEAK_DBFS`.
    """

    files: tuple[str, ...]
    plot_note: str | None
    plan: Plan
    samplerate: int
    dry_frames: int
    ir_frames: int
    wet_frames: int
    first_call: float
    repeat_call: float
    scipy_first_call: float
    scipy_call: float
    max_abs_diff: float
    max_abs_output: float

    @property
    def agrees(self) -> bool:
        """Whether fftconv and scipy agree within :data:`TOLERANCE` of ``max|y|``."""
        return self.max_abs_diff <= TOLERANCE * self.max_abs_output


# -- signals -------------------------------------------------------------------


def demo_signal(seconds: float = DEFAULT_SECONDS, samplerate: int = SAMPLERATE,
                seed: int = 0) -> np.ndarray:
    """Make the stereo test signal: a plucked melody, noise bursts and clicks.

    Eighth notes at 120 bpm: a random walk over a pentatonic scale (each note
    a sum of harmonics whose upper partials die first, panned at random), a
    noise burst on beat 2 of every bar and a one-sample click on beat 4 (it
    plays the impulse response itself).  The same `seed` gives the same signal.

    Parameters
    ----------
    seconds : float
        Length, at least one sample.
    samplerate : int
    seed : int
        Non-negative.

    Returns
    -------
    ndarray, shape (round(seconds * samplerate), 2), float64
        Peak at :data:`PEAK_DBFS`.
    """
    rng = np.random.default_rng([seed, 0])
    frames = max(1, round(seconds * samplerate))
    out = np.zeros((frames, 2))
    degree = 4
    for i in range(math.ceil(frames / (_STEP_SECONDS * samplerate))):
        start = round(i * _STEP_SECONDS * samplerate)
        if i % 4 == 2:
            if i % 8 == 2:
                sound, pan = _burst(samplerate, rng), rng.uniform(-0.8, 0.8)
            else:
                sound, pan = np.array([1.0]), 0.0
        elif i == 0 or rng.random() < 0.8:
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(_SCALE_SEMITONES) - 1))
            frequency = _ROOT_HZ * 2.0 ** (_SCALE_SEMITONES[degree] / 12)
            sound, pan = 0.5 * _pluck(frequency, samplerate, rng), rng.uniform(-0.7, 0.7)
        else:
            continue
        stop = min(frames, start + sound.size)
        angle = (pan + 1.0) * math.pi / 4  # constant-power panning
        out[start:stop] += sound[:stop - start, None] * [math.cos(angle), math.sin(angle)]
    out *= _fade(frames, round(0.005 * samplerate))[:, None]  # no click at the cut
    return _scale_peak(out)


def _pluck(frequency: float, samplerate: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked note of :data:`_NOTE_SECONDS`, shape (frames,)."""
    t = np.arange(round(_NOTE_SECONDS * samplerate)) / samplerate
    note = np.zeros(t.size)
    for harmonic in range(1, 9):
        if harmonic * frequency >= 0.45 * samplerate:
            break
        amplitude = rng.uniform(0.6, 1.0) / harmonic
        phase = rng.uniform(0.0, 2.0 * math.pi)
        note += (amplitude * np.sin(2.0 * math.pi * harmonic * frequency * t + phase)
                 * np.exp(-(2.5 + 1.2 * harmonic) * t))
    attack = np.minimum(1.0, t / 0.002)
    return note * attack * _fade(t.size, round(0.1 * samplerate))


def _burst(samplerate: int, rng: np.random.Generator) -> np.ndarray:
    """A 30 ms snare-like noise burst, shape (frames,)."""
    t = np.arange(round(0.03 * samplerate)) / samplerate
    noise = np.diff(rng.standard_normal(t.size + 1))  # first difference: brighter
    return 0.4 * noise * np.exp(-t / 0.008)


def room_impulse_response(seconds: float = IR_SECONDS, samplerate: int = SAMPLERATE,
                          seed: int = 0) -> np.ndarray:
    """Make a synthetic stereo room impulse response.

    A direct path at sample 0, :data:`_REFLECTIONS` early reflections per
    channel between 4 and 45 ms, and from 12 ms an exponentially decaying noise
    tail whose reverberation time falls from 1.6 s at 125 Hz to 0.4 s at 16 kHz
    (octave bands of the noise, each with its own decay).  The channels have
    their own reflections and noise, which makes the reverb wide.  The same
    `seed` gives the same response.

    Parameters
    ----------
    seconds : float
        Length, at least one sample.
    samplerate : int
    seed : int
        Non-negative.

    Returns
    -------
    ndarray, shape (round(seconds * samplerate), 2), float64
        Normalised to unit energy (``sum(h**2) == 1``) in the louder channel,
        so that filtering keeps a broadband signal's level.
    """
    rng = np.random.default_rng([seed, 1])
    frames = max(1, round(seconds * samplerate))
    t = np.arange(frames) / samplerate
    h = np.zeros((frames, 2))
    h[0] = 1.0
    log_frequency = np.log2(np.maximum(np.fft.rfftfreq(frames, 1.0 / samplerate), 1.0))
    log_centres = np.log2(_BAND_CENTRES_HZ)
    # Band weights interpolated linearly in log frequency sum to one at every bin.
    weights = [np.interp(log_frequency, log_centres, row) for row in np.eye(len(log_centres))]
    build_up = np.where(t >= _TAIL_ONSET_SECONDS,
                        1.0 - np.exp(-(t - _TAIL_ONSET_SECONDS) / 0.01), 0.0)
    for channel in range(2):
        delays = rng.uniform(0.004, 0.045, _REFLECTIONS)
        taps = np.minimum(np.round(delays * samplerate).astype(int), frames - 1)
        gains = rng.choice([-1.0, 1.0], _REFLECTIONS) * rng.uniform(0.25, 0.6, _REFLECTIONS)
        np.add.at(h[:, channel], taps, gains * np.sqrt(0.004 / delays))
        spectrum = np.fft.rfft(rng.standard_normal(frames))
        tail = np.zeros(frames)
        for weight, rt60 in zip(weights, _BAND_RT60_SECONDS, strict=True):
            # ln(1000): the amplitude falls by 60 dB in rt60 seconds.
            tail += np.fft.irfft(spectrum * weight, frames) * np.exp(-math.log(1000) * t / rt60)
        h[:, channel] += _TAIL_LEVEL * build_up * tail
    h *= _fade(frames, round(0.1 * samplerate))[:, None]
    return h / np.sqrt(np.sum(h**2, axis=0)).max()


def _fade(frames: int, length: int) -> np.ndarray:
    """Gains, shape (frames,): ones, then a half-cosine fade over the last `length`."""
    gains = np.ones(frames)
    length = min(length, frames)
    if length > 0:
        gains[frames - length:] = 0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, length))
    return gains


def _scale_peak(x: np.ndarray) -> np.ndarray:
    """`x` scaled to a peak of :data:`PEAK_DBFS` (unchanged if silent)."""
    peak = np.max(np.abs(x), initial=0.0)
    return x * (10.0 ** (PEAK_DBFS / 20.0) / peak) if peak > 0 else x


# -- the demo ------------------------------------------------------------------


def run_demo(output_dir: str | os.PathLike = ".", *, seconds: float = DEFAULT_SECONDS,
             plot: bool = True, seed: int = 0,
             log: Callable[[str], Any] | None = print) -> DemoResult:
    """Reverberate the test signal with fftconv, compare with scipy, write the results.

    Writes :data:`DRY_FILE`, :data:`IR_FILE` and :data:`WET_FILE` (FLOAT WAV,
    stereo, :data:`SAMPLERATE` Hz; the wet signal is the full convolution,
    ``N + K - 1`` frames, scaled to a peak of :data:`PEAK_DBFS`) and, with
    `plot` and matplotlib installed, :data:`PLOT_FILE`: the dry and wet
    waveforms, the impulse response and its energy decay, and the planner's
    estimated cost of every candidate with the measured times.  Existing files
    of these names are replaced.

    Parameters
    ----------
    output_dir : path
        Directory for the files; created if missing.
    seconds : float
        Length of the test signal, :data:`MIN_SECONDS` to :data:`MAX_SECONDS`.
    plot : bool
        Write the figure when matplotlib is installed.
    seed : int
        Seed of the test signal and the room (non-negative).
    log : callable or None
        Called with each line of the report (the plan, timings, files); None
        for silence.

    Returns
    -------
    DemoResult

    Raises
    ------
    ValueError
        `output_dir` is not a directory, cannot be created or is not writable;
        `seconds` or `seed` is out of range.
    TypeError
        `seconds` or `seed` is of the wrong type.
    OSError
        A file cannot be written.
    """
    seconds = finite_float(seconds, "seconds")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"`seconds` must be between {MIN_SECONDS:g} and {MAX_SECONDS:g}, "
                         f"got {seconds!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be a non-negative integer, got {seed!r}.")
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    directory = _output_directory(output_dir)
    say = log if log is not None else _silent

    dry = demo_signal(seconds, SAMPLERATE, int(seed)).astype(_DTYPE)
    ir = room_impulse_response(IR_SECONDS, SAMPLERATE, int(seed)).astype(_DTYPE)
    say(f"fftconv demo: a {dry.shape[0] / SAMPLERATE:.2f} s stereo test signal (plucks, "
        f"noise bursts, clicks) through a {ir.shape[0] / SAMPLERATE:.2f} s synthetic stereo "
        f"room, {SAMPLERATE} Hz, seed {seed}")
    wet, measured = _convolve(dry, ir, say)

    paths = [directory / name for name in (DRY_FILE, IR_FILE, WET_FILE)]
    peak = measured["max_abs_output"]
    wet *= 10.0 ** (PEAK_DBFS / 20.0) / peak if peak > 0 else 1.0
    for path, data in zip(paths, (dry, ir, wet), strict=True):
        _write_wav(path, data)
    rows = [(paths[0], f"dry signal, {_describe(dry)}"),
            (paths[1], f"room impulse response, {_describe(ir)}"),
            (paths[2], f"wet signal (dry convolved with the IR, tail kept), {_describe(wet)}, "
                       f"peak {PEAK_DBFS:+.1f} dBFS")]
    plot_note = None
    if plot:
        figure = _figure_class()
        if figure is None:
            plot_note = NO_MATPLOTLIB_NOTE
        else:
            paths.append(directory / PLOT_FILE)
            _plot(figure, paths[-1], dry, wet, ir, measured["plan"], measured["repeat_call"],
                  measured["scipy_call"])
            rows.append((paths[-1], "waveforms, the IR's energy decay, the planner's "
                                    "candidates"))

    say("")
    say("wrote:")
    width = max(len(str(path)) for path, _ in rows)
    for path, what in rows:
        say(f"  {str(path):<{width}}  {what}")
    if plot_note is not None:
        say(plot_note)
    if measured["plan"].backend == "pyfftw":
        from fftconv.backends.pyfftw_backend import wisdom_path

        say(f"FFTW plans are kept as wisdom in {wisdom_path()} (saved at exit), so later "
            f"runs plan faster.")
    say("")
    say("next: listen to the two files, then filter your own audio, e.g.")
    say(f"  fftconv filter {shlex.quote(str(paths[0]))} {shlex.quote(str(paths[1]))} "
        f"mixed.wav --length full --mix 0.4")
    return DemoResult(files=tuple(str(p) for p in paths), plot_note=plot_note,
                      samplerate=SAMPLERATE, dry_frames=dry.shape[0], ir_frames=ir.shape[0],
                      wet_frames=wet.shape[0], **measured)


def _convolve(dry: np.ndarray, ir: np.ndarray, say: Callable[[str], Any],
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """Convolve with fftconv and with scipy, timed; report the plan and the times.

    Parameters
    ----------
    dry : ndarray, shape (N, 2), float32
    ir : ndarray, shape (K, 2), float32

    Returns
    -------
    wet : ndarray, shape (N + K - 1, 2), float32
        fftconv's output.
    measured : dict
        The :class:`DemoResult` fields `plan`, `first_call`, `repeat_call`,
        `scipy_first_call`, `scipy_call`, `max_abs_diff` and `max_abs_output`.
    """
    import scipy.signal

    n, k = dry.shape[0], ir.shape[0]
    padded = np.pad(dry, ((k - 1, k - 1), (0, 0)))[None]  # (1, N + 2K - 2, 2)
    say(f"job: full convolution (the reverb tail kept), each channel with its own IR: "
        f"{n} + {k} - 1 = {n + k - 1} frames out, {_DTYPE}")
    say(f"  SignalConv1D(filters=1, kernel_support={k}, channel_separable=True, "
        f"padding='valid'), kernel {ir[:, :, None].shape}, on the input zero-padded by "
        f"K-1 frames at both ends: {padded.shape}")
    layer = SignalConv1D(1, k, channel_separable=True, padding="valid",
                         kernel_parameter=ir[:, :, None], dtype=_DTYPE)
    say("filtering (the first call plans) ...")
    started = time.perf_counter()
    wet = layer(padded)[0]
    first_call = time.perf_counter() - started
    plan = layer.engine.plan_for((1, 2, padded.shape[1]), layer.dtype, time_major=True)
    started = time.perf_counter()
    expected = scipy.signal.oaconvolve(dry, ir, axes=0)
    scipy_first_call = time.perf_counter() - started
    # Taking turns call by call exposes both to the same load from other processes.
    repeats, scipy_repeats = [], []
    for _ in range(REPEATS):
        repeats.append(_timed(lambda: layer(padded)))
        scipy_repeats.append(_timed(lambda: scipy.signal.oaconvolve(dry, ir, axes=0)))
    repeat_call, scipy_call = statistics.median(repeats), statistics.median(scipy_repeats)
    max_abs_diff = float(np.max(np.abs(wet - expected)))
    max_abs_output = float(np.max(np.abs(expected)))

    planning = "the cost model's choice"
    if plan.path == "fft":
        planning += (", FFT plans (from FFTW wisdom, else FFTW_ESTIMATE: measured plans "
                     "come once they recur)" if plan.backend == "pyfftw" else ", FFT set-up")
        planning += ", the kernel's spectra"
    say("")
    say(str(plan))
    say("")
    say("times:")
    say(f"  fftconv, first call       {_seconds(first_call)}  includes planning: {planning}")
    say(f"  fftconv, repeat call      {_seconds(repeat_call)}  plans and kernel reused; "
        f"median of {REPEATS}, {plan.threads} FFT thread{'s' if plan.threads > 1 else ''}")
    say(f"  scipy.signal.oaconvolve   {_seconds(scipy_call)}  median of {REPEATS}, in turn with "
        f"fftconv's; 1 thread; first call {_seconds(scipy_first_call).strip()}")
    if repeat_call > 0:
        say(f"  oaconvolve / fftconv repeat call: {scipy_call / repeat_call:.1f}x")
    if any(max(times) > NOISY * min(times) for times in (repeats, scipy_repeats)):
        say(f"  (noisy times: the repeat calls took {_span(repeats)} (fftconv) and "
            f"{_span(scipy_repeats)} (oaconvolve); is the machine busy?)")
    relative = max_abs_diff / max_abs_output if max_abs_output > 0 else 0.0
    verdict = "same output" if max_abs_diff <= TOLERANCE * max_abs_output else "DIFFERENT"
    say(f"  max |fftconv - oaconvolve| = {max_abs_diff:.2e} with max|y| = "
        f"{max_abs_output:.3g} ({relative:.1e} of it, tolerance {TOLERANCE:g}): {verdict}")
    return wet, {"plan": plan, "first_call": first_call, "repeat_call": repeat_call,
                 "scipy_first_call": scipy_first_call, "scipy_call": scipy_call,
                 "max_abs_diff": max_abs_diff, "max_abs_output": max_abs_output}


def _silent(line: str) -> None:
    """A `log` that drops the line."""


def _output_directory(output_dir: Any) -> Path:
    """`output_dir` as a writable directory, created if missing."""
    try:
        path = Path(output_dir)
    except TypeError:
        raise TypeError(f"`output_dir` must be a path, got {output_dir!r}.") from None
    if path.exists() and not path.is_dir():
        raise ValueError(f"`output_dir` {str(path)!r} is a file; give a directory (it is "
                         f"created if missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"`output_dir` {str(path)!r} cannot be created: "
                         f"{err.strerror or err}.") from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"`output_dir` {str(path)!r} is not writable: "
                         f"{err.strerror or err}.") from None
    return path


def _write_wav(path: Path, data: np.ndarray) -> None:
    try:
        soundfile.write(path, data, SAMPLERATE, subtype="FLOAT")
    except (soundfile.SoundFileError, OSError) as err:
        text = getattr(err, "error_string", None) or str(err)
        raise OSError(f"cannot write {str(path)!r}: {' '.join(text.split())}") from None


def _timed(call: Callable[[], Any]) -> float:
    """Seconds that `call()` takes."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _seconds(value: float) -> str:
    return f"{value:7.3f} s" if value >= 0.1 else f"{value * 1e3:7.2f} ms"


def _span(times: list[float]) -> str:
    return f"{_seconds(min(times)).strip()} to {_seconds(max(times)).strip()}"


def _describe(x: np.ndarray) -> str:
    return f"{x.shape[0] / SAMPLERATE:.2f} s, {x.shape[1]} channels, {SAMPLERATE} Hz, FLOAT"


# -- figure --------------------------------------------------------------------


def _figure_class() -> Any:
    """matplotlib's ``Figure`` (no pyplot, so no GUI backend), or None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _envelope(x: np.ndarray, bins: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (s), minima and maxima of `x` (frames,) over about `bins` equal spans."""
    step = max(1, -(-x.size // bins))
    padded = np.pad(x, (0, -x.size % step), mode="edge").reshape(-1, step)
    times = np.arange(padded.shape[0]) * step / SAMPLERATE
    return times, padded.min(axis=1), padded.max(axis=1)


def _energy_decay_db(h: np.ndarray) -> np.ndarray:
    """Schroeder backward integral of `h` (frames,), in dB relative to the total energy."""
    energy = np.cumsum(h[::-1].astype(np.float64) ** 2)[::-1]
    return 10.0 * np.log10(np.maximum(energy / energy[0], 1e-12))


def _band(h: np.ndarray, kind: str, cutoff: float) -> np.ndarray:
    """`h` (frames,) through a 4th-order Butterworth filter, `kind` 'lowpass' or 'highpass'.

    A causal filter: a zero-phase one would smear the direct path's energy to
    before it and flatten the start of the decay curve.
    """
    import scipy.signal

    sos = scipy.signal.butter(4, cutoff, kind, fs=SAMPLERATE, output="sos")
    return scipy.signal.sosfilt(sos, h.astype(np.float64))


def _plot(figure_class: Any, path: Path, dry: np.ndarray, wet: np.ndarray, ir: np.ndarray,
          plan: Plan, repeat_call: float, scipy_call: float) -> None:
    """Write the figure to `path` (PNG)."""
    fig = figure_class(figsize=(11, 11), layout="constrained")
    grid = fig.add_gridspec(4, 2, height_ratios=(1, 1, 1, 1.1))
    duration = wet.shape[0] / SAMPLERATE
    for row, (signal, title) in enumerate([(dry, "dry signal (demo_dry.wav)"),
                                           (wet, "wet signal (demo_wet.wav)")]):
        ax = fig.add_subplot(grid[row, :])
        for channel, (name, colour) in enumerate([("left", "tab:blue"),
                                                  ("right", "tab:orange")]):
            times, low, high = _envelope(signal[:, channel])
            ax.fill_between(times, low, high, color=colour, alpha=0.6, linewidth=0,
                            label=name)
        ax.set(title=title, xlim=(0, duration), ylim=(-1, 1), xlabel="time (s)",
               ylabel="amplitude")
        ax.legend(loc="upper right")

    ax = fig.add_subplot(grid[2, 0])
    t = np.arange(ir.shape[0]) / SAMPLERATE
    for channel, (name, colour) in enumerate([("left", "tab:blue"), ("right", "tab:orange")]):
        ax.plot(t * 1e3, ir[:, channel], color=colour, linewidth=0.6, alpha=0.8, label=name)
    ax.set(title="room impulse response (demo_ir.wav), first 100 ms", xlim=(-2, 100),
           xlabel="time (ms)", ylabel="amplitude")
    ax.legend(loc="upper right")

    ax = fig.add_subplot(grid[2, 1])
    curves = [(ir[:, 0], "left, broadband", "tab:blue", "-"),
              (ir[:, 1], "right, broadband", "tab:orange", "-"),
              (_band(ir[:, 0], "lowpass", 500), "left, below 500 Hz", "tab:green", "--"),
              (_band(ir[:, 0], "highpass", 4000), "left, above 4 kHz", "tab:red", "--")]
    for h, name, colour, style in curves:
        ax.plot(t, _energy_decay_db(h), color=colour, linestyle=style, label=name)
    ax.axhline(-60, color="grey", linewidth=0.8, linestyle=":")
    ax.set(title="energy decay of the impulse response",
           xlim=(0, t[-1]), ylim=(-90, 3),
           xlabel="time (s)", ylabel="remaining energy (dB)")
    ax.legend(loc="upper right")

    ax = fig.add_subplot(grid[3, :])
    labels = [("direct" if c.path == "direct" else f"fft N={c.n_fft}") for c in plan.candidates]
    costs = [c.cost_ns / 1e6 for c in plan.candidates]
    colours = ["tab:green" if i == 0 else "tab:gray" for i in range(len(costs))]
    positions = np.arange(len(costs))
    ax.barh(positions, costs, color=colours)
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()  # the chosen candidate on top
    ax.set_xscale("log")
    for y, cost in zip(positions, costs, strict=True):
        ax.text(cost, y, f" {cost:.3g} ms", va="center", fontsize=9)
    ax.axvline(repeat_call * 1e3, color="tab:green", linestyle="--",
               label=f"fftconv measured (repeat call): {repeat_call * 1e3:.3g} ms")
    ax.axvline(scipy_call * 1e3, color="tab:purple", linestyle=":",
               label=f"scipy.signal.oaconvolve measured: {scipy_call * 1e3:.3g} ms")
    low = min(costs + [repeat_call * 1e3, scipy_call * 1e3])
    high = max(costs + [repeat_call * 1e3, scipy_call * 1e3])
    ax.set_xlim(low / 2, high * 8)  # room for the labels
    ax.set(title=f"planner: estimated cost of each candidate (chosen, in green: {labels[0]})",
           xlabel="time (ms, log scale)")
    ax.legend(loc="upper right")
    fig.suptitle(f"fftconv demo: {dry.shape[0] / SAMPLERATE:.2f} s through a "
                 f"{ir.shape[0] / SAMPLERATE:.2f} s synthetic room, {SAMPLERATE} Hz")
    fig.savefig(path, dpi=100)
