"""trained.train with your own --arch (a class or factory, as extraction takes it) and the study's back-end."""
from __future__ import annotations

import json

import pytest
import torch

from architectures.checkpoint import CheckpointError, load_model
from architectures.custom import CustomFrontend
from test_trained import _tone_dataset
from trained.train import build_model, main, train

NET = '''
import torch
from torch import nn

class Net(nn.Module):
    input_kind = "spectrogram"

    def __init__(self, filters=4):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, 3, padding=1)
        self.pool = nn.MaxPool2d((4, 4))

    def forward(self, x):
        h = self.pool(torch.relu(self.conv(x[:, None])))
        return h.permute(0, 1, 3, 2).reshape(h.shape[0], -1, h.shape[2])


def make(filters=4):
    return Net(filters)
'''


@pytest.fixture
def own(tmp_path):
    path = tmp_path / "own_net.py"
    path.write_text(NET)
    return path


def test_own_arch_trains_evaluates_and_reads_back(tmp_path, own):
    spec = f"{own}:make"
    custom = {"options": ["filters=3"]}
    ds = _tone_dataset(tmp_path, n=16, seconds=0.5)
    res = train(spec, ds=ds, recipe="toolkit-2025", width="small", epochs=1, batch_size=4, input_seconds=0.5, frontend_bn="none", workers=0,
                cache_dir=None, out=tmp_path / "trained", results_out=tmp_path / "results", progress=False,
                custom=custom)
    name = CustomFrontend(spec, seed=0, width="small", **custom).arch_name  # its random features' name
    data = json.loads(res.read_text())
    assert data["arch"] == name and res.parent.name.startswith(f"{name}_small_end-to-end_")
    assert data["entries"][0]["protocol"] == "end-to-end" and data["entries"][0]["runs"][0]["accuracy"] is not None
    (run,) = (tmp_path / "trained" / "tones").glob(f"{name}_small_seed0-*")  # named by its recipe key
    best = run / "split" / "best.pt"
    model, ckpt = load_model(best)
    assert ckpt["arch"] == name and model.frontend.net.conv.out_channels == 3
    x = torch.zeros(2, 43, 96)
    assert model.logits(x).shape == (2, 2)
    # the weights were trained: they differ from the study's init of the same seed
    init, _, _ = build_model(spec, 2, width="small", seed=0, frontend_bn="none", custom=custom)
    assert not torch.equal(init.frontend.net.conv.weight, model.frontend.net.conv.weight)
    own.write_text(NET + "\n# edited\n")
    with pytest.raises(CheckpointError, match="trained from .*own_net.py with SHA-256"):
        load_model(best)


def test_own_arch_cli_errors(tmp_path, own, capsys):
    for argv, needle in ((["--arch", f"{own}:make", "--frontend-bn", "running", "--dry-run"],
                          "adds batch norm after the convs of the study's front-ends only"),
                         (["--arch", "nope"], "unknown --arch 'nope'"),
                         (["--arch", "vgg", "--arch-options", "filters=3"], "apply to your own front-end")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and needle in capsys.readouterr().err
    main(["--arch", f"{own}:make", "--arch-options", "filters=5", "--dry-run", "--width", "small",
          "--input-seconds", "1", "--recipe", "toolkit-2025"])
    out = capsys.readouterr().out
    conv = next(line for line in out.splitlines() if line.startswith("frontend.net.conv"))
    assert conv.split()[1] == "Conv2d" and conv.split()[-1] == "50"  # 5 filters of 3 x 3 + 5 biases
