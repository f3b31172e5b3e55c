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
"""

from __future__ import annotations

import math
import numbers
import os
import secrets
import time
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from fftconv._arrays import finite_float
from fftconv.engine import check_backend
from fftconv.resample import resample_poly

LENGTHS = ("same", "full")
METHODS = ("auto", "uniform", "non-uniform")
#: Output subtypes that store floating-point samples (nothing clips).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS")
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
        Largest absolute sample value, before any clipping.
    clipped : int
        Samples that were outside [-1, 1] and were clipped (integer subtypes only).
    passes : int
        Passes over the input (2 with `normalize`).
    elapsed : float
        Wall-clock seconds for the whole call.
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
        ``.ogg``, ``.aiff``, ...).  An existing file is replaced only after
        the new one is complete.
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
        peak without writing anything.  Cannot be combined with `gain_db`.
    subtype : str or None
        Output sample format (a `soundfile` subtype, e.g. ``'FLOAT'``,
        ``'PCM_16'``, ``'PCM_24'``).  None means ``'FLOAT'``, so nothing clips,
        where the format stores floats, else its best integer subtype
        (``PCM_24`` for FLAC) or its own default (``VORBIS`` for OGG).
        Samples outside [-1, 1] written to an integer subtype are clipped and a
        :class:`ClippingWarning` says how many.
    block_size : int
        Frames read, filtered and written at a time.
    backend : {'auto', 'numpy', 'pyfftw'}
        FFT backend of the convolution.
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

    Returns
    -------
    FilterResult

    Raises
    ------
    AudioError
        A file is missing, unreadable, empty or of an unsupported format; the
        channel counts do not fit; the sample rates differ without `resample`.
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
    output = os.fspath(output)
    file_format, subtype = _output_format(output, subtype)

    with _open_input(input) as source:
        frames, channels, rate = source.frames, source.channels, source.samplerate
        kernel, separable = _kernel(_read_ir(ir, rate, resample), channels, ir)
        out_frames = frames + (kernel.shape[0] - 1 if length == "full" else 0)

        def blocks(label: str) -> Iterator[np.ndarray]:
            source.seek(0)
            stream = _stream(kernel, separable, block_size, backend, method)
            return _mixed(source, stream, frames, out_frames, block_size, mix,
                          _Progress(label, frames / rate, rate, progress))

        passes = 1
        scale = 10.0 ** (gain_db / 20.0)
        if normalize is not None:
            passes = 2
            peak = max((float(np.max(np.abs(b), initial=0.0))
                        for b in blocks("pass 1/2, peak")), default=0.0)
            if peak > 0.0:
                scale = 10.0 ** (normalize / 20.0) / peak
            else:
                warnings.warn(f"the filtered signal is silent; {output!r} is not normalised.",
                              UserWarning, stacklevel=2)
        peak, clipped = _write(blocks("filter" if passes == 1 else "pass 2/2, write"), output,
                               file_format, subtype, rate, channels, scale)
    if clipped:
        warnings.warn(
            f"{clipped} samples of {output!r} exceeded [-1, 1] (peak "
            f"{_dbfs(peak):+.1f} dBFS) and were clipped to fit {subtype}; use a float "
            f"subtype, a negative gain or normalize.", ClippingWarning, stacklevel=2)
    return FilterResult(output=output, frames=out_frames, channels=channels, samplerate=rate,
                        subtype=subtype, peak=peak, clipped=clipped, passes=passes,
                        elapsed=time.perf_counter() - started)


# -- files -------------------------------------------------------------------


def _output_format(output: str, subtype: str | None) -> tuple[str, str]:
    """The `soundfile` format named by `output`'s extension and the subtype to write."""
    extension = Path(output).suffix[1:].upper()
    file_format = _FORMAT_ALIASES.get(extension, extension)
    formats = soundfile.available_formats()
    if file_format not in formats or file_format == "RAW":
        known = ", ".join(sorted({f".{name.lower()}" for name in formats} - {".raw"}))
        raise AudioError(f"unsupported output file extension {Path(output).suffix!r} for "
                         f"{output!r}; use one of {known}.")
    directory = Path(output).parent
    if not directory.is_dir():
        raise AudioError(f"output directory {str(directory)!r} does not exist.")
    if Path(output).is_dir():
        raise AudioError(f"output {output!r} is a directory.")
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


