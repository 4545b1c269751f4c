"""audiodata/audio.py: decoding, bad input, length fitting, log-mel against librosa."""
import struct
import warnings

import librosa
import numpy as np
import pytest

from conftest import audio_bytes, tone, write_audio, write_wav
from audiodata.audio import (AMIN, HOP_LENGTH, N_FRAMES, N_SAMPLES, AudioError, fit_length,
                             input_lengths, load_audio, log_mel, resample, spectrogram_input, waveform_input)


def _librosa_log_mel(y):
    """The spec's log-mel written out with librosa, independently of audiodata.audio."""
    mel = librosa.feature.melspectrogram(y=y, sr=12000, n_fft=512, hop_length=256, n_mels=96, fmin=0.0,
                                         fmax=6000.0, power=2.0)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0).T


def _music_like(n, seed=0):
    """Notes with decays and a quiet tail: a wide dynamic range, unlike plain noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 12000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-(t % 0.5) * 6) + 0.01 * rng.standard_normal(n)
    x[int(n * 0.8):] *= 1e-4
    return x


# ---------------------------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("ext", [".wav", ".au", ".flac", ".aiff"])
def test_lossless_formats_decode_exactly(tmp_path, ext):
    x = tone(0.5, 12000)
    path = write_audio(tmp_path / f"a{ext}", x)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1 / 2**15 + 1e-6)   # 16-bit quantisation only


@pytest.mark.parametrize("ext", [".ogg", ".mp3"])
def test_lossy_formats_decode(tmp_path, ext):
    x = tone(1.0, 12000)
    y = load_audio(write_audio(tmp_path / f"a{ext}", x))
    assert y.dtype == np.float32 and abs(len(y) - len(x)) < 0.1 * len(x)
    # The codec keeps the tone: its energy stays, and the spectrum peaks at 440 Hz.
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.2)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / 12000)[spectrum.argmax()] == pytest.approx(440, abs=5)


def test_gtzan_style_au_at_22050_is_resampled(tmp_path):
    """GTZAN ships 22 050 Hz 16-bit big-endian .au files."""
    x = tone(1.0, 22050)
    y = load_audio(write_audio(tmp_path / "blues.00000.au", x, sr=22050))
    expected = librosa.resample(x, orig_sr=22050, target_sr=12000, res_type="soxr_hq")[:12000]
    assert y.shape == (12000,)   # exactly; librosa's float sizing alone would give 12001
    np.testing.assert_allclose(y, expected, atol=2e-4)


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    x = tone(0.5, 44100, channels=2)        # 440 Hz left, 880 Hz right
    y = load_audio(write_audio(tmp_path / "stereo.wav", x, sr=44100, subtype="FLOAT"))
    expected = librosa.resample(x.mean(axis=1), orig_sr=44100, target_sr=12000, res_type="soxr_hq")[:6000]
    assert y.shape == (6000,)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_resample_exact_length_and_identity():
    x = tone(1.0, 22050)
    assert resample(x, 22050, 12000).shape == (12000,)
    assert resample(tone(0.1, 8000), 8000, 12000).shape == (1200,)
    np.testing.assert_array_equal(resample(x, 22050, 22050), x)


def test_target_rate_is_a_parameter(tmp_path):
    y = load_audio(write_wav(tmp_path / "a.wav", seconds=1.0, sr=12000), sr=16000)
    assert y.shape == (16000,)


def test_loud_clip_is_kept_with_a_warning(tmp_path):
    path = write_audio(tmp_path / "loud.wav", 2.0 * tone(0.2) / 0.5, subtype="FLOAT")
    with pytest.warns(UserWarning, match="above full scale"):
        y = load_audio(path)
    assert np.abs(y).max() == pytest.approx(2.0, rel=1e-3)


def test_silent_clip_is_kept_with_a_warning(tmp_path):
    path = write_audio(tmp_path / "silent.wav", np.zeros(1200, dtype=np.float32))
    with pytest.warns(UserWarning, match="silent"):
        y = load_audio(path)
    assert y.shape == (1200,) and not y.any()


def test_ordinary_clip_gives_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        wave = load_audio(write_wav(tmp_path / "a.wav", seconds=0.5, sr=12000))
    assert wave.shape == (6000,) and wave.dtype == np.float32 and 0 < np.abs(wave).max() <= 1.0


# --------------------------------------------------------------------------------------------- bad input

def _assert_audio_error(path, reason):
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value) and "expected" in str(info.value)
    assert info.value.path == str(path)


def test_missing_file(tmp_path):
    _assert_audio_error(tmp_path / "nope.wav", "no such file")


def test_directory_is_not_audio(tmp_path):
    _assert_audio_error(tmp_path, "not a regular file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _assert_audio_error(path, "empty file")


def test_header_without_samples(tmp_path):
    path = write_audio(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    _assert_audio_error(path, "no samples")


def test_corrupt_bytes(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    _assert_audio_error(path, "unreadable or corrupt")


def test_unknown_container_with_garbage(tmp_path):
    """Formats libsndfile does not know go to librosa's ffmpeg fallback, whose failure is reported too."""
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\0\0\0\x18ftypM4A " + bytes(200))
    _assert_audio_error(path, "unreadable")


