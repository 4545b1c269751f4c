"""Clips extraction cannot use (issue 19): too short for the front-end, named in ``skipped``."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import tone, write_audio, write_class_folders
from audiodata import decode
from features import extract as ex

SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False, "input_seconds": 1.0}


@pytest.fixture
def data(tmp_path):
    root = write_class_folders(tmp_path / "data", per_class=2, seconds=0.5)
    write_audio(root / "low" / "one.wav", np.array([0.5], np.float32), sr=12000)
    write_audio(root / "high" / "ten.wav", tone(10 / 12000, 12000), sr=12000)
    write_audio(root / "high" / "five_hundred.wav", tone(500 / 12000, 12000), sr=12000)
    return root


def _skipped(folder) -> dict:
    meta = json.loads((folder / "meta.json").read_text())
    return {s["id"]: s["reason"] for s in meta["skipped"]}


def test_too_short_for_a_waveform_front_end_names_it(tmp_path, data):
    folder = ex.extract("frame-level", dataset="folder", root=data, out=tmp_path / "fs", cache_dir=None,
                        **SMALL)
    skipped = _skipped(folder)
    assert set(skipped) == {"low/one.wav", "high/ten.wav", "high/five_hundred.wav"}
    assert skipped["high/ten.wav"] == ("too short: 10 samples (0.8 ms at 12000 Hz) after decoding; frame-level "
                                       "(the receptive field of its first convolution, 512 samples) needs "
                                       "at least 512 (42.7 ms)")


def test_the_minimum_is_the_front_ends_own(tmp_path, data):
    """sample-level's first convolution sees 3 samples: a 10-sample clip is usable there, 1 sample is not."""
    folder = ex.extract("sample-level", dataset="folder", root=data, out=tmp_path / "fs", cache_dir=None,
                        **SMALL)
    skipped = _skipped(folder)
    assert set(skipped) == {"low/one.wav"}
    assert "sample-level (the receptive field of its first convolution, 3 samples)" in skipped["low/one.wav"]


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_too_short_for_the_log_mel_window_no_librosa_warning(tmp_path, data, cache):
    cache_dir = tmp_path / "cache" if cache else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = ex.extract("7x86", dataset="folder", root=data, out=tmp_path / "fs", cache_dir=cache_dir,
                            **SMALL)
    skipped = _skipped(folder)
    assert set(skipped) == {"low/one.wav", "high/ten.wav", "high/five_hundred.wav"}
    assert "7x86 (one log-mel window of 512 samples)" in skipped["high/five_hundred.wav"]
    assert not [w for w in caught if "n_fft" in str(w.message)]   # librosa's unattributed warning
    if cache:   # the second run reads the cached inputs and still knows each clip's length
        again = ex.extract("7x86", dataset="folder", root=data, out=tmp_path / "fs2", cache_dir=cache_dir,
                           **SMALL)
        assert _skipped(again) == skipped


def test_mfcc_baseline_too_short(tmp_path, data):
    folder = ex.extract("mfcc", dataset="folder", root=data, out=tmp_path / "fs", cache_dir=None, **SMALL)
    assert set(_skipped(folder)) == {"low/one.wav", "high/ten.wav", "high/five_hundred.wav"}


def test_too_short_rule():
    spec = decode.InputSpec("waveform", 100, "repeat", min_samples=8, min_why="x-net")
    assert decode.too_short(8, spec) is None
    assert decode.too_short(7, spec).startswith("too short: 7 samples")
    assert decode.too_short(0, decode.InputSpec("waveform", 100)) is None   # no minimum declared


def test_a_declared_minimum_wins(tmp_path):
    import torch

    class Net(torch.nn.Module):
        input_kind = "waveform"
        min_clip_samples = 4000

    need, why = ex.clip_minimum(Net(), "waveform", "my-net")
    assert need == 4000 and "my-net" in why
