"""--as-published: what the study's code (jordipons/elmarc) computed where it departs from the thesis text.

Each test holds one item of docs/fidelity.md ("As published"): the switch changes exactly that item, and
without it every number is the thesis-text definition (the default).
"""
from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from conftest import tone, write_audio, write_class_folders
from architectures.mfcc import mfcc_statistics
from audiodata import audio, decode
from features import extract as ex
from features.compute import published_means

SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False}


def _noise(n_clips=3, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(12000 * seconds))).astype(np.float32) for _ in range(n_clips)]


def _offsets(model):
    return np.cumsum([0] + [c for _, c in model.layers])


# ----------------------------------------------------------------------------- item 1: the stack's one number

@pytest.mark.parametrize("arch,width,real", [("frame-level", "small", 30 + 3), ("frame-level-many", "small", 5 * 15 + 3),
                                             ("frame-level", "large", 896 + 3),
                                             ("frame-level-many", "large", 5 * 448 + 3)])
def test_stack_layers_give_one_number_each(arch, width, real):
    """The issue's "Done when": 896+3 / 2243 non-constant columns at the large width (small: 33 / 78)."""
    waves = _noise()
    pub = ex.build_frontend(arch, width=width, seed=0, as_published=True)
    text = ex.build_frontend(arch, width=width, seed=0)
    X = ex.embed(pub, waves, input_seconds=1.0, sr=12000, device="cpu")
    X0 = ex.embed(text, waves, input_seconds=1.0, sr=12000, device="cpu")
    assert X.shape == X0.shape == (3, pub.feature_length)
    assert int((X.std(axis=0) > 0).sum()) == real
    assert int((X0.std(axis=0) > 0).sum()) == X0.shape[1]  # the text's definition: every map averaged
    off = _offsets(pub)
    for i, (name, _) in enumerate(pub.layers):
        a, b = off[i], off[i + 1]
        if name in ("c1", "r2", "r3"):
            # the mean over time and all F channels, then F-1 zeros (elmarc format_cnn_data on (B, T', F, 1))
            np.testing.assert_allclose(X[:, a], X0[:, a:b].mean(axis=1), rtol=1e-5)
            assert not X[:, a + 1:b].any()
        else:  # the front convs are averaged per channel either way
            np.testing.assert_array_equal(X[:, a:b], X0[:, a:b])


def test_published_means_only_touches_the_named_layers():
    import torch
    means = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    out = published_means(means, [("a", 2), ("b", 3), ("c", 1)], {"b"})
    assert out[:, :2].tolist() == means[:, :2].tolist() and out[:, 5].tolist() == means[:, 5].tolist()
    assert out[:, 2].tolist() == [3.0, 9.0] and not out[:, 3:5].any()
    assert means[0, 3] == 3  # the input is not modified


def test_other_front_ends_keep_their_features():
    """Only frame-level(-many) declare one-number layers; a waveform model at 12 kHz is unchanged."""
    waves = _noise(2, seconds=3.0)
    for arch in ("sample-level", "7x96"):
        a = ex.embed(ex.build_frontend(arch, width="small", as_published=True), waves, input_seconds=3.0, sr=12000, device="cpu")
        b = ex.embed(ex.build_frontend(arch, width="small"), waves, input_seconds=3.0, sr=12000, device="cpu")
        if arch == "sample-level":
            np.testing.assert_array_equal(a, b)
        else:  # spectrogram: only the reflect-padded first and last frames (2 of 141) move the means
            assert a.shape == b.shape and not np.array_equal(a, b)
            assert np.abs(a - b).max() < 0.05 * np.abs(b).max()


# ----------------------------------------------------------------------------- item 4: MFCC of a short clip

def test_mfcc_short_clip_repeated_whole_uncropped():
    w = tone(1000 / 12000, freq=300.0)
    assert w.shape == (1000,)
    pub = mfcc_statistics(w, published=True)
    tiled = np.tile(w, 3)  # 3000 samples: whole copies until >= 2048, nothing cropped (elmarc)
    m = librosa.feature.mfcc(y=tiled, sr=12000, n_mfcc=20, pad_mode="reflect")
    d = m[:, 1:] - m[:, :-1]
    dd = d[:, 1:] - d[:, :-1]
    want = np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1), dd.mean(1), dd.std(1)])
    np.testing.assert_allclose(pub, want, rtol=1e-5, atol=1e-4)
    text = mfcc_statistics(w)  # the default crops the repetition to 2048
    m2 = librosa.feature.mfcc(y=np.tile(w, 3)[:2048], sr=12000, n_mfcc=20)
    np.testing.assert_allclose(text[:20], m2.mean(1), rtol=1e-5, atol=1e-4)
    assert not np.allclose(pub, text)