def _check_exists(path: str, role: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"{role} file {path!r} does not exist.")
    if os.path.isdir(path):
        raise AudioError(f"{role} file {path!r} is a directory.")


def _error_text(err: Exception) -> str:
    text = getattr(err, "error_string", None) or str(err)
    return " ".join(text.split())  # one line


def _open_input(path: str | os.PathLike) -> soundfile.SoundFile:
    path = os.fspath(path)
    _check_exists(path, "input")
    try:
        source = soundfile.SoundFile(path)
    except (soundfile.SoundFileError, OSError) as err:
        raise AudioError(f"cannot read input file {path!r}: {_error_text(err)}") from None
    if source.frames <= 0:
        source.close()
        raise AudioError(f"input file {path!r} has no samples.")
    return source


def _read_ir(path: str | os.PathLike, rate: int, resample: bool) -> np.ndarray:
    """The IR at the input's sample `rate`, shape (K, channels), float64."""
    path = os.fspath(path)
    _check_exists(path, "IR")
    try:
        ir, ir_rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (soundfile.SoundFileError, OSError) as err:
        raise AudioError(f"cannot read IR file {path!r}: {_error_text(err)}") from None
    if ir.shape[0] == 0:
        raise AudioError(f"IR file {path!r} has no samples.")
    if ir_rate != rate:
        if not resample:
            raise AudioError(f"IR file {path!r} is at {ir_rate} Hz but the input is at "
                             f"{rate} Hz; resample it (resample=True, --resample) or use "
                             f"matching files.")
        # A discrete IR sums to its DC gain; resampling by r multiplies that sum
        # by r, so scale by 1/r to keep the filter's frequency response.
        ir = resample_poly(ir, rate, ir_rate, axis=0) * (ir_rate / rate)
    return ir


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
    allowed = "1 or 4 (true stereo)" if channels == 2 else f"1 or {channels}"
    raise AudioError(f"IR file {os.fspath(path)!r} has {n} channels, which does not fit a "
                     f"{channels}-channel input; use an IR with {allowed} channels.")


def _temporary_name(output: str) -> str:
    """A unique hidden name in the output's directory (so the final rename is atomic)."""
    path = Path(output)
    return str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.part"))


def _write(blocks: Iterator[np.ndarray], output: str, file_format: str, subtype: str,
           rate: int, channels: int, scale: float) -> tuple[float, int]:
    """Write scaled `blocks` to `output` via a temporary file; return (peak, clipped)."""
    clips = subtype not in FLOAT_SUBTYPES and not subtype.startswith("MPEG")
    temporary = _temporary_name(output)
    peak, clipped = 0.0, 0
    try:
        with soundfile.SoundFile(temporary, "x", samplerate=rate, channels=channels,
                                 subtype=subtype, format=file_format) as sink:
            for block in blocks:
                if scale != 1.0:
                    block = block * scale  # a new array: the stream may own `block`
                peak = max(peak, float(np.max(np.abs(block), initial=0.0)))
                if clips:
                    over = np.count_nonzero(np.abs(block) > 1.0)
                    if over:
                        clipped += int(over)
                        block = np.clip(block, -1.0, 1.0)
                sink.write(block)
        os.replace(temporary, output)
    except BaseException as err:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(err, (soundfile.SoundFileError, OSError)):
            raise AudioError(f"cannot write output file {output!r}: "
                             f"{_error_text(err)}") from None
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
           block_size: int, mix: float, progress: _Progress) -> Iterator[np.ndarray]:
    """Yield the mixed output in order, ``out_frames`` frames in all, float32."""
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

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
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
