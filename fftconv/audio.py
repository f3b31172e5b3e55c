"""Filter audio files with an impulse response, in bounded memory.

:func:`filter_file` reads the input in blocks through `soundfile`, convolves
every block with the impulse response (IR) through
:class:`fftconv.streaming.StreamingConv1D` and writes the result block by block
to a temporary file next to the output, which is renamed to the output's name
only when everything has been written.  Memory use is bounded by the block size
and the IR, not by the length of the input.

Channel rules (``C`` input channels; the output always has ``C`` channels):

* a mono IR filters every input channel;
* an IR with ``C`` channels filters input channel ``c`` with IR channel ``c``;
* a 4-channel IR on a stereo input is *true stereo*, its channels in the order
  ``LL, LR, RL, RR`` (``XY`` = from input ``X`` to output ``Y``)::

      out_L = in_L * LL + in_R * RL
      out_R = in_L * LR + in_R * RR

  (``*`` is convolution);
* anything else is an :class:`AudioError`.

Non-finite samples (NaN, +-Inf) in the input, the IR or the result are an
:class:`AudioError` by default; ``nonfinite='pass'`` writes them through, with a
:class:`NonFiniteWarning`, to subtypes that can hold them (``FLOAT``,
``DOUBLE``) only.  The command line turns SIGTERM and SIGHUP into
:class:`Terminated` with :func:`terminate_on_signals`, so that the temporary
file is removed as on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import errno
import math
import numbers
import os
import secrets
import signal
import stat
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fftconv._arrays import finite_float
from fftconv.engine import check_backend
from fftconv.resample import resample_poly


class _SoundFile:
    """The `soundfile` module, imported on first use: ``import fftconv`` does not need it."""

    def __getattr__(self, name: str) -> Any:
        try:
            import soundfile
        except ImportError as err:
            raise ImportError(f"reading and writing audio files needs the soundfile package, "
                              f"which could not be imported ({err}): `pip install soundfile`."
                              ) from err
        return getattr(soundfile, name)


soundfile = _SoundFile()

LENGTHS = ("same", "full")
METHODS = ("auto", "uniform", "non-uniform")
#: What to do with non-finite (NaN, infinite) samples: raise, or write them through.
NONFINITE = ("error", "pass")
#: Output subtypes that store floating-point samples (nothing clips).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS")
#: Output subtypes that store NaN and infinities as they are.
NONFINITE_SUBTYPES = ("FLOAT", "DOUBLE")
#: File name extensions that name a `soundfile` format other than by its own name.
_FORMAT_ALIASES = {"AIF": "AIFF"}
#: Integer subtypes to use, best first, for formats that cannot store floats.
_PCM_PREFERENCE = ("PCM_24", "PCM_32", "PCM_16")
#: Computation dtype of the convolution (audio needs no more; it halves memory).
_DTYPE = "float32"
#: Bounds of the streaming frame length (see `_partition`).
_MIN_PARTITION, _MAX_PARTITION = 1 << 14, 1 << 17


class AudioError(ValueError):
    """An audio file cannot be read or written, or does not fit the others.

    The message is one line and names the file.
    """


class ClippingWarning(UserWarning):
    """Samples outside [-1, 1] were clipped when written to an integer subtype."""


class NonFiniteWarning(UserWarning):
    """Non-finite samples (NaN, +-Inf) were written through (``nonfinite='pass'``)."""


class Terminated(BaseException):
    """The process received a termination signal (see :func:`terminate_on_signals`).

    Like :class:`KeyboardInterrupt` it is not an :class:`Exception`, so that only
    clean-up code (``finally``, ``except BaseException``) meets it on its way out.

    Attributes
    ----------
    signum : int
        The signal's number, e.g. ``signal.SIGTERM``; a command line exits with
        status ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True)
