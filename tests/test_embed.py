"""embed(): no silent assumptions (sr required, a named crop rule, windows with timestamps), and the same
features as extraction for the same file; extraction's --crop, counted in the summary and meta.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import write_audio
from audiodata import audio, decode
from features import extract as ex
from features.embed import embed

SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False}


def _noise(seconds, sr, seed):
    return (0.2 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def _load(folder):
    with np.load(folder / "features.npz") as z:
        return {k: z[k] for k in z.files}, json.loads((folder / "meta.json").read_text())


def test_sr_is_required():
    model = ex.build_frontend("sample-level", width="small", seed=0)
    with pytest.raises(ValueError, match="pass sr=, the sample rate of waves"):
        embed(model, [np.zeros(12000, np.float32)])
    with pytest.raises(ValueError, match="sr must be a positive integer"):
        embed(model, [np.zeros(12000, np.float32)], sr=0)
    with pytest.raises(ValueError, match="crop must be one of start, center, windows"):
        embed(model, [np.zeros(12000, np.float32)], sr=12000, crop="middle")


@pytest.mark.parametrize("arch", ["sample-level", "mfcc"])
def test_same_features_as_extraction_for_the_same_file(tmp_path, arch):
    """One second at 22 050 Hz is 12 000 samples at 12 kHz (librosa alone gives 12 001): embed() of the
    file's samples equals extraction of the file, byte for byte, also for a clip repeat-padded to the input."""
    root = tmp_path / "data"
    waves = {}
    for label, seed in (("a", 1), ("b", 2)):
        waves[label] = _noise(1.0, 22050, seed)
        write_audio(root / label / "x.wav", waves[label], sr=22050, subtype="FLOAT")
    folder = ex.extract(arch, dataset="folder", root=root, out=tmp_path / "fs", cache_dir=None,
                        input_seconds=2.0, **SMALL)
    arrays, _ = _load(folder)
    model = ex.build_frontend(arch, width="small", seed=0)
    read = [sf.read(root / label / "x.wav", dtype="float32") for label in ("a", "b")]
    assert {sr for _, sr in read} == {22050}
    X = embed(model, [samples for samples, _ in read], sr=22050, input_seconds=2.0, batch_size=2, device="cpu")
    rows = [list(arrays["ids"]).index(f"{label}/x.wav") for label in ("a", "b")]
    np.testing.assert_array_equal(X, arrays["X"][rows])  # the same batch as extraction's: the same bytes


def test_crop_rules_in_embed():
    """Two 3 s clips that differ only after 1.5 s: the start crop of a 1 s input cannot tell them apart;
    center and windows can. windows is the mean of the consecutive windows (the last repeat-padded)."""
    sr = 12000
    a = _noise(3.0, sr, 3)
    b = a.copy()
    b[int(1.5 * sr):] = _noise(1.5, sr, 4)
    model = ex.build_frontend("sample-level", width="small", seed=0)
    kw = dict(sr=sr, input_seconds=1.0, device="cpu")
    start = embed(model, [a, b], **kw)
    np.testing.assert_array_equal(start[0], start[1])
    for crop in ("center", "windows"):
        X = embed(model, [a, b], crop=crop, **kw)
        assert not np.allclose(X[0], X[1]), crop
    longer = _noise(2.5, sr, 5)  # 3 windows, the last half a second repeat-padded
    parts = [longer[:sr], longer[sr:2 * sr], audio.fit_length(longer[2 * sr:], sr)]
    windows = embed(model, [longer], crop="windows", **kw)[0]
    expected = embed(model, parts, **kw).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(windows, expected, rtol=1e-6, atol=1e-7)
    center = embed(model, [longer], crop="center", **kw)[0]
    off = (longer.size - sr) // 2  # 0.75 s: the middle second
    np.testing.assert_array_equal(center, embed(model, [longer[off:off + sr]], **kw)[0])


@pytest.mark.parametrize("arch", ["sample-level", "7x86"])
def test_hop_gives_windows_with_timestamps(arch):
    sr = 16000
    w = _noise(3.0, sr, 6)
    model = ex.build_frontend(arch, width="small", seed=0)
    [(X, t)] = embed(model, [w], sr=sr, input_seconds=1.0, hop=1.0, device="cpu")
    assert X.shape == (3, model.feature_length) and X.dtype == np.float32
    np.testing.assert_allclose(t, [0.5, 1.5, 2.5], atol=0.02)  # window centres, frame-quantised for 7x86
    first = embed(model, [w], sr=sr, input_seconds=1.0, device="cpu")[0]  # start crop = the first window
    np.testing.assert_allclose(X[0], first, rtol=1e-5, atol=1e-6)
    assert not np.allclose(X[0], X[2])
    [(X2, t2)] = embed(model, [w], sr=sr, input_seconds=1.0, hop=0.5, device="cpu")
    # 1 + ceil((n - input) / hop): 36 000 samples, 12 000 and 6000; or 141 frames, 47 and 23 (0.49 s)
    assert X2.shape[0] == {"sample-level": 5, "7x86": 6}[arch] and np.all(np.diff(t2) > 0)
    with pytest.raises(ValueError, match="hop must be a positive number of seconds"):
        embed(model, [w], sr=sr, hop=0)


def test_extraction_crop_counts_in_meta_and_summary(tmp_path, capsys):
    root = tmp_path / "data"
    for label, seed in (("a", 7), ("b", 8)):
        write_audio(root / label / "long.wav", _noise(2.5, 12000, seed), sr=12000)
        write_audio(root / label / "short.wav", _noise(0.5, 12000, seed + 10), sr=12000)
    kw = dict(dataset="folder", root=root, out=tmp_path / "fs", cache_dir=tmp_path / "cache",
              input_seconds=1.0, width="small", workers=0, batch_size=2)
    folders = {}
    for crop in decode.CROPS:
        folders[crop] = ex.extract("sample-level", crop=crop, **kw)
    assert len(set(folders.values())) == 3  # the rule is in the key: three feature sets
    start, center, windows = (_load(folders[c])[1]["crop"] for c in decode.CROPS)
    assert start["rule"] == "start" and start["n_cut"] == 2 and start["cut_s_max"] == pytest.approx(1.5)
    assert center["n_cut"] == 2 and windows["n_cut"] == 0
    assert windows["n_windowed"] == 2 and windows["windows_max"] == 3
    err = capsys.readouterr().err
    assert "crop start: 2 of 4 clips were longer than the input and were read at their start only" in err
    assert "crop windows: 2 of 4 clips were read as consecutive windows (at most 3)" in err
    Xs, Xw = _load(folders["start"])[0]["X"], _load(folders["windows"])[0]["X"]
    ids = list(_load(folders["start"])[0]["ids"])
    short = ids.index("a/short.wav")
    np.testing.assert_array_equal(Xs[short], Xw[short])  # a clip shorter than the input: the same either way
    longi = ids.index("a/long.wav")
    assert not np.allclose(Xs[longi], Xw[longi])
    # the spectrogram path (cached inputs) gives the same counts
    spec = _load(ex.extract("7x86", crop="windows", **kw))[1]["crop"]
    assert spec["n_windowed"] == 2 and spec["windows_max"] == 3


def test_cli_crop_flag(tmp_path):
    a = ex.parse_args(["--crop", "center"])
    assert a.crop == "center"
    with pytest.raises(SystemExit):
        ex.parse_args(["--crop", "middle"])