@pytest.mark.parametrize("ext", [".wav", ".au", ".flac", ".mp3"])
def test_truncated_file(tmp_path, ext):
    data = audio_bytes(tone(1.0), 12000, ext)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) // 2])
    _assert_audio_error(path, "truncated|corrupt")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = tone(0.1)
    x[10] = bad
    path = write_audio(tmp_path / "nan.wav", x, subtype="FLOAT")
    _assert_audio_error(path, "NaN or inf")


def test_streaming_placeholder_size_is_not_truncation(tmp_path):
    """ffmpeg writing to a pipe leaves 0xFFFFFFFF as the data size: such files are whole."""
    data = bytearray(audio_bytes(tone(0.2), 12000, ".wav"))
    at = data.find(b"data")
    data[at + 4: at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path = tmp_path / "piped.wav"
    path.write_bytes(bytes(data))
    assert load_audio(path).shape == (2400,)


# ---------------------------------------------------------------------------------------------- lengths

def test_fit_length_crop_repeat_zero():
    x = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 3), [1, 2, 3])
    np.testing.assert_array_equal(fit_length(x, 12), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2])
    np.testing.assert_array_equal(fit_length(x, 7, pad="zero"), [1, 2, 3, 4, 5, 0, 0])
    assert fit_length(x, 12).dtype == np.float32
    np.testing.assert_array_equal(waveform_input(x, 7), fit_length(x, 7))


def test_fit_length_rejects_bad_input():
    with pytest.raises(ValueError, match="'repeat' or 'zero'"):
        fit_length(np.ones(3), 5, pad="reflect")
    with pytest.raises(ValueError, match="empty"):
        fit_length(np.zeros(0), 5)
    with pytest.raises(ValueError, match="1-D"):
        fit_length(np.ones((2, 3)), 5)


def test_input_lengths():
    assert input_lengths() == (N_SAMPLES, N_FRAMES) == (350000, 1376)
    assert input_lengths(3.0) == (36000, 141)
    assert input_lengths(29.2) == (350400, 1369)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="input_seconds"):
            input_lengths(bad)


# ---------------------------------------------------------------------------------------------- log-mel

def test_log_mel_matches_librosa():
    x = _music_like(12345).astype(np.float32)
    out = log_mel(x)
    assert out.shape == (1 + 12345 // HOP_LENGTH, 96) and out.dtype == np.float32
    np.testing.assert_allclose(out, _librosa_log_mel(x), atol=1e-5)
    assert out.max() - out.min() <= 80.0 + 1e-4    # top_db relative to the clip's maximum


def test_spectrogram_input_crops_the_whole_clip_spectrogram():
    x = _music_like(40 * HOP_LENGTH + 77).astype(np.float32)
    out = spectrogram_input(x, n_frames=30)
    np.testing.assert_array_equal(out, log_mel(x)[:30])


def test_spectrogram_input_repeats_frames():
    """The study's rule: the clip's own log-mel frames repeated, not its samples (tests/test_fidelity.py
    checks a 3 s clip at the study's 1376 frames)."""
    x = _music_like(5000).astype(np.float32)              # 20 frames, 30 wanted
    out = spectrogram_input(x, n_frames=30)
    assert out.shape == (30, 96)
    np.testing.assert_array_equal(out, np.tile(log_mel(x), (2, 1))[:30])
    with pytest.raises(ValueError, match="pad must be 'repeat' or 'zero'"):
        spectrogram_input(x, n_frames=30, pad="repeat-samples")  # the former rule is gone
    zero = spectrogram_input(x, n_frames=30, pad="zero")
    np.testing.assert_array_equal(zero[:20], log_mel(x))
    assert np.all(zero[20:] == log_mel(x).max() - 80.0)   # silent frames sit on the floor


def test_spectrogram_input_study_lengths():
    """350 000 samples give 1368 frames: the study's 1376 need the clip padded first."""
    x = _music_like(N_SAMPLES).astype(np.float32)
    assert log_mel(x).shape[0] == 1368
    assert spectrogram_input(x).shape == (N_FRAMES, 96)


def test_amin_floor_on_silence():
    out = log_mel(np.zeros(1000, dtype=np.float32))
    assert np.all(out == np.float32(10 * np.log10(AMIN)))