def test_mfcc_front_end_follows_the_switch():
    w = [tone(0.1, freq=500.0)]
    a = ex.embed(ex.build_frontend("mfcc", as_published=True), w, sr=12000, device="cpu")
    np.testing.assert_allclose(a[0], mfcc_statistics(w[0], published=True), rtol=1e-6)
    b = ex.embed(ex.build_frontend("mfcc"), w, sr=12000, device="cpu")
    np.testing.assert_allclose(b[0], mfcc_statistics(w[0]), rtol=1e-6)


# ----------------------------------------------------------------------------- item 5: resampy, reflect-padded frames

def test_log_mel_reflect_padding_changes_only_the_edge_frames():
    w = _noise(1, seconds=2.0)[0]
    pub, text = audio.log_mel(w, published=True), audio.log_mel(w)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=w, sr=12000, n_fft=512, hop_length=256, n_mels=96, fmin=0.0, fmax=6000.0, power=2.0, pad_mode="reflect"),
        ref=1.0, amin=1e-10, top_db=80.0).T
    np.testing.assert_allclose(pub, ref, atol=1e-4)
    np.testing.assert_allclose(pub[2:-2], text[2:-2], atol=1e-4)  # frames that never reach the padding
    assert np.abs(pub[0] - text[0]).max() > 0.5


def test_resampling_is_resampy_kaiser_best(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.5, 16000, freq=700.0), sr=16000)
    spec = decode.InputSpec("waveform", 6000, "repeat", published=True)
    wave = decode.decode_cached(path, tmp_path / "cache", res_type=decode.res_type_of(spec))
    src = audio.load_audio(path, sr=16000)
    want = librosa.resample(src, orig_sr=16000, target_sr=12000, res_type="kaiser_best")[:6000]
    np.testing.assert_allclose(wave, want, atol=1e-6)
    default = decode.decode_cached(path, tmp_path / "cache")
    assert wave.shape == default.shape and not np.array_equal(wave, default)
    # two cache entries: the default key is unchanged, the study's filter has its own
    assert decode.cache_key(path) != decode.cache_key(path, res_type="kaiser_best")
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2


# ----------------------------------------------------------------------------- item 9: zero-padding in 0.0 dB

def test_zero_pad_appends_zero_db_frames():
    frames = np.full((10, 96), -30.0, np.float32)
    frames[0, 0] = 5.0
    pub = audio.repeat_frames(frames, 16, pad="zero", published=True)
    text = audio.repeat_frames(frames, 16, pad="zero")
    assert (pub[10:] == 0.0).all() and (text[10:] == 5.0 - audio.TOP_DB).all()
    np.testing.assert_array_equal(pub[:10], frames)
    # repetition is the same rule either way
    np.testing.assert_array_equal(audio.repeat_frames(frames, 25, published=True), audio.repeat_frames(frames, 25))


# ----------------------------------------------------------------------------- the feature set records it

def test_feature_set_records_the_switch_in_settings_and_key(tmp_path):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.6)
    kw = dict(dataset="folder", root=data, out=tmp_path / "fs", cache_dir=tmp_path / "cache", **SMALL)
    a = ex.extract("frame-level", input_seconds=0.5, **kw)
    b = ex.extract("frame-level", input_seconds=0.5, as_published=True, **kw)
    assert a != b
    ma, mb = (json.loads((f / "meta.json").read_text()) for f in (a, b))
    assert ma["as_published"] is False and mb["as_published"] is True
    assert mb["config"]["as_published"] is True and mb["input"]["published"] is True
    assert ma["config_key"] != mb["config_key"]
    with np.load(b / "features.npz") as z:
        X = z["X"]
    assert int((X.std(axis=0) > 0).sum()) <= 30 + 3
    # the same call again is served from the finished feature set
    assert ex.extract("frame-level", input_seconds=0.5, as_published=True, **kw) == b


def test_cli_flag(tmp_path):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.6)
    assert ex.main(["--arch", "frame-level", "--width", "small", "--dataset", "folder", "--root", str(data),
                    "--input-seconds", "0.5", "--out", str(tmp_path / "fs"), "--cache-dir", "none",
                    "--workers", "0", "--as-published"]) == 0
    (meta,) = list((tmp_path / "fs").rglob("meta.json"))
    assert json.loads(meta.read_text())["as_published"] is True
    assert ex.parse_args(["--as-published"]).as_published and not ex.parse_args([]).as_published
