"""--verify-audio in the study and in training (issue 19): content replaced with the same size and the
mtime restored (cp -p, tar) is noticed with ``content``, as extraction's flag does; ``stamp`` is the default."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from audiodata.datasets import Clip, Dataset
from audiodata.decode import InputSpec
from trained import data
from trained import train as T

SR = 12000


def _replace_keeping_stamp(path, wave):
    st = os.stat(path)
    sf.write(path, wave, SR, subtype="FLOAT")
    assert os.stat(path).st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("segments", [None, data.Segments(SR)], ids=["inputs", "segments"])
def test_training_inputs_follow_verify_audio(tmp_path, segments):
    path = tmp_path / "a.wav"
    sf.write(path, np.full(SR, 0.25, np.float32), SR, subtype="FLOAT")
    clips = [Clip(path, "a.wav", "x", split="train")]
    spec = InputSpec("waveform", SR, "repeat")
    cache = tmp_path / "cache"
    first = data.load_inputs(clips, spec, cache, segments=segments, progress=False)
    assert np.allclose(first.x, 0.25)
    _replace_keeping_stamp(path, np.full(SR, -0.5, np.float32))
    stale = data.load_inputs(clips, spec, cache, segments=segments, progress=False)
    assert np.allclose(stale.x, 0.25)     # stamp: the cache cannot tell (documented)
    fresh = data.load_inputs(clips, InputSpec("waveform", SR, "repeat", verify="content"), cache,
                             segments=segments, progress=False)
    assert np.allclose(fresh.x, -0.5)


def test_train_passes_verify_audio_to_its_decoding(tmp_path, monkeypatch):
    seen = []
    real = data.load_inputs

    def spy(clips, spec, *a, **k):
        seen.append(spec.verify)
        return real(clips, spec, *a, **k)

    monkeypatch.setattr(data, "load_inputs", spy)
    t = np.arange(SR) / SR
    clips = []
    for i in range(8):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, (0.5 * np.sin(2 * np.pi * (150 if i % 2 else 2500) * t)).astype(np.float32), SR)
        clips.append(Clip(p, p.name, "low" if i % 2 else "high", split=["train", "train", "val", "test"][(i // 2) % 4]))
    ds = Dataset("tones", tmp_path, clips, ["high", "low"], "split")
    T.train(ds=ds, arch="sample-level", width="small", input_seconds=1.0, batch_size=2, workers=0,
            cache_dir=tmp_path / "cache", progress=False, epochs=1, out=tmp_path / "runs",
            results_out=tmp_path / "res", verify_audio="content",
            recipe="toolkit-2025")  # 1 s inputs: fewer frames than the released back-end's unpadded conv needs
    assert seen == ["content", "content", "content"]   # train, val, then evaluate's test clips


def test_train_cli_flag(capsys):
    with pytest.raises(SystemExit) as e:
        T.main(["--verify-audio", "hash"])
    assert e.value.code == 2
    assert "--verify-audio: invalid choice: 'hash' (choose from 'stamp', 'content')" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        T.main(["--help"])
    assert "it uses no feature sets" in " ".join(capsys.readouterr().out.split())


class _Listed(Exception):
    pass


def test_study_flag_reaches_extraction_and_the_dataset(monkeypatch):
    from audiodata import datasets
    from studies import __main__ as S
    from studies.study import run_study
    a = S.parse_args(["--dataset", "synthetic", "--arch", "vgg", "--verify-audio", "content"])
    st = a.settings
    assert st.verify_audio == "content" and st.extract_settings().verify_audio == "content"
    assert S.parse_args(["--arch", "vgg"]).settings.extract_settings().verify_audio == "stamp"
    got = {}

    def listing(*args, **kwargs):
        got.update(kwargs)
        raise _Listed

    monkeypatch.setattr(datasets, "load_dataset", listing)
    with pytest.raises(_Listed):
        run_study(st, log=lambda m: None)
    assert got["verify_audio"] == "content"
