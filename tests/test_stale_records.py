"""Nothing stale is served (issue 19): decode error records that may have been transient are retried,
and ``--verify-audio content`` notices content replaced with the same size and mtime."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write_audio, write_class_folders
from audiodata import audio, datasets, decode
from features import extract as ex

SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False, "input_seconds": 0.5}
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _unreadable_until_fixed(monkeypatch, path):
    """``path`` fails to decode as a file that cannot be read (root reads anything, so the failure is
    simulated where decoding and the readability check meet the file)."""
    real_load, real_check = audio.load_audio, decode._unreadable

    def load(p, *a, **k):
        if str(p) == str(path):
            raise audio.AudioError(p, "unreadable or corrupt (Permission denied)")
        return real_load(p, *a, **k)

    monkeypatch.setattr(audio, "load_audio", load)
    monkeypatch.setattr(decode, "_unreadable", lambda p: "Permission denied" if str(p) == str(path) else real_check(p))

    def fix():
        monkeypatch.setattr(audio, "load_audio", real_load)
        monkeypatch.setattr(decode, "_unreadable", real_check)
    return fix


def test_an_unreadable_file_is_not_recorded_as_bad(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "a.wav", tone(0.2))
    fix = _unreadable_until_fixed(monkeypatch, path)
    with pytest.raises(audio.AudioError):
        decode.decode_cached(path, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.err.json"))
    fix()   # chmod: same size, same mtime
    assert decode.decode_cached(path, tmp_path / "cache").size == 2400


@pytest.mark.skipif(ROOT, reason="root reads a file whatever its mode")
def test_a_chmod_000_file_is_retried_after_chmod(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.2))
    path.chmod(0)
    try:
        with pytest.raises(audio.AudioError):
            decode.decode_cached(path, tmp_path / "cache")
    finally:
        path.chmod(0o644)
    assert decode.decode_cached(path, tmp_path / "cache").size == 2400


def test_content_errors_are_recorded_with_their_kind(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(audio.AudioError):
        decode.decode_cached(bad, tmp_path / "cache")
    (record,) = (tmp_path / "cache").rglob("*.err.json")
    assert json.loads(record.read_text())["kind"] == "content"


def test_an_old_record_without_a_kind_is_retried(tmp_path):
    """Records of older versions also held permission and I/O errors: decoded again, then replaced."""
    path = write_audio(tmp_path / "a.wav", tone(0.2))
    key = decode.cache_key(path)
    record = tmp_path / "cache" / key[:2] / f"{key}.err.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"path": str(path), "reason": "unreadable or corrupt (Permission denied)"}))
    assert decode.decode_cached(path, tmp_path / "cache").size == 2400
    assert not record.exists()


def test_fixed_file_is_extracted_into_a_fresh_out(tmp_path, monkeypatch):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.5)
    locked = data / "low" / "low1.wav"
    fix = _unreadable_until_fixed(monkeypatch, locked)
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", **SMALL)
    first = ex.extract("sample-level", out=tmp_path / "one", **kw)
    assert [s["id"] for s in json.loads((first / "meta.json").read_text())["skipped"]] == ["low/low1.wav"]
    fix()
    again = ex.extract("sample-level", out=tmp_path / "two", **kw)
    meta = json.loads((again / "meta.json").read_text())
    assert meta["skipped"] == [] and meta["n_clips"] == 4


def _replace_keeping_stamp(path, data):
    st = os.stat(path)
    write_audio(path, data, sr=16000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))   # what cp -p and tar do
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def _X(folder):
    with np.load(folder / "features.npz") as z:
        return z["X"].copy(), list(z["ids"])


def test_verify_audio_content_notices_what_the_stamp_cannot(tmp_path):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.5)
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", **SMALL)
    before, ids = _X(ex.extract("sample-level", out=tmp_path / "a", **kw))
    stamp_ds = datasets.load_dataset("folder", data, folds=None)
    content_key = datasets.dataset_key(datasets.load_dataset("folder", data, folds=None, verify_audio="content"))
    _replace_keeping_stamp(data / "low" / "low0.wav", tone(0.5, 16000, freq=3000.0))
    # the documented limit of the default: same size and mtime, same dataset key, the old features
    assert datasets.dataset_key(datasets.load_dataset("folder", data, folds=None)) == datasets.dataset_key(stamp_ds)
    stale, _ = _X(ex.extract("sample-level", out=tmp_path / "b", **kw))
    assert np.array_equal(stale, before)
    # content: another key, and the new content's features (the decode cache keyed by content too)
    assert datasets.dataset_key(datasets.load_dataset("folder", data, folds=None, verify_audio="content")) != content_key
    ds = datasets.load_dataset("folder", data, folds=None, verify_audio="content")
    fresh, fids = _X(ex.extract("sample-level", out=tmp_path / "c", ds=ds, **kw))
    truth, _ = _X(ex.extract("sample-level", out=tmp_path / "d", **{**kw, "cache_dir": None}))
    row = ids.index("low/low0.wav")
    assert fids == ids and not np.array_equal(fresh[row], before[row])
    assert np.array_equal(fresh, truth)
    (meta,) = (tmp_path / "c").glob("*/*/meta.json")
    assert all(len(c) == 5 for c in json.loads(meta.read_text())["clips"])   # [id, label, size, mtime, sha256]


def test_verify_audio_flag(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.5)
    argv = ["--arch", "sample-level", "--width", "small", "--dataset", "folder", "--root", str(data),
            "--input-seconds", "0.5", "--workers", "0", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "o")]
    assert ex.main(argv + ["--verify-audio", "content"]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    meta = json.loads((Path(folder) / "meta.json").read_text())
    assert [len(c) for c in meta["clips"]] == [5] * 4
    with pytest.raises(SystemExit):
        ex.main(argv + ["--verify-audio", "mtime"])
    assert "--verify-audio: invalid choice" in capsys.readouterr().err


def test_load_dataset_refuses_an_unknown_verify_mode(tmp_path):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.5)
    with pytest.raises(ValueError, match="verify_audio must be 'stamp' or 'content'"):
        datasets.load_dataset("folder", data, verify_audio="hash")
