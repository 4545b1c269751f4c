"""The HEAR interface both ways: our front-ends as HEAR modules, and HEAR modules as front-ends."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tone, write_audio
from audiodata import audio, datasets
from features import extract as ex
from features.hear_adapter import HearError, HearFrontend
from hear import MODULES, common

HEAR_RATES = (16000, 22050, 32000, 44100, 48000)  # hear-validator's accepted sample rates
FAST = "width=small,input_seconds=3"


def _folder_dataset(root, per_class=6, seconds=0.5, sr=16000):
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        for i in range(per_class):
            write_audio(root / label / f"{label}{i}.wav", tone(seconds, sr, freq=freq * (1 + 0.03 * i)), sr=sr)
    return root


@pytest.mark.parametrize("arch", ["sample-level", "7x96", "timbral+temporal", "mfcc"])
def test_modules_follow_the_hear_api(arch):
    """What hear-validator checks: attributes, dtypes, shapes, regular timestamps <= 50 ms apart."""
    mod = __import__(MODULES[arch], fromlist=["load_model"])
    model = mod.load_model(FAST)
    assert isinstance(model, torch.nn.Module) and model.sample_rate in HEAR_RATES
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    noise = torch.rand((4, 2 * model.sample_rate), generator=torch.Generator().manual_seed(0)) * 2 - 1
    emb, ts = mod.get_timestamp_embeddings(noise, model)
    assert emb.dtype == torch.float32 and emb.ndim == 3 and ts.ndim == 2
    assert emb.shape[0] == 4 and emb.shape[:2] == ts.shape
    assert emb.shape[2] == model.timestamp_embedding_size and torch.isfinite(emb).all()
    diff = torch.diff(ts)
    assert diff.mean() <= 50.0 and torch.all((diff - diff.mean()).abs() < 1e-3)
    assert ts[0, -1] <= 2000.0 and ts.shape[1] == 80  # covers the 2 s clip, every 25 ms
    scene = mod.get_scene_embeddings(noise[:, : int(0.37 * model.sample_rate)], model)
    assert scene.dtype == torch.float32 and scene.shape == (4, model.scene_embedding_size)


def test_every_front_end_has_a_module():
    import architectures
    assert set(MODULES) == set(architectures.ARCHITECTURES)
    for arch, name in MODULES.items():
        mod = __import__(name, fromlist=["ARCH"])
        assert mod.ARCH == arch and callable(mod.get_timestamp_embeddings)


def test_scene_embeddings_equal_features_extract(tmp_path):
    """Our module through the HEAR functions == features.extract on the same files (16 kHz wavs)."""
    root = _folder_dataset(tmp_path / "data", per_class=2)
    folder = ex.extract("7x96", dataset="folder", root=root, out=tmp_path / "fs", cache_dir=None,
                        width="small", workers=0, batch_size=2, progress=False)
    with np.load(folder / "features.npz") as z:
        X = z["X"]
    import hear.randomcnn_7x96 as m
    model = m.load_model("width=small")
    ds = datasets.load_dataset("folder", root=root, folds=2)
    H = np.concatenate([m.get_scene_embeddings(torch.from_numpy(audio.load_audio(c.path, sr=16000))[None],
                                               model).numpy() for c in ds.clips])
    np.testing.assert_array_equal(H, X)


def test_timestamp_embeddings_cover_audio_longer_than_the_input():
    import hear.randomcnn_sample_level as m
    model = m.load_model("width=small,input_seconds=1")
    gen = np.random.default_rng(0)
    a = torch.from_numpy(np.stack([tone(2.6, 16000, freq=440.0) * np.linspace(0.2, 1.0, 41600, dtype=np.float32),
                                   np.clip(0.2 * gen.standard_normal(41600), -1, 1).astype(np.float32)]))
    emb, ts = m.get_timestamp_embeddings(a, model)
    # the timestamps themselves: every 25 ms from 12.5 ms, as many as fit in the 2.6 s
    assert ts.dtype == torch.float32 and ts.shape == (2, 104)
    np.testing.assert_array_equal(ts.numpy(), np.tile(12.5 + 25.0 * np.arange(104), (2, 1)))
    assert emb.shape == (2, 104, model.timestamp_embedding_size) and torch.isfinite(emb).all()
    # the values: frames of each 1 s window (the third, 2 s .. 2.6 s, real audio repeat-padded) placed at
    # their centres, window k's frame j at 1000 k + (j + 0.5) * 1000 / T ms, linearly interpolated (np.interp)
    window = model.window
    assert window == 12000  # 1 s at 12 kHz
    for clip, got in zip(a.numpy(), emb.numpy()):
        wave = audio.resample(clip, 16000, 12000)
        frames, centres = [], []
        for k in range(3):
            x = audio.waveform_input(wave[k * window:(k + 1) * window], window)
            with torch.inference_mode():
                f = model.frontend.forward(torch.from_numpy(x)[None])[0].numpy()  # (C, T)
            frames.append(f)
            centres.append(1000.0 * k + (np.arange(f.shape[1]) + 0.5) * 1000.0 / f.shape[1])
        frames, centres = np.concatenate(frames, axis=1), np.concatenate(centres)
        assert frames.shape == (16, 15)  # 5 frames per window
        want = np.stack([np.interp(ts[0].numpy(), centres, row) for row in frames], axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
        # and the third window is real audio, not the first window's frames again
        assert not np.allclose(frames[:, 10:], frames[:, :5], rtol=1e-2, atol=1e-3 * np.abs(frames).max())


def test_options_from_path_and_environment(monkeypatch, tmp_path):
    assert common.parse_options("") == {"checkpoint": None, "seed": 0, "width": "large",
                                        "input_seconds": None, "batch_size": 8}
    monkeypatch.setenv(common.ENV_OPTIONS, "seed=3,width=small")
    opts = common.parse_options("seed=5")
    assert opts["seed"] == 5 and opts["width"] == "small"  # the path overrides the environment
    with pytest.raises(ValueError, match="unknown option 'depth'.*seed, width"):
        common.parse_options("depth=3")
    with pytest.raises(ValueError, match="seed='x' is not a valid int"):
        common.parse_options("seed=x")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        common.parse_options(str(tmp_path / "missing.pt"))
    monkeypatch.delenv(common.ENV_OPTIONS)
    a = common.load_model("mfcc", "seed=1")
    assert a.weights_name == "random" and a.options["seed"] == 1
    with pytest.raises(ValueError, match=r"expected a tensor \(n_sounds, n_samples\)"):
        common.get_scene_embeddings(torch.zeros(16000), a)


TINY = '''
"""A small HEAR-style module: log energies in 8 bands of one FFT frame per 20 ms, averaged."""
import torch

class Tiny(torch.nn.Module):
    sample_rate = 22050
    scene_embedding_size = 8
    timestamp_embedding_size = 8

    def __init__(self):
        super().__init__()
        self.edges = torch.nn.Parameter(torch.linspace(0, 1, 9), requires_grad=False)

def load_model(model_file_path=""):
    return Tiny()

def _frames(audio, model):
    frames = audio.unfold(1, 441, 441)                   # (n, frames, 441): 20 ms
    spec = torch.fft.rfft(frames, dim=-1).abs() ** 2     # (n, frames, 221)
    bands = torch.tensor_split(spec, 8, dim=-1)
    return torch.stack([torch.log(b.sum(-1) + 1e-6) for b in bands], dim=-1)

def get_timestamp_embeddings(audio, model):
    emb = _frames(audio, model)
    ts = (torch.arange(emb.shape[1]) * 20.0 + 10.0).expand(audio.shape[0], -1)
    return emb, ts

def get_scene_embeddings(audio, model):
    return _frames(audio, model).mean(dim=1)
'''


@pytest.fixture
def tiny_module(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "tiny_hear.py").write_text(TINY)
    (tmp_path / "mods" / "half_hear.py").write_text("def load_model(model_file_path=''):\n    return None\n")
    (tmp_path / "mods" / "noattr_hear.py").write_text(
        TINY.replace("    timestamp_embedding_size = 8\n", ""))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    return "tiny_hear"


def test_a_hear_module_is_extracted_and_graded(tmp_path, tiny_module):
    root = _folder_dataset(tmp_path / "data", sr=44100)
    folder = ex.extract(f"hear:{tiny_module}", dataset="folder", root=root, out=tmp_path / "fs",
                        cache_dir=tmp_path / "cache", input_seconds=1.0, workers=0, batch_size=4,
                        progress=False)
    with np.load(folder / "features.npz") as z:
        X, y = z["X"], z["y"]
    meta = json.loads((folder / "meta.json").read_text())
    assert X.shape == (12, 8) and np.isfinite(X).all()
    assert meta["layers"] == [{"name": "scene", "channels": 8, "start": 0, "stop": 8}]
    assert meta["arch"] == "hear:tiny_hear" and meta["weights"] == "trained"
    assert meta["input"]["sr"] == 22050 and meta["input"]["length"] == 22050
    assert meta["gflop_per_clip"] is None
    # the embedding sees the audio at its own rate: the 1760 Hz tones put energy in a higher band
    assert (X[y == "high"][:, 1:].sum(1) > X[y == "low"][:, 1:].sum(1).max()).all()
    from classifiers.grid import run_grid
    res = json.loads(run_grid([folder], classifier="svm", grid="small", out=tmp_path / "res",
                              folds=3, progress=False).read_text())
    accs = {e["protocol"]: e["mean"] for e in res["entries"]}
    assert res["arch"] == "hear:tiny_hear" and accs and min(accs.values()) >= 0.9, accs


def test_missing_functions_and_attributes_are_named(tiny_module):
    with pytest.raises(HearError, match="lacks the HEAR function.*get_scene_embeddings, get_timestamp_embeddings"):
        HearFrontend("half_hear")
    with pytest.raises(HearError, match="lacks the HEAR attribute.*timestamp_embedding_size"):
        HearFrontend("noattr_hear")
    with pytest.raises(HearError, match="cannot import module 'no_such_hear_module'"):
        HearFrontend("no_such_hear_module")
    with pytest.raises(ex.ExtractionError, match="--seed must stay 0"):
        ex.extract(f"hear:{tiny_module}", seed=1, progress=False)


def test_cli_hear_arch_errors_are_clear(tmp_path, capsys):
    assert ex.main(["--arch", "hear:no_such_hear_module", "--workers", "0", "--out", str(tmp_path)]) == 1
    assert "cannot import module 'no_such_hear_module'" in capsys.readouterr().err


def test_our_module_through_the_adapter(tmp_path):
    """hear:hear.randomcnn_mfcc writes a normal feature set; audio decoded at 16 kHz comes close to the
    12 kHz pipeline (padding then resampling differs from resampling then padding at the seams)."""
    root = _folder_dataset(tmp_path / "data", per_class=2, seconds=3.0)
    kw = dict(dataset="folder", root=root, out=tmp_path / "fs", cache_dir=tmp_path / "cache",
              input_seconds=2.0, workers=0, batch_size=2, progress=False)
    via = ex.extract("hear:hear.randomcnn_mfcc", weights="input_seconds=2", **kw)
    direct = ex.extract("mfcc", **kw)
    meta = json.loads((via / "meta.json").read_text())
    assert meta["weights"] == "random" and meta["feature_length"] == 120
    assert via.name.startswith("hear-hear.randomcnn_mfcc_large_random_seed0-")
    with np.load(via / "features.npz") as a, np.load(direct / "features.npz") as b:
        assert list(a["ids"]) == list(b["ids"])
        # each clip's 120-vector within 1% (L2) of the direct one; measured: at most 0.43%
        rel = np.linalg.norm(a["X"] - b["X"], axis=1) / np.linalg.norm(b["X"], axis=1)
        assert rel.max() < 0.01, rel


@pytest.mark.parametrize("arch", ["sample-level", "7x96", "timbral+temporal"])
def test_a_batch_embeds_as_each_clip_alone(arch):
    """Scene and timestamp embeddings of 3 sounds together == each sound alone. batch_size=4 with 1.6 s
    sounds and a 1 s input (2 windows per sound): the timestamp path runs windows of sounds 0 and 1 in one
    forward pass and sound 2's in a shorter last one; the scene path runs batches of 3 and of 1."""
    mod = __import__(MODULES[arch], fromlist=["load_model"])
    model = mod.load_model("width=small,input_seconds=1,batch_size=4")
    gen = np.random.default_rng(1)
    n = int(1.6 * model.sample_rate)
    a = torch.from_numpy(np.stack([np.clip(0.2 * gen.standard_normal(n), -1, 1),
                                   tone(1.6, model.sample_rate, freq=330.0),
                                   np.clip(0.1 * gen.standard_normal(n), -1, 1) + tone(1.6, model.sample_rate, freq=2000.0) * 0.5
                                   ]).astype(np.float32))
    scene = mod.get_scene_embeddings(a, model)
    emb, ts = mod.get_timestamp_embeddings(a, model)
    alone = [(mod.get_scene_embeddings(a[i:i + 1], model), *mod.get_timestamp_embeddings(a[i:i + 1], model))
             for i in range(3)]
    s1 = torch.cat([s for s, _, _ in alone])
    e1 = torch.cat([e for _, e, _ in alone])
    assert torch.equal(ts, torch.cat([t for _, _, t in alone]))
    worst = [float(((scene - s1).abs() / s1.abs().amax(dim=1, keepdim=True)).max()),
             float(((emb - e1).abs() / e1.abs().amax(dim=(1, 2), keepdim=True)).max())]
    # measured: 2.0e-7 of the largest value (sample-level's scene: float32 rounding), 0 elsewhere
    assert max(worst) < 1e-6, worst
    assert not torch.allclose(e1[0], e1[1], rtol=1e-2)  # the sounds differ: a mix-up would show
