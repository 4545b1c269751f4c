"""Extraction's --precision and out-of-memory halving, and embed()'s input checks."""
import json

import numpy as np
import pytest
import torch

import architectures
import features.extract as ex
from features import compute
from conftest import tone, write_class_folders


@pytest.fixture(scope="module")
def model():
    return architectures.build("sample-level", width="small", seed=0)


def test_embed_refuses_samples_first_stereo(model):
    stereo = np.stack([tone(2.0), tone(2.0, freq=880.0)], axis=1)  # (24000, 2): soundfile.read's layout
    with pytest.raises(ValueError, match=r"found \(24000, 2\): pass channels first"):
        ex.embed(model, [stereo], input_seconds=1.0, sr=12000, device="cpu")
    with pytest.raises(ValueError, match=r"expected \(batch, samples\) or \(samples,\), found \(24000, 2\)"):
        ex.embed(model, stereo, input_seconds=1.0, sr=12000, device="cpu")
    both = ex.embed(model, [stereo.T], input_seconds=1.0, sr=12000, device="cpu")  # channels first: mixed to mono
    mono = ex.embed(model, [stereo.mean(axis=1)], input_seconds=1.0, sr=12000, device="cpu")
    np.testing.assert_array_equal(both, mono)


def test_embed_scales_integer_pcm(model):
    w = tone(2.0, amplitude=0.5)
    pcm16 = np.round(w * 32767).astype(np.int16)
    from_int = ex.embed(model, [pcm16], input_seconds=1.0, sr=12000, device="cpu")
    from_float = ex.embed(model, [pcm16.astype(np.float32) / 32768], input_seconds=1.0, sr=12000, device="cpu")
    np.testing.assert_array_equal(from_int, from_float)
    pcm8 = np.round(w * 127 + 128).astype(np.uint8)  # 8-bit WAV: unsigned, centred at 128
    from_u8 = ex.embed(model, [pcm8], input_seconds=1.0, sr=12000, device="cpu")
    np.testing.assert_allclose(from_u8, from_float, rtol=0.05, atol=1e-3 * np.abs(from_float).max())
    with pytest.raises(ValueError, match="expected float or integer PCM samples, found dtype bool"):
        ex.embed(model, [w > 0], input_seconds=1.0, sr=12000, device="cpu")


def test_precision_is_part_of_the_key_and_bf16_stays_close(tmp_path):
    root = write_class_folders(tmp_path / "data", per_class=2, seconds=1.0)
    kw = dict(dataset="folder", root=root, width="small", input_seconds=1.0, out=tmp_path / "fs",
              cache_dir=tmp_path / "cache", workers=0, batch_size=2, progress=False, device="cpu")
    f32 = ex.extract("timbral", **kw)
    b16 = ex.extract("timbral", precision="bf16", **kw)
    assert f32 != b16  # other arithmetic, other feature set: never replaced, never reused
    meta = json.loads((b16 / "meta.json").read_text())
    assert meta["precision"] == "bf16" and meta["config"]["precision"] == "bf16"
    assert json.loads((f32 / "meta.json").read_text())["precision"] == "float32"
    with np.load(f32 / "features.npz") as a, np.load(b16 / "features.npz") as b:
        rel = np.abs(a["X"] - b["X"]).max() / np.abs(a["X"]).max()
    assert 0 < rel < 0.05, rel


def test_tf32_without_a_gpu_is_one_clear_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tf32 is valid here")
    rc = ex.main(["--arch", "temporal", "--width", "small", "--precision", "tf32", "--device", "cpu",
                  "--out", str(tmp_path / "fs"), "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "--precision tf32 uses NVIDIA tensor cores and needs --device cuda" in err
    assert "Traceback" not in err


def test_out_of_memory_halves_the_batch_and_keeps_every_clip(tmp_path, monkeypatch, capsys):
    root = write_class_folders(tmp_path / "data", per_class=4, seconds=1.0)
    kw = dict(dataset="folder", root=root, width="small", input_seconds=1.0, cache_dir=tmp_path / "cache",
              workers=0, device="cpu")
    reference = ex.extract("temporal", batch_size=2, out=tmp_path / "ref", progress=False, **kw)

    real = compute._features_of_batch

    def small_device(model, batch, dev, precision="float32"):
        if len(batch) > 2:  # a device that holds two clips at a time
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real(model, batch, dev, precision)

    monkeypatch.setattr(compute, "_features_of_batch", small_device)
    folder = ex.extract("temporal", batch_size=8, out=tmp_path / "oom", progress=True, **kw)
    assert "out of device memory at batch size 8: went on with batches of 2" in capsys.readouterr().err
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["batch_halvings"] == [[8, 4], [4, 2]] and meta["n_clips"] == 8 and not meta["skipped"]
    with np.load(reference / "features.npz") as a, np.load(folder / "features.npz") as b:
        assert list(a["ids"]) == list(b["ids"])
        np.testing.assert_array_equal(a["X"], b["X"])  # the same batches of 2: the same bytes
