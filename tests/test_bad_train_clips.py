"""Clips too short for the front-end in training (issue 19): skipped, recorded with the reason in the
run's meta.json and said on stderr, as extraction does; the other clips are trained on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audiodata import audio
from audiodata.datasets import Clip, Dataset
from audiodata.decode import InputSpec
from features import extract as ex
from trained import data
from trained.train import train

SR = 12000


def _dataset(folder, short: dict[int, int]):
    """12 clips of 1 s (two tones), the ones in ``short`` cut to that many samples."""
    t = np.arange(SR) / SR
    clips = []
    for i in range(12):
        wave = (0.5 * np.sin(2 * np.pi * (150 if i % 2 else 2500) * t)).astype(np.float32)
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, wave[:short.get(i, SR)], SR)
        clips.append(Clip(path, path.name, "low" if i % 2 else "high",
                          split=["train", "train", "val", "test"][(i // 2) % 4]))
    return Dataset("tones", folder, clips, ["high", "low"], "split")


def test_training_skips_too_short_clips_and_says_so(tmp_path, capsys):
    ds = _dataset(tmp_path, {0: 1, 1: 2, 4: 2})   # clips 0, 1 train, 4 val; sample-level needs 3 samples
    train(ds=ds, arch="sample-level", width="small", input_seconds=1.0, batch_size=2, workers=0,
          cache_dir=None, progress=False, epochs=1, evaluate=False, out=tmp_path / "runs",
          recipe="toolkit-2025")  # 1 s inputs: fewer frames than the released back-end's unpadded conv needs
    (meta_path,) = (tmp_path / "runs" / "tones").glob("sample-level_small_seed0-*/split/meta.json")
    meta = json.loads(meta_path.read_text())
    skipped = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in meta["skipped"]}
    why = "sample-level (the receptive field of its first convolution, 3 samples) needs at least 3 (0.2 ms)"
    assert skipped == {"clip00.wav": f"too short: 1 samples (0.1 ms at 12000 Hz) after decoding; {why}",
                       "clip01.wav": f"too short: 2 samples (0.2 ms at 12000 Hz) after decoding; {why}",
                       "clip04.wav": f"too short: 2 samples (0.2 ms at 12000 Hz) after decoding; {why}"}
    assert meta["n_train_rows"] == 6 and meta["n_val_rows"] == 1   # the other clips were used
    err = capsys.readouterr().err
    assert "train: skipped 2 of 8 clips:" in err and "val: skipped 1 of 2 clips:" in err
    assert "clip00.wav: too short: 1 samples" in err


def test_load_inputs_segments_and_spectrograms_skip_too_short(tmp_path, capsys):
    ds = _dataset(tmp_path, {0: 300, 1: 600})
    clips = ds.clips[:3]
    model = ex.build_frontend("frame-level", width="small", seed=0)
    spec = data.clip_spec(InputSpec("waveform", 2048), model, "frame-level")
    seg = data.load_inputs(clips, spec, segments=data.Segments(SR), progress=False, desc="seg")
    assert [s["path"].rsplit("/", 1)[-1] for s in seg.skipped] == ["clip00.wav"]
    assert "frame-level (the receptive field of its first convolution, 512 samples)" in seg.skipped[0]["reason"]
    assert sorted(set(seg.clip.tolist())) == [1, 2]
    # a spectrogram spec without a minimum (trained.evaluate's) still needs one log-mel window
    mel = data.load_inputs(clips, InputSpec("spectrogram", 94), progress=False, desc="mel")
    assert [s["path"].rsplit("/", 1)[-1] for s in mel.skipped] == ["clip00.wav"]
    assert f"one log-mel window of {audio.N_FFT} samples" in mel.skipped[0]["reason"]
    assert "seg: skipped 1 of 3 clips:" in capsys.readouterr().err


def test_every_clip_too_short_is_one_message(tmp_path):
    ds = _dataset(tmp_path, {i: 2 for i in range(12)})
    model = ex.build_frontend("sample-level", width="small", seed=0)
    spec = data.clip_spec(InputSpec("waveform", SR), model, "sample-level")
    with pytest.raises(data.DataError, match="none of the 3 clips could be decoded; first failure: .*too short"):
        data.load_inputs(ds.clips[:3], spec, progress=False)
