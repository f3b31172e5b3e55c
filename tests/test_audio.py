"""`fftconv.audio.filter_file` on generated WAV, FLAC and OGG files."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import scipy.signal
import soundfile
from audio_data import RATE, RTOL, STEP, assert_audio_close, decaying, noise, read, reference, write

from fftconv import audio, resample_poly
from fftconv.audio import AudioError, ClippingWarning, filter_file


def leftovers(directory, keep):
    """Files in `directory` other than those in `keep` (outputs, temporary files)."""
    return sorted(set(os.listdir(directory)) - {os.path.basename(k) for k in keep})


@pytest.fixture
def stereo(tmp_path):
    return write(tmp_path / "in.wav", noise(12000, 2, seed=1))


@pytest.mark.parametrize("length", ["same", "full"])
def test_mono_ir_filters_every_channel(tmp_path, stereo, length):
    ir = write(tmp_path / "ir.wav", decaying(1500, 1, seed=2))
    out = str(tmp_path / "out.wav")
    result = filter_file(stereo, ir, out, length=length)
    expected = reference(read(stereo), read(ir), length)
    assert_audio_close(out, expected)
    assert (result.frames, result.channels, result.samplerate, result.subtype) == (
        expected.shape[0], 2, RATE, "FLOAT")
    assert result.passes == 1 and result.clipped == 0
    assert result.realtime_factor > 0
    assert leftovers(tmp_path, [stereo, ir, out]) == []


def test_per_channel_ir(tmp_path):
    x = write(tmp_path / "in.wav", noise(9000, 3, seed=3))
    ir = write(tmp_path / "ir.wav", decaying(800, 3, seed=4))
    out = str(tmp_path / "out.wav")
    filter_file(x, ir, out, length="full")
    assert_audio_close(out, reference(read(x), read(ir), "full"))


def test_true_stereo_ir(tmp_path, stereo):
    ir_data = np.zeros((600, 4))
    ir_data[:, 1] = decaying(600, 1, seed=5)[:, 0]  # LR only: left input to right output
    ir_data[0, 3] = 0.5  # RR: half of the right input, undelayed
    ir = write(tmp_path / "ir.wav", ir_data)
    out = str(tmp_path / "out.wav")
    filter_file(stereo, ir, out)
    x = read(stereo)
    y = read(out)
    np.testing.assert_allclose(y[:, 0], 0, atol=1e-7)  # LL and RL are silent
    expected_right = scipy.signal.fftconvolve(x[:, 0], ir_data[:, 1])[:len(x)] + 0.5 * x[:, 1]
    np.testing.assert_allclose(y[:, 1], expected_right, atol=RTOL)
    ir_data = decaying(700, 4, seed=6)
    ir = write(tmp_path / "ir.wav", ir_data)
    filter_file(stereo, ir, out, length="full")
    assert_audio_close(out, reference(x, read(ir), "full"))


@pytest.mark.parametrize("length", ["same", "full"])
def test_mix_and_gain(tmp_path, stereo, length):
    ir = write(tmp_path / "ir.wav", decaying(1000, 2, seed=7))
    out = str(tmp_path / "out.wav")
    filter_file(stereo, ir, out, length=length, mix=0.3, gain_db=-6.0)
    expected = reference(read(stereo), read(ir), length, mix=0.3, scale=10 ** (-6 / 20))
    assert_audio_close(out, expected)


def test_normalize_sets_the_peak_in_two_passes(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", decaying(1000, 1, seed=8, level=1.0))
    out = str(tmp_path / "out.wav")
    result = filter_file(stereo, ir, out, normalize=-1.0, mix=0.8)
    y = read(out)
    assert result.passes == 2
    assert abs(np.max(np.abs(y)) - 10 ** (-1 / 20)) < 1e-6
    expected = reference(read(stereo), read(ir), mix=0.8)
    assert_audio_close(out, expected * 10 ** (-1 / 20) / np.max(np.abs(expected)))


def test_normalize_a_silent_result_warns(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", np.zeros((10, 1)))
    out = str(tmp_path / "out.wav")
    with pytest.warns(UserWarning, match="silent"):
        filter_file(stereo, ir, out, normalize=-1.0)
    assert np.all(read(out) == 0)


def test_integer_subtype_clips_with_a_warning(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", np.array([[4.0]]))  # +12 dB: the noise peaks clip
    out = str(tmp_path / "out.wav")
    with pytest.warns(ClippingWarning, match=r"samples .* clipped to fit PCM_16"):
        result = filter_file(stereo, ir, out, subtype="pcm_16")
    assert result.subtype == "PCM_16" and result.clipped > 0 and result.peak > 1
    assert soundfile.info(out).subtype == "PCM_16"
    expected = np.clip(4 * read(stereo), -1, 1)
    np.testing.assert_allclose(read(out), expected, atol=STEP["PCM_16"])
    over = np.count_nonzero(np.abs(4 * read(stereo)) > 1)
    assert abs(result.clipped - over) <= 2  # rounding decides samples right at 1.0


def test_in_range_integer_output_does_not_warn(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", decaying(300, 1, seed=9))
    out = str(tmp_path / "out.wav")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filter_file(stereo, ir, out, subtype="PCM_16")
    assert_audio_close(out, reference(read(stereo), read(ir)), "PCM_16")


def test_flac_in_and_out(tmp_path):
    x = write(tmp_path / "in.flac", noise(10000, 2, seed=10), subtype="PCM_24")
    ir = write(tmp_path / "ir.flac", decaying(900, 2, seed=11), subtype="PCM_16")
    out = str(tmp_path / "out.flac")
    result = filter_file(x, ir, out, length="full")
    assert result.subtype == "PCM_24" == soundfile.info(out).subtype  # FLAC has no floats
    assert_audio_close(out, reference(read(x), read(ir), "full"), "PCM_24")


def test_ogg_output_and_input(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", decaying(300, 1, seed=12))
    out = str(tmp_path / "out.ogg")
    result = filter_file(stereo, ir, out)
    assert result.subtype == "VORBIS"
    assert soundfile.info(out).frames == 12000
    again = str(tmp_path / "again.wav")  # and OGG as input
    assert filter_file(out, ir, again, length="full").frames == 12000 + 299


@pytest.mark.parametrize("block_size", [1, 97, 1024])
def test_blocks_smaller_than_the_ir(tmp_path, block_size):
    x = write(tmp_path / "in.wav", noise(3000 if block_size == 1 else 8000, 2, seed=13))
    ir = write(tmp_path / "ir.wav", decaying(2500, 1, seed=14))
    out = str(tmp_path / "out.wav")
    filter_file(x, ir, out, length="full", mix=0.5, block_size=block_size)
    assert_audio_close(out, reference(read(x), read(ir), "full", mix=0.5))


def test_resample_ir_to_the_input_rate(tmp_path, stereo):
    ir_data = decaying(2000, 1, seed=15)
    ir = write(tmp_path / "ir.wav", ir_data, rate=44100)
    out = str(tmp_path / "out.wav")
    with pytest.raises(AudioError, match="44100 Hz but the input is at 48000 Hz"):
        filter_file(stereo, ir, out)
    assert leftovers(tmp_path, [stereo, ir]) == []
    result = filter_file(stereo, ir, out, resample=True)
    assert result.samplerate == RATE
    resampled = resample_poly(read(ir), 160, 147) * (44100 / 48000)
    assert_audio_close(out, reference(read(stereo), resampled))


def test_resampled_ir_keeps_its_gain(tmp_path):
    x = write(tmp_path / "in.wav", np.ones((4000, 1)))
    ir = write(tmp_path / "ir.wav", np.full((50, 1), 1 / 50), rate=44100)  # DC gain 1
    out = str(tmp_path / "out.wav")
    filter_file(x, ir, out, resample=True)
    np.testing.assert_allclose(read(out)[200:3800], 1.0, atol=2e-3)  # the passband ripple


def test_progress_bar_shows_seconds_and_real_time_factor(tmp_path, stereo, capsys):
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=16))
    filter_file(stereo, ir, str(tmp_path / "out.wav"), progress=True)
    err = capsys.readouterr().err
    assert "0.2/0.2 s" in err and "x real time" in err


def test_existing_output_is_replaced_only_when_complete(tmp_path, stereo, monkeypatch):
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=17))
    out = write(tmp_path / "out.wav", np.full((10, 1), 0.5))
    make_stream = audio._stream

    class Interrupted:
        """The real stream, interrupted (Ctrl-C) on its third block."""

        def __init__(self, *args):
            self.stream, self.calls = make_stream(*args), 0

        def process(self, x):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.stream.process(x)

        def flush(self):
            return self.stream.flush()

    monkeypatch.setattr(audio, "_stream", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        filter_file(stereo, ir, out, block_size=1000)
    np.testing.assert_array_equal(read(out), np.full((10, 1), 0.5))  # untouched
    assert leftovers(tmp_path, [stereo, ir, out]) == []


def test_bad_files(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=18))
    out = str(tmp_path / "out.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    empty = write(tmp_path / "empty.wav", np.zeros((0, 2)))
    empty_ir = write(tmp_path / "empty_ir.wav", np.zeros((0, 1)))
    ir3 = write(tmp_path / "ir3.wav", np.zeros((10, 3)))
    mono = write(tmp_path / "mono.wav", np.zeros((10, 1)))
    ir4 = write(tmp_path / "ir4.wav", np.zeros((10, 4)))
    inputs = [stereo, ir, garbage, empty, empty_ir, ir3, mono, ir4]
    cases = [
        ((tmp_path / "missing.wav", ir, out), "input file .* does not exist"),
        ((stereo, tmp_path / "missing.wav", out), "IR file .* does not exist"),
        ((garbage, ir, out), "cannot read input file"),
        ((stereo, garbage, out), "cannot read IR file"),
        ((tmp_path, ir, out), "is a directory"),
        ((empty, ir, out), "has no samples"),
        ((stereo, empty_ir, out), "has no samples"),
        ((stereo, ir3, out), "3 channels, which does not fit a 2-channel input; .* 1 or 4"),
        ((mono, ir4, out), "4 channels, which does not fit a 1-channel input"),
        ((stereo, ir, tmp_path / "out.xyz"), "unsupported output file extension '.xyz'"),
        ((stereo, ir, tmp_path / "out"), "unsupported output file extension ''"),
        ((stereo, ir, tmp_path / "no" / "out.wav"), "output directory .* does not exist"),
    ]
    for args, message in cases:
        with pytest.raises(AudioError, match=message) as info:
            filter_file(*args)
        assert "\n" not in str(info.value)
        assert leftovers(tmp_path, inputs) == [], message


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"length": "valid"}, ValueError, "`length` must be one of"),
    ({"mix": 1.5}, ValueError, r"`mix` must be in \[0.0, 1.0\]"),
    ({"mix": float("nan")}, ValueError, "`mix`"),
    ({"mix": "wet"}, TypeError, "`mix`"),
    ({"gain_db": float("inf")}, ValueError, "`gain_db` must be finite"),
    ({"normalize": -1.0, "gain_db": 3.0}, ValueError, "cannot be combined"),
    ({"block_size": 0}, ValueError, "`block_size`"),
    ({"block_size": 2.5}, TypeError, "`block_size`"),
    ({"backend": "fast"}, ValueError, "`backend`"),
    ({"method": "direct"}, ValueError, "`method`"),
    ({"subtype": "PCM_99"}, AudioError, "subtype 'PCM_99' is not available for WAV"),
    ({"subtype": 16}, TypeError, "`subtype`"),
])
def test_bad_options(tmp_path, stereo, options, error, message):
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=19))
    with pytest.raises(error, match=message):
        filter_file(stereo, ir, tmp_path / "out.wav", **options)
    assert leftovers(tmp_path, [stereo, ir]) == []