class FilterResult:
    """What :func:`filter_file` wrote.

    Attributes
    ----------
    output : str
        The output file.
    frames : int
        Samples per channel written.
    channels, samplerate : int
    subtype : str
        The output's `soundfile` subtype, e.g. ``'FLOAT'`` or ``'PCM_24'``.
    peak : float
        Largest absolute sample value, before any clipping; NaN if a sample
        written is NaN, inf if one is infinite (``nonfinite='pass'`` only).
    clipped : int
        Samples that were outside [-1, 1] and were clipped (integer subtypes only).
    passes : int
        Passes over the input (2 with `normalize`).
    elapsed : float
        Wall-clock seconds for the whole call.
    nonfinite : int
        Non-finite samples (NaN, +-Inf) written; 0 unless ``nonfinite='pass'``.
    """

    output: str
    frames: int
    channels: int
    samplerate: int
    subtype: str
    peak: float
    clipped: int
    passes: int
    elapsed: float
    nonfinite: int = 0

    @property
    def duration(self) -> float:
        """Seconds of audio written."""
        return self.frames / self.samplerate

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio written per second of wall-clock time (all passes included)."""
        return self.duration / self.elapsed if self.elapsed > 0 else math.inf


def filter_file(
    input: str | os.PathLike,
    ir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    length: str = "same",
    mix: float = 1.0,
    gain_db: float = 0.0,
    normalize: float | None = None,
    subtype: str | None = None,
    block_size: int = 65536,
    backend: str = "auto",
    method: str = "auto",
    resample: bool = False,
    progress: bool = False,
    nonfinite: str = "error",
    force: bool = False,
) -> FilterResult:
    """Convolve the audio file `input` with the impulse response file `ir`.

    Parameters
    ----------
    input : path
        Audio file in any format `soundfile` reads (WAV, FLAC, OGG, AIFF, ...),
        ``N`` frames of ``C`` channels; read in blocks.
    ir : path
        Impulse response file, ``K`` frames of 1, ``C`` or (stereo input only) 4
        channels; read whole.  See the module docstring for the channel rules.
    output : path
        File to write; its extension picks the format (``.wav``, ``.flac``,
        ``.ogg``, ``.aiff``, ...).  It is written under a temporary hidden name
        (``.NAME.XXXXXXXX.part``) in the same directory, renamed to `output`
        once complete and removed on any error or interruption, so an existing
        file is replaced only by a complete new one (a symbolic link is
        replaced by the file, not written through).
    length : {'same', 'full'}
        ``'same'``: ``N`` frames, the first ``N`` of the full convolution, so the
        IR's first sample is aligned with the input's (no delay, the reverb tail
        past the end is cut).  ``'full'``: ``N + K - 1`` frames, the tail kept.
        Either way frame ``n`` is ``scipy.signal.fftconvolve(x, h)[n]`` per channel.
    mix : float in [0, 1]
        Wet/dry balance: ``mix * wet + (1 - mix) * dry``, the dry input padded
        with zeros past its end for ``'full'``.
    gain_db : float
        Gain applied to the mixed signal, in dB.
    normalize : float or None
        Scale the mixed signal so that its peak is this level in dBFS (e.g.
        ``-1.0``).  This takes two passes over the input: the first computes the
        peak without writing anything.  Cannot be combined with `gain_db`.  A
        signal with non-finite samples has no peak: with ``nonfinite='pass'``
        it is an :class:`AudioError`, raised before anything is written.
    subtype : str or None
        Output sample format (a `soundfile` subtype, e.g. ``'FLOAT'``,
        ``'PCM_16'``, ``'PCM_24'``).  None means ``'FLOAT'``, so nothing clips,
        where the format stores floats, else its best integer subtype
        (``PCM_24`` for FLAC) or its own default (``VORBIS`` for OGG).
        Samples outside [-1, 1] written to an integer subtype are clipped and a
        :class:`ClippingWarning` says how many.
    block_size : int
        Frames read, filtered and written at a time.
    backend : {'auto', 'numpy', 'pyfftw', 'cupy'}
        Backend of the convolution; 'cupy' runs the stream on the current GPU
        (blocks are read and written on the host).
    method : {'auto', 'uniform', 'non-uniform'}
        Partitioning of the IR in the streaming convolution
        (:class:`~fftconv.streaming.StreamingConv1D`), whose frames are long
        (an eighth of the IR, 16384 to 131072 samples): ``'uniform'`` cuts the IR
        into partitions of one frame, ``'non-uniform'`` lets the stream's cost
        model choose growing partition sizes.  ``'auto'`` is ``'uniform'``, the
        faster for files in measurements (a file has no latency to keep low).
    resample : bool
        If the IR's sample rate differs from the input's, resample the IR to the
        input's rate with :func:`fftconv.resample.resample_poly` (and scale it by
        ``ir_rate / input_rate`` so that its frequency response is kept) instead
        of raising :class:`AudioError`.
    progress : bool
        Show a progress bar on stderr with the audio seconds processed and the
        real-time factor.
    nonfinite : {'error', 'pass'}
        What to do with non-finite samples (NaN, +-Inf) in the input, the IR or
        the result (where a finite input can overflow float32, e.g. with a huge
        gain).  ``'error'``: raise :class:`AudioError` naming the file and the
        first bad frame and channel (counting from 0); nothing is written.
        ``'pass'``: keep them and issue one :class:`NonFiniteWarning` that counts
        them.  A NaN or Inf input sample spoils the output of the channels it
        feeds from the start of the stream frame that holds it (16384 to 131072
        samples: the convolution is computed by FFT) to past the IR's length
        after it.
        Only the ``FLOAT`` and ``DOUBLE`` subtypes hold such samples: writing
        one to any other subtype (integer PCM, where it would turn into full
        scale, or a lossy codec) is an :class:`AudioError` even with
        ``'pass'``, raised when the first one reaches the output.
    force : bool
        Allow `output` to be the same file as `input` or `ir` (the same path,
        or another name of it: a hard or symbolic link), which is otherwise an
        :class:`AudioError`.  The input is then read in full before the new
        file replaces it.

    Returns
    -------
    FilterResult

    Warns
    -----
    ClippingWarning
        Samples outside [-1, 1] were clipped to fit an integer subtype.
    NonFiniteWarning
        With ``nonfinite='pass'``, non-finite samples were found and written.

    Raises
    ------
    AudioError
        A file is missing, unreadable (the message says why, e.g. permission
        denied), a directory, empty or of an unsupported format; the output is
        the input or the IR without `force`; the channel counts do not fit; the
        sample rates differ without `resample`; a sample is not finite (see
        `nonfinite`).  No output or temporary file is left behind.
    ValueError, TypeError
        An option has a bad value or type.
    """
    started = time.perf_counter()
    length = _choice(length, "length", LENGTHS)
    mix = _in_range(mix, "mix", 0.0, 1.0)
    gain_db = finite_float(gain_db, "gain_db")
    if normalize is not None:
        normalize = finite_float(normalize, "normalize")
        if gain_db != 0.0:
            raise ValueError("`gain_db` and `normalize` cannot be combined: normalize sets "
                             f"the gain, got gain_db={gain_db!r}, normalize={normalize!r}.")
    block_size = _positive_int(block_size, "block_size")
    backend = check_backend(backend)
    method = _choice(method, "method", METHODS)
    nonfinite = _choice(nonfinite, "nonfinite", NONFINITE)
    if not isinstance(force, bool):
        raise TypeError(f"`force` must be True or False, got {force!r}.")
    output = os.fspath(output)
    file_format, subtype = _output_format(output, subtype)
    _check_not_an_input(output, {"input": input, "IR": ir}, force)

    # Overflow and NaN arithmetic are found and reported by the checks below.
    with np.errstate(over="ignore", invalid="ignore"), _open_input(input) as source:
        frames, channels, rate = source.frames, source.channels, source.samplerate
        ir_data, ir_check = _read_ir(ir, rate, resample, nonfinite)
        kernel, separable = _kernel(ir_data, channels, ir)
        out_frames = frames + (kernel.shape[0] - 1 if length == "full" else 0)
        input_check = _NonFinite(f"input file {source.name!r}")

        def blocks(label: str) -> contextlib.closing[Iterator[np.ndarray]]:
            nonlocal input_check
            source.seek(0)
            input_check = _NonFinite(input_check.what)
            stream = _stream(kernel, separable, block_size, backend, method)
            # Closed on the way out of an error, so that the progress bar is cleared
            # before the message is printed, not when the generator is collected.
            return contextlib.closing(_mixed(
                source, stream, frames, out_frames, block_size, mix, input_check, nonfinite,
                _Progress(label, frames / rate, rate, progress)))

        passes = 1
        scale = 10.0 ** (gain_db / 20.0)
        if normalize is not None:
            passes = 2
            with blocks("pass 1/2, peak") as first:
                peak = _peak(first, output, nonfinite)
            if peak > 0.0:
                scale = 10.0 ** (normalize / 20.0) / peak
            else:
                warnings.warn(f"the filtered signal is silent; {output!r} is not normalised.",
                              UserWarning, stacklevel=2)
        output_check = _NonFinite("the filtered signal")
        with blocks("filter" if passes == 1 else "pass 2/2, write") as mixed:
            peak, clipped = _write(mixed, output, file_format, subtype, rate, channels, scale,
                                   output_check, nonfinite)
    if clipped:
        warnings.warn(
            f"{clipped} samples of {output!r} exceeded [-1, 1] (peak "
            f"{_dbfs(peak):+.1f} dBFS) and were clipped to fit {subtype}; use a float "
            f"subtype, a negative gain or normalize.", ClippingWarning, stacklevel=2)
    found = [check.describe() for check in (input_check, ir_check, output_check) if check.count]
    if found:
        warnings.warn(f"{'; '.join(found)}; written to {output!r} as they are.",
                      NonFiniteWarning, stacklevel=2)
    return FilterResult(output=output, frames=out_frames, channels=channels, samplerate=rate,
                        subtype=subtype, peak=peak, clipped=clipped, passes=passes,
                        elapsed=time.perf_counter() - started, nonfinite=output_check.count)


@contextlib.contextmanager
def terminate_on_signals(signums: Sequence[int] | None = None) -> Iterator[None]:
    """Raise :class:`Terminated` in the main thread when one of `signums` arrives.

    For a command line around :func:`filter_file`: the exception unwinds like
    Ctrl-C's :class:`KeyboardInterrupt`, so the temporary output file is
    removed instead of being left behind by the default action (the process
    killed on the spot).  Only the first signal raises; later ones are ignored
    while the clean-up runs.  The previous handlers are restored on exit.

    Parameters
    ----------
    signums : sequence of int or None
        Signals to handle; None means SIGTERM and SIGHUP (where the platform
        has them).  A signal whose disposition is "ignore" (SIGHUP under
        ``nohup``) stays ignored.

    Notes
    -----
    Python handles signals in the main thread only; in any other thread this
    does nothing.
    """
    if signums is None:
        signums = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                   if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not received:
            received.append(signum)
            raise Terminated(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in signums:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            # None: a handler installed outside Python, which cannot be put back.
            signal.signal(signum, signal.SIG_DFL if old is None else old)


# -- files -------------------------------------------------------------------


def _output_format(output: str, subtype: str | None) -> tuple[str, str]:
    """The `soundfile` format named by `output`'s extension and the subtype to write."""
    if os.path.isdir(output):
        raise AudioError(f"output {output!r} is a directory; give the name of the file to "
                         f"write in it, e.g. {os.path.join(output, 'out.wav')!r}.")
    _check_directory(output)
    extension = Path(output).suffix[1:].upper()
    file_format = _FORMAT_ALIASES.get(extension, extension)
    formats = soundfile.available_formats()
    if file_format not in formats or file_format == "RAW":
        known = ", ".join(sorted({f".{name.lower()}" for name in formats} - {".raw"}))
        raise AudioError(f"unsupported output file extension {Path(output).suffix!r} for "
                         f"{output!r}; use one of {known}.")
    allowed = soundfile.available_subtypes(file_format)
    if subtype is None:
        if soundfile.check_format(file_format, "FLOAT"):
            return file_format, "FLOAT"
        for candidate in _PCM_PREFERENCE:
            if candidate in allowed:
                return file_format, candidate
        return file_format, soundfile.default_subtype(file_format)
    if not isinstance(subtype, str):
        raise TypeError(f"`subtype` must be None or a string, got {subtype!r}.")
    if not soundfile.check_format(file_format, subtype.upper()):
        raise AudioError(f"subtype {subtype!r} is not available for {file_format} files; "
                         f"use one of {', '.join(sorted(allowed))}.")
    return file_format, subtype.upper()


