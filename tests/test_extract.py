"""The extraction pipeline: feature-set layout, decode once, bad clips, resume, determinism, CLI."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, interrupt_after_chunks, tone, write_audio, write_class_folders
from audiodata import audio, datasets, decode
from features import compute, extract as ex

SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False}


@pytest.fixture
def data(tmp_path):
    return write_class_folders(tmp_path / "data")


def _load(folder):
    with np.load(folder / "features.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads((folder / "meta.json").read_text())


@pytest.mark.parametrize("arch,length", [("sample-level", 112), ("7x96", 120), ("mfcc", 120)])
def test_feature_set_layout(tmp_path, data, arch, length):
    folder = ex.extract(arch, dataset="folder", root=data, out=tmp_path / "fs",
                        cache_dir=tmp_path / "cache", **SMALL)
    arrays, meta = _load(folder)
    assert folder.name.startswith(f"{arch}_small_random_seed0-") and meta["config_key"][:12] in folder.name
    assert arrays["X"].shape == (6, length) and arrays["X"].dtype == np.float32
    assert np.isfinite(arrays["X"]).all()
    assert list(arrays["ids"]) == sorted(arrays["ids"])
    assert set(arrays["y"]) == {"low", "high"}
    # folds belong to evaluation: a dataset without its own split or folds gets none here
    assert "fold" not in arrays and "split" not in arrays and meta["protocol_hint"] is None
    assert meta["feature_length"] == length and meta["n_clips"] == 6
    assert meta["layers"][-1]["stop"] == length
    assert sum(layer["channels"] for layer in meta["layers"]) == length
    for key in ("arch", "dataset", "seed", "skipped", "config", "versions", "commit", "timings",
                "n_params", "gflop_per_clip", "classes", "config_key", "features_sha256", "dataset_key",
                "code_version", "clips"):
        assert key in meta, key
    from importlib import metadata
    assert meta["versions"]["torch"] == metadata.version("torch")
    assert meta["versions"]["randomcnn"] == metadata.version("randomcnn")  # this project's own version
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: the commit the features were made with
        assert meta["commit"]["sha"] == head.stdout.strip()


def test_same_seed_same_bytes_other_seed_differs(tmp_path, data):
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", **SMALL)
    a = ex.extract("sample-level", out=tmp_path / "a", **kw)
    b = ex.extract("sample-level", out=tmp_path / "b", **kw)
    c = ex.extract("sample-level", out=tmp_path / "c", seed=1, **kw)
    assert (a / "features.npz").read_bytes() == (b / "features.npz").read_bytes()
    assert not np.array_equal(_load(a)[0]["X"], _load(c)[0]["X"])
    assert a.name == b.name and c.name.startswith("sample-level_small_random_seed1-")


def test_batch_mates_do_not_matter(tmp_path, data):
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", width="small",
              workers=0, progress=False)
    one = _load(ex.extract("vgg", out=tmp_path / "one", batch_size=1, **kw))[0]["X"]
    many = _load(ex.extract("vgg", out=tmp_path / "many", batch_size=4, **kw))[0]["X"]
    # oneDNN picks its convolution blocking per batch size, so float32 sums differ in their last bits
    # (~1e-5 of the scale); a leak through batch statistics would change features by tens of percent
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-4 * np.abs(one).max())


def test_decodes_each_file_once_across_architectures(tmp_path, data, monkeypatch):
    calls = []
    real = audio.load_audio
    monkeypatch.setattr(audio, "load_audio", lambda p, sr=12000: calls.append(p) or real(p, sr))
    paths = ex.extract_many(["sample-level", "7x96", "mfcc"], dataset="folder", root=data,
                            out=tmp_path / "fs", cache_dir=tmp_path / "cache", **SMALL)
    assert len(paths) == 3
    assert len(calls) == 6 and len(set(calls)) == 6


def test_bad_clips_are_skipped_with_reasons(tmp_path, data):
    (data / "low" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    (data / "high" / "empty.wav").write_bytes(b"")
    write_audio(data / "high" / "nan.wav", np.array([0.1, np.nan, 0.2] * 1000, np.float32),
                sr=16000, subtype="FLOAT")
    folder = ex.extract("sample-level", dataset="folder", root=data, out=tmp_path / "fs",
                        cache_dir=tmp_path / "cache", **SMALL)
    arrays, meta = _load(folder)
    assert arrays["X"].shape[0] == 6
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in meta["skipped"]}
    assert set(reasons) == {"corrupt.wav", "empty.wav", "nan.wav"}
    assert "empty" in reasons["empty.wav"] and "NaN" in reasons["nan.wav"]
    assert not any("corrupt" in i or "nan" in i or "empty" in i for i in arrays["ids"])


def test_nothing_extractable_is_an_error(tmp_path):
    root = tmp_path / "bad"
    for label in ("a", "b"):
        for i in range(3):
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / f"{i}.wav").write_bytes(b"not audio at all")
    with pytest.raises(ex.ExtractionError, match="nothing could be extracted"):
        ex.extract("mfcc", dataset="folder", root=root, out=tmp_path / "fs", cache_dir=None,
                   **SMALL)


def test_resume_gives_identical_bytes_and_recomputes_nothing(tmp_path, monkeypatch):
    root = write_class_folders(tmp_path / "data", per_class=6, seconds=0.5)
    kw = dict(dataset="folder", root=root, cache_dir=tmp_path / "cache", width="small",
              workers=0, batch_size=1, progress=False)
    whole = ex.extract("sample-level", out=tmp_path / "whole", **kw)
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 2)  # 12 clips -> 6 chunks of 2
    interrupt_after_chunks(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        ex.extract("sample-level", out=tmp_path / "resumed", **kw)
    monkeypatch.undo()
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 2)
    partial = tmp_path / "resumed" / "folder" / (whole.name + ".partial")
    assert len(list(partial.glob("chunk_*.npz"))) == 2
    seen = []
    real = compute._features_of_batch
    monkeypatch.setattr(compute, "_features_of_batch", lambda m, b, d, *p: seen.append(len(b)) or real(m, b, d, *p))
    resumed = ex.extract("sample-level", out=tmp_path / "resumed", **kw)
    assert sum(seen) == 8  # only the 4 unfinished chunks (8 clips) were computed again
    assert not partial.exists()
    assert (whole / "features.npz").read_bytes() == (resumed / "features.npz").read_bytes()
    # a finished feature set with the same configuration is not recomputed
    seen.clear()
    ex.extract("sample-level", out=tmp_path / "resumed", **kw)
    assert seen == []


def test_changed_configuration_does_not_reuse_partials(tmp_path, data, monkeypatch):
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", workers=0,
              batch_size=1, progress=False, width="small")
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)
    interrupt_after_chunks(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        ex.extract("sample-level", out=tmp_path / "fs", **kw)
    monkeypatch.undo()
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)
    other = ex.extract("sample-level", out=tmp_path / "fs", pad="zero", **kw)
    ref = ex.extract("sample-level", out=tmp_path / "ref", pad="zero", **kw)
    assert (other / "features.npz").read_bytes() == (ref / "features.npz").read_bytes()
    # the interrupted run's chunks are another configuration's work: left alone, in their own folder
    partials = list((tmp_path / "fs" / "folder").glob("*.partial"))
    assert len(partials) == 1 and len(list(partials[0].glob("chunk_*.npz"))) == 1
    assert partials[0].name != other.name + ".partial"


def test_decode_cache_key_follows_the_file(tmp_path):
    p = write_audio(tmp_path / "x.wav", tone(0.2, 12000), sr=12000)
    k1 = decode.cache_key(p)
    write_audio(p, tone(0.3, 12000), sr=12000)
    assert decode.cache_key(p) != k1
    wave = decode.decode_cached(p, tmp_path / "cache")
    again = decode.decode_cached(p, tmp_path / "cache")
    assert np.array_equal(wave, again) and len(list((tmp_path / "cache").rglob("*.npy"))) == 1


def test_embed_matches_extract(tmp_path, data):
    folder = ex.extract("7x96", dataset="folder", root=data, out=tmp_path / "fs",
                        cache_dir=None, **SMALL)
    arrays, _ = _load(folder)
    ds = datasets.load_dataset("folder", root=data, folds=None)
    waves = [audio.load_audio(c.path) for c in ds.clips]
    model = ex.build_frontend("7x96", width="small", seed=0)
    X = ex.embed(model, waves, sr=audio.SAMPLE_RATE, batch_size=2, device="cpu")
    np.testing.assert_allclose(X, arrays["X"], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        ex.embed(model, [np.array([0.0, np.nan], np.float32)], sr=12000)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "features.extract", *args], cwd=cwd,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})


def test_cli_last_line_is_the_path_and_errors_are_clear(tmp_path, data):
    r = _cli("--arch", "mfcc", "--dataset", "folder", "--root", str(data),
             "--out", str(tmp_path / "fs"), "--workers", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    folder = Path(last) if Path(last).is_absolute() else tmp_path / last
    assert (folder / "features.npz").is_file() and (folder / "meta.json").is_file()
    assert folder.parent == (tmp_path / "fs" / "folder").resolve() or folder.parent == tmp_path / "fs" / "folder"
    assert "mfcc_large_random_seed0-" in last
    bad = _cli("--arch", "resnet", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown architecture 'resnet'" in bad.stderr
    assert "sample-level" in bad.stderr and "vgg" in bad.stderr
    missing = _cli("--arch", "mfcc", "--dataset", "gtzan", "--root", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 1 and str(tmp_path / "nope") in missing.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tmp_path, data):
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", **SMALL)
    cpu = _load(ex.extract("vgg", out=tmp_path / "cpu", device="cpu", **kw))[0]["X"]
    gpu = _load(ex.extract("vgg", out=tmp_path / "gpu", device="cuda", **kw))[0]["X"]
    # extraction runs float32 with TF32 off (toolkit.device.precision_context): CPU-equal to 1e-5
    assert np.abs(gpu - cpu).max() <= 1e-5 * np.abs(cpu).max()


def test_decode_errors_are_cached_and_reported_again(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(audio.AudioError) as first:
        decode.decode_cached(bad, tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("*.err.json"))) == 1
    with pytest.raises(audio.AudioError) as again:
        decode.decode_cached(bad, tmp_path / "cache")
    assert again.value.reason == first.value.reason


def test_spectrogram_inputs_are_computed_once(tmp_path, data, monkeypatch):
    calls = []
    real = audio.spectrogram_input
    monkeypatch.setattr(audio, "spectrogram_input",
                        lambda w, n, pad="repeat": calls.append(n) or real(w, n, pad=pad))
    kw = dict(dataset="folder", root=data, cache_dir=tmp_path / "cache", **SMALL)
    a = ex.extract("7x96", out=tmp_path / "a", **kw)
    b = ex.extract("7x86", out=tmp_path / "b", **kw)
    assert len(calls) == 6  # 6 clips, two spectrogram front-ends
    uncached = ex.extract("7x96", out=tmp_path / "c", **{**kw, "cache_dir": None})
    assert (a / "features.npz").read_bytes() == (uncached / "features.npz").read_bytes()
    assert b.exists()


def test_layer_means_match_float64():
    g = torch.Generator().manual_seed(0)
    maps = [torch.rand(2, 16, 116666, generator=g) * 3, torch.rand(2, 8, 344, 48, generator=g),
            torch.rand(2, 120, generator=g)]
    got = ex.layer_means(maps)
    want = torch.cat([m.double().reshape(2, m.shape[1], -1).mean(dim=2) for m in maps], dim=1)
    assert got.dtype == torch.float32 and got.shape == (2, 16 + 8 + 120)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_samplecnn_checkpoint_reads_out_like_a_front_end(tmp_path, data):
    from architectures.checkpoint import KEYS
    from trained.checkpoint import save_checkpoint
    from architectures.samplecnn import SampleCNN
    torch.manual_seed(0)
    channels = [4, 4, 4, 4, 4, 4, 4, 4, 4, 8]
    model = SampleCNN(2, "se", channels=channels).eval()
    ckpt = {k: None for k in KEYS}
    ckpt.update(arch="samplecnn", dims=model.dims, state_dict=model.state_dict(), backend_state_dict={},
                fold=None, dataset="folder", config={}, history=[], epoch=1, optimizer_state_dict={})
    path = save_checkpoint(tmp_path / "samplecnn.pt", ckpt)
    folder = ex.extract("samplecnn", dataset="folder", root=data, out=tmp_path / "fs", weights=path,
                        cache_dir=tmp_path / "cache", input_seconds=3.0, **SMALL)
    arrays, meta = _load(folder)
    assert folder.name.startswith("samplecnn_small_trained_seed0-")
    assert arrays["X"].shape == (6, sum(channels)) and meta["weights"] == "trained"
    assert [layer["name"] for layer in meta["layers"]] == ["conv0"] + [f"block{i}" for i in range(1, 10)]
    assert meta["input"]["sr"] == 22050 and meta["input"]["length"] == 66150
    with pytest.raises(ex.ExtractionError, match="--weights"):
        ex.build_frontend("samplecnn")


def test_a_released_recipe_checkpoint_is_fed_the_standardised_log_mel_it_was_trained_on(tmp_path, data):
    """trained.train's released recipe standardises the log-mel by the training portion's mean and std
    (config["input_stats"]); extraction from that checkpoint feeds the front-end the same values: its
    features equal those of the same weights on (x - mean) / std, and differ from raw dB."""
    from architectures import build
    from architectures.checkpoint import KEYS
    from audiodata.decode import model_input
    from features.embed import input_spec
    from trained.checkpoint import save_checkpoint
    model = build("7x86", "small", seed=0).eval()
    mean, std = -42.5, 17.25
    ckpt = {k: None for k in KEYS}
    ckpt.update(arch="7x86", dims=model.dims, state_dict=model.state_dict(), backend_state_dict={}, fold=None,
                dataset="folder", config={"input_stats": {"mean": mean, "std": std}}, history=[], epoch=1,
                optimizer_state_dict={})
    path = save_checkpoint(tmp_path / "released.pt", ckpt)
    folder = ex.extract("7x86", dataset="folder", root=data, out=tmp_path / "fs", weights=path,
                        cache_dir=tmp_path / "cache", input_seconds=3.0, **SMALL)
    arrays, meta = _load(folder)
    assert meta["input"]["standardise"] == [mean, std]
    raw_spec = input_spec(model, 3.0)
    clip = next(p for p in data.rglob("*.wav") if p.name == arrays["ids"][0].split("/")[-1])
    from audiodata import audio
    x = model_input(audio.load_audio(clip), raw_spec)
    with torch.no_grad():
        want = ex.layer_means(model.extract_features(torch.from_numpy((x - np.float32(mean)) / np.float32(std))[None]))
        raw = ex.layer_means(model.extract_features(torch.from_numpy(x)[None]))
    np.testing.assert_allclose(arrays["X"][0], want.numpy()[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(arrays["X"][0], raw.numpy()[0], rtol=1e-3)
