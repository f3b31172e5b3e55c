"""`fftconv.audio.filter_file` on generated WAV, FLAC and OGG files."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.signal
import soundfile
from audio_data import (
    RATE,
    RTOL,
    STEP,
    assert_audio_close,
    decaying,
    leftovers,
    noise,
    read,
    reference,
    with_nonfinite,
    write,
)

from fftconv import audio, resample_poly
from fftconv.audio import AudioError, ClippingWarning, filter_file


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
        ((stereo, ir3, out), "3 channels, which does not fit a 2-channel input; use an IR "
                             r"with 1, 2 or 4 \(true stereo\) channels\.$"),
        ((mono, ir4, out), "4 channels, which does not fit a 1-channel input; the input is "
                           r"mono; use a mono IR\.$"),
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


# -- non-finite samples --------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16"])
def test_nonfinite_input_is_an_error_naming_file_frame_and_channel(tmp_path, value, subtype):
    x = write(tmp_path / "in.wav", with_nonfinite(noise(3000, 2, seed=20), 1000, 1, value))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=21))
    out = write(tmp_path / "out.wav", np.full((10, 1), 0.5))  # an older output
    # Small blocks: the bad sample is in the fourth, so its frame counts the earlier ones.
    with pytest.raises(AudioError, match=rf"input file '.*in.wav' has a non-finite sample: "
                                         rf"{value} at frame 1000, channel 1 \(counting from 0\);"
                                         rf" .* nonfinite='pass' \(--nonfinite pass\)\.$"):
        filter_file(x, ir, out, subtype=subtype, block_size=300)
    np.testing.assert_array_equal(read(out), np.full((10, 1), 0.5))  # untouched
    assert leftovers(tmp_path, [x, ir, out]) == []  # no temporary file


def test_nonfinite_ir_is_an_error(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", with_nonfinite(decaying(100, 2, seed=22), 5, 0, np.inf))
    out = tmp_path / "out.wav"
    with pytest.raises(AudioError, match=r"IR file '.*ir.wav' has a non-finite sample: inf at "
                                         r"frame 5, channel 0 \(counting from 0\)"):
        filter_file(stereo, ir, out)
    assert leftovers(tmp_path, [stereo, ir]) == []


def test_nonfinite_pass_writes_them_to_float_with_a_warning(tmp_path):
    data = noise(3000, 2, seed=23)
    x = write(tmp_path / "in.wav", with_nonfinite(data, 1000, 1))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=24))
    out = str(tmp_path / "out.wav")
    with pytest.warns(audio.NonFiniteWarning) as caught:
        result = filter_file(x, ir, out, nonfinite="pass")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"input file {str(x)!r} has 1 non-finite sample (NaN or Inf), "
                              "the first: nan at frame 1000, channel 1 (counting from 0); "
                              "the filtered signal has ")
    assert message.endswith(f"written to {out!r} as they are.")
    y = read(out)
    assert result.nonfinite == np.count_nonzero(~np.isfinite(y)) > 0
    assert f"the filtered signal has {result.nonfinite} non-finite samples" in message
    assert np.isnan(result.peak)  # not the peak of the finite samples
    # The mono IR filters each channel on its own: the left one is untouched by the NaN.
    expected = reference(read(x)[:, :1], read(ir))
    np.testing.assert_allclose(y[:, :1], expected, rtol=0, atol=RTOL * np.max(np.abs(expected)))
    assert np.isnan(y[1000:1100, 1]).all()
    assert leftovers(tmp_path, [x, ir, out]) == []


@pytest.mark.parametrize(("name", "subtype"), [("out.wav", "PCM_16"), ("out.flac", None),
                                               ("out.ogg", None)])
def test_nonfinite_pass_never_writes_them_to_other_subtypes(tmp_path, name, subtype):
    x = write(tmp_path / "in.wav", with_nonfinite(noise(3000, 2, seed=25), 10, 0))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=26))
    out = tmp_path / name
    with pytest.raises(AudioError, match=r"cannot write non-finite samples to '.*out\.\w+' as "
                                         r"(PCM_16|PCM_24|VORBIS): only FLOAT and DOUBLE hold "
                                         r"NaN and Inf, and the filtered signal has one: nan at "
                                         r"frame \d+, channel 0"):
        filter_file(x, ir, out, subtype=subtype, nonfinite="pass")
    assert leftovers(tmp_path, [x, ir]) == []
    # A finite input still goes to an integer subtype with 'pass'.
    clean = write(tmp_path / "clean.wav", noise(3000, 2, seed=25))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = filter_file(clean, ir, out, subtype=subtype, nonfinite="pass")
    assert result.nonfinite == 0 and np.isfinite(result.peak)


def test_normalize_refuses_a_nonfinite_signal(tmp_path):
    x = write(tmp_path / "in.wav", with_nonfinite(noise(3000, 2, seed=27), 2000, 0))
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=28))
    out = tmp_path / "out.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in particular, no "silent" warning
        with pytest.raises(AudioError, match=r"cannot normalize '.*out.wav': the filtered "
                                             r"signal has non-finite samples .* so it has no "
                                             r"peak"):
            filter_file(x, ir, out, normalize=-1.0, nonfinite="pass")
        with pytest.raises(AudioError, match="input file .* non-finite sample: nan at frame "
                                             "2000, channel 0"):
            filter_file(x, ir, out, normalize=-1.0)
    assert leftovers(tmp_path, [x, ir]) == []


def test_overflow_of_a_finite_input_is_caught(tmp_path):
    x = write(tmp_path / "in.wav", np.full((1000, 1), 0.5))
    ir = write(tmp_path / "ir.wav", np.array([[1.0]]))
    out = str(tmp_path / "out.wav")
    huge = 20 * np.log10(2e38)  # 0.5 * 2e38 fits in float32 (max 3.4e38), 4 * 2e38 does not
    x2 = write(tmp_path / "in2.wav", np.full((1000, 1), 4.0))
    with pytest.raises(AudioError, match=r"the filtered signal has a non-finite sample although "
                                         r"the input and IR are finite: inf at frame 0, "
                                         r"channel 0 .* float32 range overflowed"):
        filter_file(x2, ir, out, gain_db=huge)
    assert leftovers(tmp_path, [x, x2, ir]) == []
    filter_file(x, ir, out, gain_db=huge)  # 1e38: finite
    with pytest.warns(audio.NonFiniteWarning, match="the filtered signal has 1000 non-finite"):
        result = filter_file(x2, ir, out, gain_db=huge, nonfinite="pass")
    assert result.peak == np.inf and result.nonfinite == 1000
    assert np.all(read(out) == np.inf)


# -- the output is an input ---------------------------------------------------


@pytest.mark.parametrize("role", ["input", "IR"])
@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink"])
def test_output_that_is_an_input_needs_force(tmp_path, role, alias):
    x_data, ir_data = noise(5000, 2, seed=29), decaying(300, 2, seed=30)
    x = write(tmp_path / "in.wav", x_data)
    ir = write(tmp_path / "ir.wav", ir_data)
    target = x if role == "input" else ir
    out = tmp_path / "out.wav"
    if alias == "same":
        out = target
    elif alias == "symlink":
        out.symlink_to(target.name)
    else:
        os.link(target, out)
    with pytest.raises(AudioError, match=rf"output file '.*{out.name}' is the {role} file "
                                         rf"'.*{target.name}'.*force=True \(--force\)"):
        filter_file(x, ir, out)
    np.testing.assert_array_equal(read(x), x_data.astype(np.float32))
    np.testing.assert_array_equal(read(ir), ir_data.astype(np.float32))
    assert leftovers(tmp_path, [x, ir, out]) == []
    # With force the inputs are read in full before the new file takes the name.
    stored_x, stored_ir = read(x), read(ir)
    filter_file(x, ir, out, force=True, length="full", normalize=-1.0)
    expected = reference(stored_x, stored_ir, "full")
    assert_audio_close(out, expected * 10 ** (-1 / 20) / np.max(np.abs(expected)))
    assert leftovers(tmp_path, [x, ir, out]) == []


# -- termination signals ------------------------------------------------------


def test_terminate_on_signals_raises_once_and_restores_the_handlers():
    def sentinel(signum, frame):
        raise AssertionError("the previous handler was called")

    previous = signal.signal(signal.SIGTERM, sentinel)
    try:
        with pytest.raises(audio.Terminated) as info:
            with audio.terminate_on_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted by the exception
        assert info.value.signum == signal.SIGTERM
        assert str(info.value) == "terminated by SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is sentinel
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_terminate_on_signals_keeps_ignored_signals_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with audio.terminate_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_terminate_on_signals_does_nothing_outside_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body():
        with audio.terminate_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_termination_signal_removes_the_temporary_file(tmp_path, stereo, monkeypatch, name):
    signum = getattr(signal, name)
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=31))
    out = write(tmp_path / "out.wav", np.full((10, 1), 0.5))
    make_stream = audio._stream

    class Signalled:
        """The real stream; the process is sent `signum` on its third block."""

        def __init__(self, *args):
            self.stream, self.calls = make_stream(*args), 0

        def process(self, x):
            self.calls += 1
            if self.calls == 3:
                assert [n for n in os.listdir(tmp_path) if n.endswith(".part")]
                os.kill(os.getpid(), signum)
            return self.stream.process(x)

        def flush(self):
            return self.stream.flush()

    monkeypatch.setattr(audio, "_stream", Signalled)
    with pytest.raises(audio.Terminated):
        with audio.terminate_on_signals():
            filter_file(stereo, ir, out, block_size=1000)
    np.testing.assert_array_equal(read(out), np.full((10, 1), 0.5))  # untouched
    assert leftovers(tmp_path, [stereo, ir, out]) == []


# -- messages -----------------------------------------------------------------


def test_directories_are_named_as_such(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=32))
    folder = tmp_path / "folder"
    folder.mkdir()
    for args, message in [
        ((folder, ir, tmp_path / "out.wav"), r"input file '.*folder' is a directory\.$"),
        ((stereo, folder, tmp_path / "out.wav"), r"IR file '.*folder' is a directory\.$"),
        ((stereo, ir, folder), r"output '.*folder' is a directory; give the name of the file "
                               r"to write in it, e.g. '.*folder/out.wav'\.$"),
    ]:
        with pytest.raises(AudioError, match=message):
            filter_file(*args)
    assert leftovers(tmp_path, [stereo, ir, folder]) == []
    assert os.listdir(folder) == []


def test_a_path_under_a_file_says_which_is_not_a_directory(tmp_path, stereo):
    """ENOTDIR: a real system error that happens as root too."""
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=33))
    out = tmp_path / "out.wav"
    for args, message in [
        ((stereo / "x.wav", ir, out), "cannot open input file '.*in.wav/x.wav': '.*in.wav' "
                                      "is not a directory"),
        ((stereo, ir / "x.wav", out), "cannot open IR file '.*ir.wav/x.wav': '.*ir.wav' is "
                                      "not a directory"),
        ((stereo, ir, ir / "sub" / "out.wav"), "cannot write output file "
                                               "'.*ir.wav/sub/out.wav': '.*ir.wav' is not a "
                                               "directory"),
    ]:
        with pytest.raises(AudioError, match=message):
            filter_file(*args)
    assert leftovers(tmp_path, [stereo, ir]) == []


def denied(path):
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def test_permission_errors_name_the_file_and_the_reason(tmp_path, stereo, monkeypatch):
    """As raised by `soundfile`; runs as root too, where file modes do not stop reads."""
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=34))
    out = tmp_path / "out.wav"
    real_read, real_open = soundfile.read, soundfile.SoundFile
    locked = set()

    def read_file(path, *args, **kwargs):
        if os.fspath(path) in locked:
            raise denied(path)
        return real_read(path, *args, **kwargs)

    def open_file(path, mode="r", *args, **kwargs):
        if os.fspath(path) in locked or (mode == "w" and "out" in locked):
            raise denied(path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(soundfile, "read", read_file)
    monkeypatch.setattr(soundfile, "SoundFile", open_file)
    for lock, message in [
        (str(ir), r"cannot open IR file '.*ir.wav': permission denied\.$"),
        (str(stereo), r"cannot open input file '.*in.wav': permission denied\.$"),
        ("out", r"cannot write output file '.*out.wav': permission denied\.$"),
    ]:
        locked = {lock}
        with pytest.raises(AudioError, match=message):
            filter_file(stereo, ir, out)
        assert leftovers(tmp_path, [stereo, ir]) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads and writes files whatever their modes; "
                           "test_permission_errors_name_the_file_and_the_reason covers the "
                           "messages")
def test_unreadable_files_and_unwritable_directories(tmp_path, stereo):
    ir = write(tmp_path / "ir.wav", decaying(100, 1, seed=35))
    locked = tmp_path / "locked"
    locked.mkdir()
    try:
        for path in (stereo, ir):
            path.chmod(0)
            with pytest.raises(AudioError, match=rf"cannot open (input|IR) file "
                                                 rf"'.*{path.name}': permission denied\.$"):
                filter_file(stereo, ir, tmp_path / "out.wav")
            path.chmod(0o644)
        locked.chmod(0o555)
        with pytest.raises(AudioError, match=r"cannot write output file '.*locked/out.wav': "
                                             r"cannot create a file in '.*locked': permission "
                                             r"denied\.$"):
            filter_file(stereo, ir, locked / "out.wav")
    finally:
        locked.chmod(0o755)
        for path in (stereo, ir):
            path.chmod(0o644)
    assert leftovers(tmp_path, [stereo, ir, locked]) == [] and os.listdir(locked) == []