def _check_directory(output: str) -> None:
    """Raise AudioError, saying why, if `output`'s directory cannot hold it."""
    directory = os.path.dirname(output) or os.curdir
    try:
        if stat.S_ISDIR(os.stat(directory).st_mode):
            return
        reason = f"{directory!r} is not a directory"
    except FileNotFoundError:
        raise AudioError(f"output directory {directory!r} does not exist.") from None
    except OSError as err:
        reason = _reason(err, directory)
    raise AudioError(f"cannot write output file {output!r}: {reason}.")


def _check_not_an_input(output: str, inputs: dict[str, Any], force: bool) -> None:
    """Raise AudioError if `output` is one of the `inputs` (role: path), unless `force`."""
    for role, path in inputs.items():
        path = os.fspath(path)
        try:
            same = os.path.samefile(output, path)
        except OSError:  # one of them does not exist (yet), or is reported later
            continue
        if same and not force:
            alias = "" if os.path.abspath(output) == os.path.abspath(path) else (
                ", under another name (a hard or symbolic link)")
            raise AudioError(f"output file {output!r} is the {role} file {path!r}{alias}; "
                             f"writing it would replace the {role}: choose another output "
                             f"file, or replace the {role} with force=True (--force).")


def _reason(err: OSError, path: str) -> str:
    """Why `err` occurred on `path`, in words: 'permission denied', ..."""
    if err.errno == errno.ENOTDIR:
        # Name the culprit: the first ancestor that exists but is not a directory.
        for parent in Path(path).parents:
            if os.path.lexists(parent) and not parent.is_dir():
                return f"{str(parent)!r} is not a directory"
    if err.errno:
        text = os.strerror(err.errno)
        return text[:1].lower() + text[1:]
    return _error_text(err)


