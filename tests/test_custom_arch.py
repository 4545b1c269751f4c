"""Your own front-end: ``features.extract --arch pkg.mod:Class`` / ``file.py:factory`` (architectures/custom.py)."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from architectures import custom
from architectures.custom import CustomArchError, CustomFrontend, parse_options
from classifiers.grid import run_grid
from report.build import render_report
from conftest import REPO, tone, write_class_folders
from features import extract as ex

WAVE = "examples.waveform_cnn:WaveformCNN"
SPEC_FILE = str(REPO / "examples" / "spectrogram_cnn.py") + ":SpectrogramCNN"
KW = {"width": "small", "workers": 0, "batch_size": 2, "progress": False, "input_seconds": 2.0}


@pytest.fixture
def data(tmp_path):
    return write_class_folders(tmp_path / "data", per_class=3)


def _module(tmp_path, body: str, name: str = "user_net.py") -> str:
    path = tmp_path / name
    path.write_text("import torch\nfrom torch import nn\n\n" + textwrap.dedent(body))
    return str(path)


def test_both_examples_extract_grid_report(tmp_path, data):
    results = []
    for arch, n_layers in ((WAVE, 7), (SPEC_FILE, 6)):
        sets = [ex.extract(arch, dataset="folder", root=data, out=tmp_path / "fs", cache_dir=tmp_path / "c",
                           seed=s, **KW) for s in (0, 1)]
        meta = json.loads((sets[0] / "meta.json").read_text())
        with np.load(sets[0] / "features.npz") as z:
            X = z["X"]
        assert X.shape == (6, meta["feature_length"]) and np.isfinite(X).all()
        assert len(meta["layers"]) == n_layers and meta["layers"][-1]["stop"] == X.shape[1]
        assert meta["model_identity"]["spec"] == arch and meta["gflop_per_clip"] > 0
        assert ":" not in sets[0].name and "/" not in sets[0].name
        results.append(run_grid([str(p) for p in sets], classifier="svm", grid="small", progress=False,
                                folds=3, out=tmp_path / "res" / sets[0].name))
    names = [layer["name"] for layer in json.loads((tmp_path / "fs").joinpath(
        "folder").glob("waveform_cnn*seed0-*").__next__().joinpath("meta.json").read_text())["layers"]]
    # hooks name layers by module path, in the order they run: the first conv is read after its ReLU
    assert names == ["frontend.0", "blocks.0.0", "blocks.0.2", "blocks.1.0", "blocks.1.2", "blocks.2.0",
                     "blocks.2.2"]
    report = render_report([str(r) for r in results], out=tmp_path / "report", log=lambda m: None)
    md = (report / "report.md").read_text()
    assert "New front-ends among the study's" in md
    assert "spectrogram_cnn.SpectrogramCNN" in md and "waveform_cnn.WaveformCNN" in md


def test_hooks_and_extract_features_agree():
    waves = [tone(2.0, freq=f) for f in (220.0, 880.0, 1500.0)]
    own = CustomFrontend(SPEC_FILE, seed=3, width="small")
    hooked = CustomFrontend(SPEC_FILE, seed=3, width="small", layer_types="conv,pool")
    assert not own.use_hooks and hooked.use_hooks
    assert [c for _, c in own.layers] == [c for _, c in hooked.layers] == [20] * 6
    a = ex.embed(own, waves, sr=12000, input_seconds=2.0, device="cpu")
    b = ex.embed(hooked, waves, sr=12000, input_seconds=2.0, device="cpu")
    assert a.shape == (3, 120) and np.ptp(a) > 0
    np.testing.assert_array_equal(a, b)
    assert own.identity != hooked.identity and own.arch_name != hooked.arch_name


def test_hook_reads_after_norm_and_activation(tmp_path):
    spec = _module(tmp_path, """
        class Net(nn.Module):
            input_kind = "waveform"
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(1, 4, 9, stride=4)
                self.bn = nn.BatchNorm1d(4)
                self.act = nn.ReLU()
            def forward(self, x):
                return self.act(self.bn(self.conv(x[:, None])))
        """) + ":Net"
    m = CustomFrontend(spec, seed=0)
    x = torch.randn(2, 4000)
    (out,) = m.extract_features(x)
    torch.testing.assert_close(out, m.net(x), rtol=0, atol=0)
    assert out.min() >= 0  # the ReLU's output, not the conv's
    assert m.layers == [("conv", 4)]


def test_functional_activations_and_poolings_are_seen(tmp_path):
    """F.relu / torch.relu / x.relu() and F.max_pool1d inside forward: each conv is read after its ReLU and
    each functional pooling is a layer (5 layers; hooks alone gave 3, read before their ReLUs)."""
    spec = _module(tmp_path, """
        import torch.nn.functional as F
        class Net(nn.Module):
            input_kind = "waveform"
            input_seconds = 1.0
            def __init__(self):
                super().__init__()
                self.c1, self.c2, self.c3 = nn.Conv1d(1, 6, 9), nn.Conv1d(6, 6, 3), nn.Conv1d(6, 6, 3)
                self.pool = nn.MaxPool1d(2)
            def forward(self, x):
                x = F.max_pool1d(F.relu(self.c1(x[:, None])), 3)
                if x.shape[-1] > 10:  # control flow: still seen
                    x = F.max_pool1d(torch.relu(self.c2(x)), 3)
                return self.pool(self.c3(x).relu())
        """) + ":Net"
    m = CustomFrontend(spec, seed=0)
    assert [n for n, _ in m.layers] == ["c1", "max_pool1d", "c2", "max_pool1d#2", "c3", "pool"]
    x = torch.randn(2, 12000)
    outs = m.extract_features(x)
    assert all(o.min() >= 0 for o in outs)  # every conv read after its functional ReLU
    import torch.nn.functional as F
    h1 = F.relu(m.net.c1(x[:, None]))
    torch.testing.assert_close(outs[0], h1, rtol=0, atol=0)
    torch.testing.assert_close(outs[1], F.max_pool1d(h1, 3), rtol=0, atol=0)
    torch.testing.assert_close(outs[-1], m.net(x), rtol=0, atol=0)
    X = ex.embed(m, [x[0].numpy()], sr=12000, input_seconds=1.0, device="cpu")
    assert X.shape == (1, 36) and (X >= 0).all()
    assert m.identity["layer_reader"] == 2  # feature sets read by the older rule are never served


def test_weights_init_modes_and_identity(tmp_path):
    a = CustomFrontend(WAVE, seed=0, width="small")
    b = CustomFrontend(WAVE, seed=0, width="small")
    c = CustomFrontend(WAVE, seed=1, width="small")
    k = CustomFrontend(WAVE, seed=0, width="small", init="keep")
    w = a.net.frontend[0].weight
    assert torch.equal(w, b.net.frontend[0].weight) and not torch.equal(w, c.net.frontend[0].weight)
    # the study's init: zero biases and truncated He normal (|w| < 2.3 sqrt(2 / fan_in)) vs PyTorch's own
    assert a.net.frontend[0].bias.abs().sum() == 0 and k.net.frontend[0].bias.abs().sum() > 0
    assert w.abs().max() < 2.3 * (2 / 64) ** 0.5
    assert a.arch_name == c.arch_name != k.arch_name  # the seed is a run, not another front-end
    opt = CustomFrontend(WAVE, seed=0, width="small", options={"filters": 5})
    assert opt.feature_length == 35 and opt.arch_name != a.arch_name
    # a state dict: trained weights, the same features as the module they came from
    path = tmp_path / "net.pt"
    torch.save(c.net.state_dict(), path)
    t = CustomFrontend(WAVE, seed=0, width="small", weights=path)
    assert t.weights_name == "trained" and t.identity["state_dict_sha256"]
    x = torch.randn(1, 24000)
    for p, q in zip(t.extract_features(x), c.extract_features(x)):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_options_parsing():
    assert parse_options(['{"filters": 64, "act": "elu"}']) == {"filters": 64, "act": "elu"}
    assert parse_options(["filters=64", "act=elu", "deep=true"]) == {"filters": 64, "act": "elu", "deep": True}
    with pytest.raises(CustomArchError, match="key=value"):
        parse_options(["filters"])


def _cli_error(capsys, argv) -> str:
    assert ex.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip()  # the error, then the multi-part summary naming the same failure


def test_clear_errors(tmp_path, data, capsys):
    base = ["--dataset", "folder", "--root", str(data), "--out", str(tmp_path / "fs"),
            "--cache-dir", "none", "--input-seconds", "2", "--workers", "0"]
    line = _cli_error(capsys, ["--arch", "no_such_pkg.mod:Net", *base])
    assert "error:" in line and "cannot import module 'no_such_pkg.mod'" in line \
        and "No module named 'no_such_pkg'" in line
    broken = _module(tmp_path, "class Net(nn.Module)\n    pass\n", "broken.py")
    line = _cli_error(capsys, ["--arch", broken + ":Net", *base])
    assert "cannot import" in line and "broken.py" in line and "SyntaxError" in line
    no_conv = _module(tmp_path, """
        class Net(nn.Module):
            input_kind = "waveform"
            def __init__(self):
                super().__init__()
                self.scale = nn.Identity()
            def forward(self, x):
                return self.scale(x).abs()
        """, "no_conv.py")
    line = _cli_error(capsys, ["--arch", no_conv + ":Net", *base])
    assert "no layers to read" in line and "conv or pool" in line
    wrong = _module(tmp_path, """
        class Net(nn.Module):
            input_kind = "log-mel"
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 3, 3)
            def extract_features(self, x):
                return [self.conv(x[:, None]).mean()]
        """, "wrong.py")
    line = _cli_error(capsys, ["--arch", wrong + ":Net", *base])
    assert "layer 'layer1' gave shape ()" in line and "(batch=1, channels, ...)" in line
    no_kind = _module(tmp_path, """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(1, 2, 3)
            def forward(self, x):
                return self.conv(x[:, None])
        """, "no_kind.py")
    line = _cli_error(capsys, ["--arch", no_kind + ":Net", *base])
    assert "--input waveform or --input log-mel" in line


def test_too_big_for_memory_says_how_big(monkeypatch):
    m = CustomFrontend(WAVE, seed=0, width="small")
    need = m.clip_bytes((24000,))
    monkeypatch.setattr(custom, "available_memory", lambda: need // 2)
    with pytest.raises(CustomArchError) as e:
        m.extract_features(torch.zeros(4, 24000))
    msg = str(e.value)
    assert "too big for memory" in msg and "--batch-size 1" in msg and "--input-seconds" in msg
    assert f"{need * 4 / 2**20:.0f} MiB" in msg  # a batch of 4 clips


def test_hear_export_of_an_own_front_end():
    from hear.common import module_api
    load_model, scene, timestamps = module_api(WAVE)
    model = load_model("seed=2,width=small,input_seconds=2")
    assert model.scene_embedding_size == 112 and model.timestamp_embedding_size == 16
    audio = torch.from_numpy(np.stack([tone(1.0, sr=16000, freq=f) for f in (300.0, 900.0)]))
    emb = scene(audio, model)
    direct = ex.embed(CustomFrontend(WAVE, seed=2, width="small"), [a.numpy() for a in audio], sr=16000,
                      input_seconds=2, device="cpu")
    np.testing.assert_allclose(emb.numpy(), direct, rtol=1e-5, atol=1e-7)
    ts_emb, ts = timestamps(audio, model)
    assert ts_emb.shape == (2, 40, 16) and ts.shape == (2, 40)


@pytest.mark.parametrize("main", ["features.extract", "studies"])
def test_own_front_end_flags_are_never_silently_ignored(main, tmp_path, capsys):
    """--arch-options with a shipped --arch, or options that do not parse, stop before any work."""
    import importlib
    parse = importlib.import_module("studies.__main__" if main == "studies" else main).parse_args
    with pytest.raises(SystemExit) as e:
        parse(["--arch", "vgg", "--arch-options", "filters=8", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "--arch-options apply to your own front-end" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--arch", WAVE, "--arch-options", "{bad", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "{bad" in err and "Traceback" not in err
    assert parse(["--arch", "vgg", "--out", str(tmp_path)]).custom is None
    assert parse(["--arch", WAVE, "--arch-options", "filters=8"]).custom["options"] == ["filters=8"]
