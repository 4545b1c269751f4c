"""The two training recipes (issue 20, items 7 and 8): ``released`` (the default: Pons et al. 2018's
released models.py and Kim et al.'s resemul) and ``toolkit-2025`` (this toolkit's earlier recipe).
Each released choice is asserted on the structure it builds; one short training step runs per recipe."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from architectures.backend import PonsBackend, init_he_normal, init_tf_variance_scaling
from architectures.checkpoint import read_checkpoint
from architectures.samplecnn import SMALL_CHANNELS, SampleCNN, init_keras
from toolkit.settings import SettingsError
from trained.loop import StagedLR
from trained.settings import RECIPES, TrainSettings
from trained.train import _optimizer, build_model, input_stats, main, run_folder, train

from test_trained import _tone_dataset

RUN = dict(arch="sample-level", width="small", input_seconds=2.0, batch_size=4, workers=0, cache_dir=None,
           progress=False, evaluate=False, epochs=1)


# ----------------------------------------------------------------------------- back-end (item 7)

def test_released_backend_conv_unpadded_pool_rounds_down_no_pooled_bn():
    rel, old = PonsBackend(16, 3, layout="released"), PonsBackend(16, 3)  # old: the class default
    assert rel.conv1.padding == (0,) and old.conv1.padding == (3,)
    assert rel.pool.ceil_mode is False and old.pool.ceil_mode is True
    assert isinstance(rel.bn_pool, nn.Identity) and isinstance(old.bn_pool, nn.BatchNorm1d)
    assert (rel.bn1.momentum, rel.bn1.eps, rel.bn_fc.eps) == (0.01, 1e-3, 1e-3)  # TF's 0.99 / 1e-3
    assert (old.bn1.momentum, old.bn1.eps) == (0.1, 1e-5)
    lengths = {}

    def record(name):
        def hook(_m, i, o):
            lengths[name] = (i[0].shape[2], o.shape[2])
        return hook
    rel.pool.register_forward_hook(record("rel"))
    old.pool.register_forward_hook(record("old"))
    rel.eval()(torch.randn(2, 16, 11))
    old.eval()(torch.randn(2, 16, 11))
    assert lengths == {"rel": (5, 2), "old": (11, 6)}  # 11 - 6 = 5 frames, floor(5 / 2) = 2
    with pytest.raises(ValueError, match="at least 8 frames, found 7"):
        rel(torch.randn(2, 16, 7))


def test_released_init_is_truncated_at_two_std():
    b = init_tf_variance_scaling(PonsBackend(64, 3, layout="released"), seed=0)
    fan_in = 512 * 7
    std = math.sqrt(1.3 * 2 / fan_in)
    w = b.conv2.weight.detach()
    assert float(w.abs().max()) <= 2 * std + 1e-7 and float(w.abs().max()) > 1.95 * std
    # variance of a normal truncated at +-2 sd: 0.7737 sd^2, so the 1.3 brings it back to ~2 / fan_in
    assert float(w.std()) == pytest.approx(math.sqrt(2 * 1.3 * 0.7737 / fan_in), rel=0.01)
    assert float(b.conv1.weight.detach().abs().max()) <= 2 * math.sqrt(2.6 / (64 * 7)) + 1e-7
    assert float(b.out.weight.detach().abs().max()) <= 2 * math.sqrt(2.6 / 500) + 1e-7  # the output layer too
    assert all(float(m.bias.detach().abs().max()) == 0 for m in (b.conv1, b.conv2, b.fc, b.out))
    k = init_he_normal(PonsBackend(64, 3), seed=0).conv2.weight.detach()  # toolkit-2025: not truncated
    assert float(k.abs().max()) > 3 * math.sqrt(2 / fan_in)


def test_build_model_uses_the_recipe_backend_and_init():
    _, _, rel = build_model("sample-level", 3, width="small", input_seconds=2.0)
    _, _, old = build_model("sample-level", 3, width="small", input_seconds=2.0, recipe="toolkit-2025")
    assert rel.dims["layout"] == "released" and old.dims["layout"] == "toolkit-2025"
    bound = 2 * math.sqrt(2.6 / (512 * 7))
    assert float(rel.conv2.weight.detach().abs().max()) <= bound + 1e-7 < float(old.conv2.weight.detach().abs().max())


# ----------------------------------------------------------------------------- front-ends (item 7)

def _first_norm_input(recipe):
    model, fe, _ = build_model("sample-level", 3, width="small", input_seconds=2.0, recipe=recipe)
    seen = []
    h = fe.norm0.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    model.train()
    model.logits(torch.randn(4, 24000))
    h.remove()
    return fe, seen[0]


def test_released_frontend_puts_batch_norm_after_the_relu():
    fe, x = _first_norm_input("released")
    assert fe.dims["batchnorm"] == "running-post" and float(x.min()) >= 0  # ReLU came first
    assert (fe.norm0.momentum, fe.norm0.eps) == (0.01, 1e-3)
    fe_old, x_old = _first_norm_input("toolkit-2025")
    assert fe_old.dims["batchnorm"] == "running" and float(x_old.min()) < 0  # the raw conv output


def test_released_frontend_rebuilds_from_its_dims():
    _, fe, _ = build_model("timbral", 3, width="small", input_seconds=2.0)
    import architectures
    again = architectures.ARCHITECTURES["timbral"](**fe.dims)
    again.load_state_dict(fe.state_dict())
    x = torch.randn(2, 94, 96)
    assert torch.equal(again.eval()(x), fe.eval()(x))


# ----------------------------------------------------------------------------- input standardisation (item 7)

def test_input_stats_are_one_mean_and_std_of_all_values():
    x = np.stack([np.full((5, 3), -80.0), np.full((5, 3), 0.0)]).astype(np.float32)
    x[:, :, 1] += 10.0  # bands with different means: one statistic for all, not per band
    mean, std = input_stats(x)
    assert mean == pytest.approx(float(x.astype(np.float64).mean()))
    assert std == pytest.approx(float(x.astype(np.float64).std()))
    with pytest.raises(ValueError, match="constant"):
        input_stats(np.ones((2, 3, 4)))


def test_spectrogram_model_sees_standardised_input():
    model, fe, backend = build_model("timbral", 3, width="small", input_seconds=2.0)
    model.eval()
    backend.set_input_stats(-40.0, 20.0)
    x = torch.randn(2, 94, 96) * 20 - 40
    seen = []
    h = fe.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    model.logits(x)
    h.remove()
    assert torch.allclose(seen[0], (x + 40) / 20)


# ----------------------------------------------------------------------------- SampleCNN (item 8)

def test_released_samplecnn_head_is_1024_wide_with_multi_level():
    model, _, _ = build_model("samplecnn", 50)
    assert model.dims["multi_level"] and model.dims["layout"] == "released"
    assert (model.fc.in_features, model.fc.out_features, model.out.in_features) == (1024, 1024, 1024)
    assert (model.bn_fc.momentum, model.bn_fc.eps) == (0.01, 1e-3)  # Keras' defaults
    old, _, _ = build_model("samplecnn", 50, recipe="toolkit-2025")
    assert not old.dims["multi_level"] and old.fc.out_features == 512
    old_ml, _, _ = build_model("samplecnn", 50, recipe="toolkit-2025", multi_level=True)
    assert (old_ml.fc.in_features, old_ml.fc.out_features) == (1024, 512)


def test_released_samplecnn_concatenates_blocks_7_8_9_in_order():
    m = SampleCNN(3, "basic", multi_level=True, channels=SMALL_CHANNELS, layout="released").eval()
    x = torch.randn(2, 59049)
    outs = m.extract_features(x)
    z = torch.cat([o.amax(dim=2) for o in outs[-3:]], dim=1)
    want = m.out(m.drop(torch.relu(m.bn_fc(m.fc(z)))))
    assert torch.allclose(m.logits(x), want)


def test_keras_init_he_uniform_convs_glorot_uniform_dense_and_shortcuts():
    m = init_keras(SampleCNN(3, "rese2", multi_level=True, layout="released"), seed=0)
    conv = m.blocks[4].conv1.weight.detach()  # 3 taps x 256 in
    limit = math.sqrt(6 / (3 * 256))
    assert float(conv.abs().max()) <= limit and float(conv.abs().max()) > 0.99 * limit
    assert float(conv.std()) == pytest.approx(limit / math.sqrt(3), rel=0.02)  # uniform, not normal
    sc = m.blocks[2].shortcut[0].weight.detach()  # 1x1, 128 -> 256
    g = math.sqrt(6 / (128 + 256))
    assert float(sc.abs().max()) <= g and float(sc.abs().max()) > 0.99 * g
    fc = m.fc.weight.detach()
    g = math.sqrt(6 / (1024 + 1024))
    assert float(fc.abs().max()) <= g and float(fc.abs().max()) > 0.99 * g
    se = m.blocks[0].se.fc1.weight.detach()
    assert float(se.abs().max()) <= math.sqrt(6 / sum(se.shape))
    assert float(m.blocks[4].conv1.bias.detach().abs().max()) == 0
    old = init_he_normal(SampleCNN(3, "rese2"), seed=0).blocks[4].conv1.weight.detach()
    assert float(old.abs().max()) > limit  # a normal reaches past the uniform's bound


def test_released_samplecnn_optimiser_is_nesterov_sgd_with_keras_decay():
    model, _, _ = build_model("samplecnn", 3, width="small")
    cfg = dict(weight_decay=0.0, lr=0.01, plateau_patience=2, lr_decreases=4, recipe="released")
    opt, sched = _optimizer("samplecnn", model, cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert sched.decay == 1e-6
    _, old = _optimizer("samplecnn", model, dict(cfg, recipe="toolkit-2025"))
    assert old.decay == 0.0


def test_staged_lr_decay_per_update_resets_each_stage():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    s = StagedLR(opt, patience=1, factor=0.2, max_decreases=2, decay=0.1)
    for k in range(3):
        s.batch_step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 / (1 + 0.1 * k))
    s.step(1.0)
    assert s.step(2.0) == "next" and s.updates == 0  # a new stage: a new optimizer in resemul
    s.batch_step()
    s.batch_step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.002 / 1.1)
    state = s.state_dict()
    s2 = StagedLR(opt, patience=1, factor=0.2, max_decreases=2, decay=0.1)
    s2.load_state_dict(state)
    assert s2.updates == 2 and s2.stage == 1


# ----------------------------------------------------------------------------- the setting

def test_recipe_setting_is_checked_and_part_of_the_identity():
    assert RECIPES == ("released", "toolkit-2025") and TrainSettings().recipe == "released"
    with pytest.raises(SettingsError, match="--recipe pons: expected one of released, toolkit-2025"):
        TrainSettings(recipe="pons")
    a, b = TrainSettings(arch="vgg"), TrainSettings(arch="vgg", recipe="toolkit-2025")
    assert a.identity() != b.identity() and run_folder(a, "d") != run_folder(b, "d")
    assert TrainSettings(arch="samplecnn").resolved("cpu").multi_level is True
    assert TrainSettings(arch="samplecnn", recipe="toolkit-2025").resolved("cpu").multi_level is False


def test_help_documents_the_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--recipe" in out and "toolkit-2025" in out and "released" in out


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("arch", ["sample-level", "timbral"])
def test_one_training_step_per_recipe(tmp_path, recipe, arch):
    ds = _tone_dataset(tmp_path, n=8, seconds=2.0)
    root = train(ds=ds, out=tmp_path / "runs", **dict(RUN, arch=arch, recipe=recipe))
    ckpt = read_checkpoint(root / "split" / "best.pt")
    assert ckpt["config"]["recipe"] == recipe and ckpt["config"]["backend"]["layout"] == recipe
    assert ckpt["dims"]["batchnorm"] == ("running-post" if recipe == "released" else "running")
    assert np.isfinite(ckpt["history"][0]["train_loss"])
    mean = float(ckpt["backend_state_dict"]["input_mean"])
    if recipe == "released" and arch == "timbral":  # log-mel: the training portion's statistics
        stats = ckpt["config"]["input_stats"]
        assert mean == pytest.approx(stats["mean"]) and stats["mean"] < -1 and stats["std"] > 1
    else:  # waveforms are not standardised, nor anything in toolkit-2025
        assert mean == 0.0 and float(ckpt["backend_state_dict"]["input_std"]) == 1.0


def test_released_samplecnn_step_decays_the_rate(tmp_path):
    ds = _tone_dataset(tmp_path, n=8, seconds=3.0)
    root = train(ds=ds, out=tmp_path / "runs", **dict(RUN, arch="samplecnn", input_seconds=None))
    ckpt = read_checkpoint(root / "split" / "checkpoint.pt")
    updates = ckpt["trainer_state"]["scheduler"]["updates"]
    assert updates >= 1 and ckpt["trainer_state"]["scheduler"]["decay"] == 1e-6
    assert ckpt["history"][-1]["lr"] == pytest.approx(0.01 / (1 + 1e-6 * (updates - 1)), rel=1e-12)