def _check_readable(path: str, role: str) -> None:
    """Raise AudioError, saying why, unless `path` is a file that this process can open."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise AudioError(f"{role} file {path!r} is a directory.")
        if stat.S_ISREG(mode):  # not a pipe or device, where opening has side effects
            with open(path, "rb"):
                pass
    except FileNotFoundError:
        raise AudioError(f"{role} file {path!r} does not exist.") from None
    except OSError as err:
        # libsndfile would only say "System error." for these.
        raise AudioError(f"cannot open {role} file {path!r}: {_reason(err, path)}.") from None


def _error_text(err: Exception) -> str:
    text = getattr(err, "error_string", None) or str(err)
    return " ".join(text.split())  # one line


def _read_error(err: Exception, path: str, role: str) -> AudioError:
    """The AudioError for `err`, raised by `soundfile` reading the `role` file `path`."""
    if isinstance(err, OSError) and err.errno:
        return AudioError(f"cannot open {role} file {path!r}: {_reason(err, path)}.")
    return AudioError(f"cannot read {role} file {path!r}: {_error_text(err)}")


def _open_input(path: str | os.PathLike) -> soundfile.SoundFile:
    path = os.fspath(path)
    _check_readable(path, "input")
    try:
        source = soundfile.SoundFile(path)
    except (soundfile.SoundFileError, OSError) as err:
        raise _read_error(err, path, "input") from None
    if source.frames <= 0:
        source.close()
        raise AudioError(f"input file {path!r} has no samples.")
    return source


def _read_ir(path: str | os.PathLike, rate: int, resample: bool,
             nonfinite: str) -> tuple[np.ndarray, _NonFinite]:
    """The IR at the input's sample `rate`, shape (K, channels), float64, and its census."""
    path = os.fspath(path)
    _check_readable(path, "IR")
    try:
        ir, ir_rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (soundfile.SoundFileError, OSError) as err:
        raise _read_error(err, path, "IR") from None
    if ir.shape[0] == 0:
        raise AudioError(f"IR file {path!r} has no samples.")
    census = _NonFinite(f"IR file {path!r}")
    if census.check(ir) and nonfinite == "error":
        raise AudioError(census.error())
    if ir_rate != rate:
        if not resample:
            raise AudioError(f"IR file {path!r} is at {ir_rate} Hz but the input is at "
                             f"{rate} Hz; resample it (resample=True, --resample) or use "
                             f"matching files.")
        # A discrete IR sums to its DC gain; resampling by r multiplies that sum
        # by r, so scale by 1/r to keep the filter's frequency response.
        ir = resample_poly(ir, rate, ir_rate, axis=0) * (ir_rate / rate)
    return ir, census


