"""Generated audio data and the float64 reference of `filter_file` / `fftconv filter`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

RATE = 48000
#: Relative tolerance (to max |y|) of the float32 streaming convolution.
RTOL = 1e-5
#: Error of writing and reading back each subtype: libsndfile writes x * (2**(b-1) - 1),
#: rounded, and reads back by 2**(b-1), so up to 1.5 steps at full scale.
STEP = {"FLOAT": 0.0, "PCM_24": 1.5 * 2.0**-23, "PCM_16": 1.5 * 2.0**-15}


def noise(frames, channels, seed, level=0.25):
    return level * np.random.default_rng(seed).standard_normal((frames, channels))


def decaying(frames, channels, seed, level=0.05):
    """A reverb-like IR: noise under an exponential decay."""
    envelope = np.exp(-np.arange(frames) / (frames / 6))[:, None]
    return noise(frames, channels, seed, level) * envelope


def write(path, data, rate=RATE, subtype="FLOAT"):
    soundfile.write(path, data, rate, subtype=subtype)
    return Path(path)


def read(path):
    return soundfile.read(path, dtype="float64", always_2d=True)[0]


def reference(x, ir, length="same", mix=1.0, scale=1.0):
    """`scipy.signal.fftconvolve` of the data as stored, mixed and scaled (float64)."""
    conv = scipy.signal.fftconvolve
    channels = x.shape[1]
    if ir.shape[1] == 1:
        wet = [conv(x[:, c], ir[:, 0]) for c in range(channels)]
    elif ir.shape[1] == channels:
        wet = [conv(x[:, c], ir[:, c]) for c in range(channels)]
    else:  # true stereo: LL, LR, RL, RR
        ll, lr, rl, rr = ir.T
        wet = [conv(x[:, 0], ll) + conv(x[:, 1], rl), conv(x[:, 0], lr) + conv(x[:, 1], rr)]
    wet = np.stack(wet, axis=1)
    dry = np.zeros_like(wet)
    dry[:x.shape[0]] = x
    out = scale * (mix * wet + (1 - mix) * dry)
    return out[:x.shape[0]] if length == "same" else out


def assert_audio_close(path, expected, subtype="FLOAT"):
    """The file at `path` holds `expected` in `subtype`, within the float32 and subtype error."""
    actual = read(path)
    assert actual.shape == expected.shape
    assert soundfile.info(str(path)).subtype == subtype
    peak = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL * peak + STEP[subtype])


def with_nonfinite(data, frame, channel, value=float("nan")):
    """A copy of `data` (frames, channels) with `value` (NaN, +-Inf) at one sample."""
    data = np.array(data, dtype=np.float64)
    data[frame, channel] = value
    return data


def leftovers(directory, keep):
    """Files in `directory` other than those in `keep` (outputs, temporary files)."""
    return sorted(set(os.listdir(directory)) - {os.path.basename(k) for k in keep})