def _kernel(ir: np.ndarray, channels: int, path: Any) -> tuple[np.ndarray, bool]:
    """The streaming kernel (K, C_in, filters) and whether it is channel separable."""
    k, n = ir.shape
    if n == 1:
        return np.repeat(ir[:, :, None], channels, axis=1), True
    if n == channels:
        return ir[:, :, None], True
    if n == 4 and channels == 2:
        # kernel[:, c, f] is input c to output f: LL, LR, RL, RR in file order.
        return ir.reshape(k, 2, 2), False
    if channels == 1:
        fits = "the input is mono; use a mono IR"
    elif channels == 2:
        fits = "use an IR with 1, 2 or 4 (true stereo) channels"
    else:
        fits = f"use an IR with 1 or {channels} channels"
    raise AudioError(f"IR file {os.fspath(path)!r} has {n} channels, which does not fit a "
                     f"{channels}-channel input; {fits}.")


class _NonFinite:
    """A census of the non-finite samples of a signal, taken block by block.

    Parameters
    ----------
    what : str
        The signal, for messages: ``"input file 'in.wav'"``.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        #: (frame, channel, value) of the first non-finite sample, counting from 0.
        self.first: tuple[int, int, float] | None = None
        self._frames = 0

    def check(self, block: np.ndarray) -> int:
        """Count the non-finite samples of the next `block`, shape (frames, channels)."""
        finite = np.isfinite(block)
        bad = 0
        if not finite.all():
            bad = block.size - int(np.count_nonzero(finite))
            if self.first is None:
                frame, channel = np.unravel_index(int(np.argmin(finite)), finite.shape)
                self.first = (self._frames + int(frame), int(channel),
                              float(block[frame, channel]))
            self.count += bad
        self._frames += block.shape[0]
        return bad

    def where(self) -> str:
        assert self.first is not None
        frame, channel, value = self.first
        return f"{value} at frame {frame}, channel {channel} (counting from 0)"

    def describe(self) -> str:
        """One clause: how many non-finite samples, and where the first is."""
        plural = "" if self.count == 1 else "s"
        return (f"{self.what} has {self.count} non-finite sample{plural} (NaN or Inf), "
                f"the first: {self.where()}")

    def error(self) -> str:
        """The message of an AudioError under ``nonfinite='error'``."""
        return (f"{self.what} has a non-finite sample: {self.where()}; fix it, or pass "
                f"such samples through with nonfinite='pass' (--nonfinite pass).")


def _overflow(check: _NonFinite) -> AudioError:
    """The error for a non-finite output of finite data (input and IR were checked)."""
    return AudioError(f"{check.what} has a non-finite sample although the input and IR are "
                      f"finite: {check.where()}; the float32 range overflowed, so lower the "
                      f"gain, or pass it through with nonfinite='pass' (--nonfinite pass).")


def _peak(blocks: Iterator[np.ndarray], output: str, nonfinite: str) -> float:
    """The largest absolute value of `blocks` (the first pass of `normalize`)."""
    check = _NonFinite("the filtered signal")
    peak = 0.0
    for block in blocks:
        if check.check(block):
            if nonfinite == "error":
                raise _overflow(check)
            raise AudioError(f"cannot normalize {output!r}: the filtered signal has non-finite "
                             f"samples (NaN or Inf), the first: {check.where()}, so it has no "
                             f"peak; use gain_db (--gain-db) instead of normalize.")
        peak = max(peak, float(np.max(np.abs(block), initial=0.0)))
    return peak


def _temporary_name(output: str) -> str:
    """A unique hidden name in the output's directory (so the final rename is atomic)."""
    path = Path(output)
    return str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.part"))


def _write(blocks: Iterator[np.ndarray], output: str, file_format: str, subtype: str,
           rate: int, channels: int, scale: float, check: _NonFinite,
           nonfinite: str) -> tuple[float, int]:
    """Write scaled `blocks` to `output` via a temporary file; return (peak, clipped).

    `check` counts the non-finite samples written (``nonfinite='pass'``, to a
    subtype in `NONFINITE_SUBTYPES`); otherwise the first one is an AudioError.
    """
    clips = subtype not in FLOAT_SUBTYPES and not subtype.startswith("MPEG")
    temporary = _temporary_name(output)
    created = True  # set first: a signal may come right after the file is created
    peak, clipped = 0.0, 0
    try:
        try:
            # Created here rather than by libsndfile, whose error would only say
            # "System error." for a directory without write permission.
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as err:
            created = False  # nothing to remove, and never another's file of that name
            raise AudioError(f"cannot write output file {output!r}: cannot create a file in "
                             f"{os.path.dirname(temporary) or os.curdir!r}: "
                             f"{_reason(err, temporary)}.") from None
        with soundfile.SoundFile(temporary, "w", samplerate=rate, channels=channels,
                                 subtype=subtype, format=file_format) as sink:
            for block in blocks:
                if scale != 1.0:
                    block = block * scale  # a new array: the stream may own `block`
                if check.check(block):
                    if nonfinite == "error":
                        raise _overflow(check)
                    if subtype not in NONFINITE_SUBTYPES:
                        raise AudioError(
                            f"cannot write non-finite samples to {output!r} as {subtype}: "
                            f"only {' and '.join(NONFINITE_SUBTYPES)} hold NaN and Inf, and "
                            f"{check.what} has one: {check.where()}; write one of those "
                            f"subtypes, or fix the input.")
                # np.maximum, unlike max(), keeps a NaN.
                peak = float(np.maximum(peak, np.max(np.abs(block), initial=0.0)))
                if clips:
                    over = np.count_nonzero(np.abs(block) > 1.0)
                    if over:
                        clipped += int(over)
                        block = np.clip(block, -1.0, 1.0)
                sink.write(block)
        os.replace(temporary, output)
    except BaseException as err:
        if created and os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(err, (soundfile.SoundFileError, OSError)):
            reason = (f"{_reason(err, output)}." if isinstance(err, OSError) and err.errno
                      else _error_text(err))
            raise AudioError(f"cannot write output file {output!r}: {reason}") from None
        raise
    return peak, clipped


# -- signal ------------------------------------------------------------------


def _partition(kernel_length: int) -> int:
    """Frame length of the stream for an IR of `kernel_length` taps.

    A file has no latency constraint, so the frames are long: about an eighth of
    the IR (a few partitions), between 2**14 and 2**17 samples.  Longer frames
    mean fewer, larger FFTs per sample; the spectra and delay line take about
    ``3 * (K + L)`` complex values per channel pair whatever the frame length.
    """
    return min(_MAX_PARTITION, max(_MIN_PARTITION, (1 << (kernel_length - 1).bit_length()) // 8))


def _stream(kernel: np.ndarray, separable: bool, block_size: int, backend: str,
            method: str) -> Any:
    from fftconv.streaming import StreamingConv1D

    # Blocks of any size go in; the stream's frame length is independent of them.
    return StreamingConv1D(kernel, padding="full", channel_separable=separable,
                           partition=_partition(kernel.shape[0]),
                           partitioning="uniform" if method == "auto" else method,
                           dtype=_DTYPE, backend=backend)


class _Fifo:
    """The dry input, delayed to line up with the convolution's outputs."""

    def __init__(self, channels: int) -> None:
        self._blocks: deque[np.ndarray] = deque()
        self._channels = channels

    def push(self, block: np.ndarray) -> None:
        self._blocks.append(block)

    def pop(self, n: int) -> np.ndarray:
        """The next `n` frames, zeros past the end of what was pushed."""
        out = np.zeros((n, self._channels), dtype=_DTYPE)
        filled = 0
        while filled < n and self._blocks:
            head = self._blocks[0]
            take = min(n - filled, head.shape[0])
            out[filled:filled + take] = head[:take]
            filled += take
            if take == head.shape[0]:
                self._blocks.popleft()
            else:
                self._blocks[0] = head[take:]
        return out


def _mixed(source: soundfile.SoundFile, stream: Any, frames: int, out_frames: int,
           block_size: int, mix: float, check: _NonFinite, nonfinite: str,
           progress: _Progress) -> Iterator[np.ndarray]:
    """Yield the mixed output in order, ``out_frames`` frames in all, float32.

    `check` takes the census of the input's non-finite samples; with
    ``nonfinite='error'`` the first one is an AudioError.
    """
    dry = _Fifo(source.channels) if mix < 1.0 else None
    done = 0

    def finished(wet: np.ndarray) -> np.ndarray | None:
        nonlocal done
        wet = np.asarray(wet, dtype=_DTYPE)[:out_frames - done]
        if wet.shape[0] == 0:
            return None
        done += wet.shape[0]
        if dry is None:
            return wet
        return mix * wet + (1.0 - mix) * dry.pop(wet.shape[0])

    with progress:
        read = 0
        while read < frames:
            try:
                block = source.read(min(block_size, frames - read), dtype=_DTYPE,
                                    always_2d=True)
            except (soundfile.SoundFileError, OSError) as err:
                raise AudioError(f"cannot read input file {source.name!r}: "
                                 f"{_error_text(err)}") from None
            if block.shape[0] == 0:  # the header promised more than the file holds
                break
            if check.check(block) and nonfinite == "error":
                raise AudioError(check.error())
            read += block.shape[0]
            if dry is not None:
                dry.push(block)
            out = finished(stream.process(block))
            progress.update(block.shape[0])
            if out is not None:
                yield out
        if out_frames <= read:
            # 'same' ends with the input: the zeros that flush() would assume push
            # the last outputs out, without computing the IR's tail as flush() does.
            zeros = np.zeros((max(block_size, _MIN_PARTITION), source.channels), _DTYPE)
            padded = 0
            while done < out_frames and padded < 4 * _MAX_PARTITION:
                out = finished(stream.process(zeros))
                padded += zeros.shape[0]
                if out is not None:
                    yield out
        if done < out_frames:
            out = finished(stream.flush())
            if out is not None:
                yield out
    if done < out_frames:  # a truncated input: pad so the length is as announced
        yield np.zeros((out_frames - done, source.channels), dtype=_DTYPE)


class _Progress:
    """A tqdm bar of audio seconds read and the real-time factor, or nothing."""

    def __init__(self, label: str, seconds: float, rate: int, enabled: bool) -> None:
        self._label, self._seconds, self._rate = label, seconds, rate
        self._enabled = enabled
        self._bar: Any = None
        self._frames = 0
        self._started = 0.0

    def __enter__(self) -> _Progress:
        self._started = time.perf_counter()
        if self._enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self._seconds, desc=self._label, unit="s", leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                           "[{elapsed}<{remaining}{postfix}]")
        return self

    def update(self, frames: int) -> None:
        self._frames += frames
        if self._bar is None:
            return
        seconds = self._frames / self._rate
        elapsed = time.perf_counter() - self._started
        if elapsed > 0:
            self._bar.set_postfix_str(f"{seconds / elapsed:.1f}x real time", refresh=False)
        self._bar.update(min(seconds, self._bar.total) - self._bar.n)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._bar is not None:
            if exc_type is not None:
                self._bar.leave = False  # clear it: the error message follows
            self._bar.close()


# -- arguments ---------------------------------------------------------------


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
    return str(value)


def _in_range(value: Any, name: str, low: float, high: float) -> float:
    value = finite_float(value, name)
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be in [{low}, {high}], got {value!r}.")
    return value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive integer (>= 1), got {value!r}.")
    return int(value)


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf
