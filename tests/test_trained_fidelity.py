"""Training as the papers did: Pons et al. 2018 for front-ends (batch norm with running statistics,
15 s patches, windowed prediction) and the SampleCNN papers' schedule (stages, 4 decreases)."""

import numpy as np
import pytest
import torch
from torch import nn

import architectures
from architectures.layers import norm_layer
from trained import data
from architectures.checkpoint import load_frontend, load_model, read_checkpoint
from trained.evaluate import predict_test
from audiodata.decode import InputSpec
from trained.loop import FitOptions, StagedLR, Trainer, fit, patch_lengths, window_starts, windows
from trained.train import _param_groups, build_model, main, train

from test_trained import _tone_dataset

SR = 12000
PATCH_S, INPUT_S = 0.4, 1.0
PATCH = int(PATCH_S * SR)  # 4800 samples
RUN = dict(arch="sample-level", recipe="toolkit-2025", width="small", input_seconds=INPUT_S, batch_size=4, workers=0,
           cache_dir=None, progress=False, evaluate=False)


def _record_sample_level_inputs():
    """Every input a SampleLevel module receives, with the module's training flag."""
    seen = []

    def hook(module, args):
        if isinstance(module, architectures.SampleLevel):
            seen.append((module.training, tuple(args[0].shape)))
    return seen, nn.modules.module.register_module_forward_pre_hook(hook)


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    """sample-level (small) + back-end, 1 s inputs, 0.4 s patches, front-end BN 'running', 1 epoch."""
    root = tmp_path_factory.mktemp("tones")
    ds = _tone_dataset(root, n=12)
    seen, handle = _record_sample_level_inputs()
    try:
        train(ds=ds, epochs=1, out=root / "runs", patch_seconds=PATCH_S, **RUN)
    finally:
        handle.remove()
    return ds, next((root / "runs" / "tones").glob("sample-level_small_seed0-*")) / "split", seen


def test_training_runs_on_patches(patch_run):
    _, run, seen = patch_run
    trained_on = [shape for training, shape in seen if training]
    assert trained_on and {s[1] for s in trained_on} == {PATCH}  # never the whole 12 000 samples
    assert sum(s[0] for s in trained_on) == 8  # 8 training clips, one patch each (one epoch)
    first = next(i for i, (training, _) in enumerate(seen) if training)
    assert {s[1] for training, s in seen[first:] if not training} == {PATCH}  # validation: windows
    cfg = read_checkpoint(run / "best.pt")["config"]
    assert cfg["patch_seconds"] == PATCH_S and cfg["frontend_bn"] == "running"
    assert cfg["window_hop_seconds"] is None and cfg["patience"] == 10


def test_prediction_is_the_mean_over_windows(patch_run, tmp_path):
    import soundfile as sf
    from audiodata.datasets import Clip, Dataset
    ds, run, _ = patch_run
    # test clips whose halves differ (hum, then whistle), so that every window predicts differently
    t = np.arange(SR) / SR
    tests = []
    for i in range(3):
        wave = np.where(t < 0.5, np.sin(2 * np.pi * 150 * t), np.sin(2 * np.pi * (2000 + 300 * i) * t))
        sf.write(tmp_path / f"t{i}.wav", (0.5 * wave).astype(np.float32), SR)
        tests.append(Clip(tmp_path / f"t{i}.wav", f"t{i}.wav", ["low", "high"][i % 2], split="test"))
    mixed = Dataset("tones", ds.root, [c for c in ds.clips if c.split != "test"] + tests, ds.classes, "split")
    got = predict_test(run, mixed, torch.device("cpu"), progress=False)
    model, _ = load_model(run / "best.pt")
    x = data.load_inputs(tests, InputSpec("waveform", SR, "repeat"), None, progress=False).x
    starts = [0, 4800, 7200]  # 0.4 s windows every 0.4 s over 1 s; the last one ends at the end
    with torch.no_grad():
        per_window = np.stack([torch.softmax(model.logits(torch.from_numpy(x[:, s:s + PATCH])), dim=1).numpy()
                               for s in starts])  # (windows, clips, classes), one window at a time
    assert got["ids"] == ["t0.wav", "t1.wav", "t2.wav"] and got["scores"].shape == (3, 2)
    np.testing.assert_allclose(got["scores"], per_window.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert np.abs(got["scores"] - per_window[0]).max() > 1e-5  # not just the first window


def test_frontend_bn_uses_running_statistics_at_extraction(patch_run):
    from features.extract import layer_means
    _, run, _ = patch_run
    fe = load_frontend(run / "best.pt", expected_arch="sample-level")
    assert fe.dims["batchnorm"] == "running" and not fe.training
    norms = [m for m in fe.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 7 and all(m.track_running_stats for m in norms)
    assert all(m.running_mean.abs().max() > 0 for m in norms)  # training moved the statistics
    x = torch.randn(4, SR, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        alone = layer_means(fe.extract_features(x[:1]))
        batched = layer_means(fe.extract_features(x))[:1]
        other = layer_means(fe.extract_features(torch.cat([x[:1], 5 * x[1:]])))[:1]
    assert torch.allclose(alone, batched, rtol=1e-5, atol=1e-6)
    assert torch.allclose(alone, other, rtol=1e-5, atol=1e-6)
    # the leak experiment's batch statistics with the same weights do depend on the batch
    leak = architectures.SampleLevel(**dict(fe.dims, batchnorm=True)).eval()
    leak.load_state_dict({k: v for k, v in fe.state_dict().items() if "running" not in k
                          and "num_batches" not in k})
    with torch.no_grad():
        assert not torch.allclose(layer_means(leak.extract_features(x))[:1],
                                  layer_means(leak.extract_features(x[:1])), atol=1e-3)


def test_checkpoint_with_bn_round_trips_with_the_same_features(patch_run):
    from features.extract import build_frontend, layer_means
    _, run, _ = patch_run
    ckpt = read_checkpoint(run / "best.pt")
    fe = load_frontend(run / "best.pt")
    state = fe.state_dict()
    assert any(k.endswith("running_var") for k in ckpt["state_dict"])
    for k, v in ckpt["state_dict"].items():  # weights and BN buffers alike
        assert torch.equal(state[k], v)
    classifier, _ = load_model(run / "best.pt")
    via_extract = build_frontend("sample-level", weights=run / "best.pt").eval()
    x = torch.randn(3, SR, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = layer_means(fe.extract_features(x))
        assert torch.equal(ref, layer_means(classifier.frontend.extract_features(x)))
        assert torch.equal(ref, layer_means(via_extract.extract_features(x)))
        rebuilt = architectures.build("sample-level", width="small", seed=0, batchnorm="running")
        rebuilt.load_state_dict(ckpt["state_dict"])
        assert torch.equal(ref, layer_means(rebuilt.eval().extract_features(x)))


def test_earlier_recipe_is_a_named_option(tmp_path):
    ds = _tone_dataset(tmp_path, n=8)
    seen, handle = _record_sample_level_inputs()
    try:
        train(ds=ds, epochs=1, out=tmp_path / "runs", frontend_bn="none", patch_seconds=0, **RUN)
    finally:
        handle.remove()
    assert {s[1] for training, s in seen if training} == {SR}  # the whole 1 s input
    fe = load_frontend(next((tmp_path / "runs" / "tones").glob("sample-level_small_seed0-*")) / "split" / "best.pt")
    assert fe.dims["batchnorm"] is False
    assert not any(isinstance(m, nn.BatchNorm1d) for m in fe.modules())
    _, with_bn, _ = build_model("sample-level", 2, width="small", input_seconds=1.0)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in with_bn.modules()) == 7  # the default


def test_bn_modes_are_distinct_and_checked():
    assert isinstance(norm_layer(4, 1, False), nn.Identity)
    assert not norm_layer(4, 1, True).track_running_stats
    assert not norm_layer(4, 2, "batch").track_running_stats
    assert norm_layer(4, 2, "running").track_running_stats
    with pytest.raises(ValueError, match="batchnorm must be False, True / 'batch'.*found 'none'"):
        architectures.build("timbral", width="small", batchnorm="none")
    assert architectures.build("vgg", width="small", batchnorm="batch").dims["batchnorm"] is True
    with pytest.raises(ValueError, match="--frontend-bn batch: expected one of running, none"):
        build_model("sample-level", 2, width="small", frontend_bn="batch")
    with pytest.raises(SystemExit):
        main(["--arch", "sample-level", "--frontend-bn", "batch", "--dry-run"])


def test_windows_cover_the_whole_input():
    assert window_starts(1376, 703, 703) == [0, 673]  # two 15 s patches of the 29 s spectrogram
    assert window_starts(12000, 4800, 4800) == [0, 4800, 7200]
    assert window_starts(12000, 4800, 2400) == [0, 2400, 4800, 7200]
    assert window_starts(500, 703, 703) == [0]
    assert patch_lengths("spectrogram", None, 15.0) == (703, 703)
    assert patch_lengths("waveform", None, 15.0, 5.0) == (180000, 60000)
    assert patch_lengths("waveform", 1.0, 2.0) is None and patch_lengths("waveform", None, 0) is None
    x = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)
    xw, rows = windows(x, 4, 4)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert xw.tolist() == [x[0, 0:4].tolist(), x[0, 4:8].tolist(), x[0, 6:10].tolist(),
                           x[1, 0:4].tolist(), x[1, 4:8].tolist(), x[1, 6:10].tolist()]


class _Toy(nn.Module):
    """Two-class scores (w, -w) whatever the input; records the inputs it trains on."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen = []

    def logits(self, x):
        if self.training:
            self.seen.append(x.clone())
        return torch.stack([self.w, -self.w], dim=1).expand(len(x), 2) + 0 * x.mean(1, keepdim=True)


def _toy_fit(tmp_path, epochs, resume_from=None, patch=None, seed=0, lr=0.01, decreases=4, patience=2):
    model = _Toy()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    sched = StagedLR(opt, patience, 0.2, decreases)
    t = Trainer(model, model, None, opt, sched, False, torch.device("cpu"),
                {"arch": "toy", "dims": {}, "fold": None, "dataset": "toy", "config": {}}, tmp_path)
    rows = np.arange(8, dtype=np.float32)[:, None] * 1000 + np.arange(20, dtype=np.float32)
    # training labels 0 push w up; validation labels 1: the validation loss rises every epoch
    train_set = (rows, np.zeros(8, np.int64), np.arange(8))
    val_set = (rows[:2], np.ones(2, np.int64), np.arange(2))
    history = fit(t, train_set, val_set, FitOptions(epochs, 4, seed, patience=None, patch=patch),
                  resume_from=resume_from, progress=False)
    return model, history


def test_staged_schedule_restarts_from_the_best_and_stops_after_4_decreases(tmp_path):
    model, history = _toy_fit(tmp_path, epochs=100)
    # each stage: one epoch better than the stage's best, then 2 worse ones; 5 stages
    assert len(history) == 15
    lrs = [h["lr"] for h in history]
    expected = []
    for stage in range(5):
        expected += [0.01 * 0.2 ** stage] * 2 + [0.01 * 0.2 ** min(stage + 1, 4)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert min(lrs) == pytest.approx(1.6e-5)  # Lee et al.: the last training ran at 0.000016
    ckpt = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["trainer_state"]["stopped"] and "decreased 4 times" in ckpt["trainer_state"]["stop_reason"]
    assert ckpt["trainer_state"]["best_epoch"] == 1  # the validation loss only rose after epoch 1


def test_new_stage_loads_the_best_weights_and_resumes(tmp_path):
    _, history = _toy_fit(tmp_path / "a", epochs=3)  # the first stage ends at epoch 3
    latest, best = read_checkpoint(tmp_path / "a" / "checkpoint.pt"), read_checkpoint(tmp_path / "a" / "best.pt")
    assert best["epoch"] == 1 and latest["epoch"] == 3
    assert torch.equal(latest["state_dict"]["w"], best["state_dict"]["w"])  # restored
    assert latest["optimizer_state_dict"]["state"] == {}  # fresh momentum
    assert latest["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(0.002)
    _, resumed = _toy_fit(tmp_path / "a", epochs=100, resume_from=latest)
    _, straight = _toy_fit(tmp_path / "b", epochs=100)
    assert [h["val_loss"] for h in resumed] == pytest.approx([h["val_loss"] for h in straight], rel=1e-6)


def test_patches_are_random_reproducible_crops(tmp_path):
    a, _ = _toy_fit(tmp_path / "a", epochs=2, patch=5)
    b, _ = _toy_fit(tmp_path / "b", epochs=2, patch=5)
    crops = torch.cat(a.seen).numpy()
    assert crops.shape == (16, 5)  # 8 rows, 2 epochs, each a 5-step crop of its 20-step row
    assert np.array_equal(crops, torch.cat(b.seen).numpy())  # same seed, same crops
    starts = crops[:, 0] % 1000
    assert np.array_equal(crops - crops[:, :1], np.tile(np.arange(5), (16, 1)))  # contiguous slices
    assert starts.min() >= 0 and starts.max() <= 15 and len(set(starts.tolist())) > 3
    assert sorted((crops[:8, 0] // 1000).tolist()) == list(range(8))  # every row once per epoch


def test_weight_decay_is_keras_l2_on_conv_kernels():
    m = nn.Sequential(nn.Conv1d(1, 3, 3), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(6, 2))
    groups = _param_groups(m, 1e-4)
    assert [p is m[0].weight for p in groups[0]["params"]] == [True]
    assert groups[0]["weight_decay"] == 2e-4 and groups[1]["weight_decay"] == 0.0
    assert len(groups[1]["params"]) == len(list(m.parameters())) - 1
    w0 = m[0].weight.detach().clone()
    opt = torch.optim.SGD(groups, lr=0.1)
    opt.zero_grad()
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # only the penalty moves the kernel: the step of 1e-4 * sum(w^2)'s gradient
    w = w0.clone().requires_grad_(True)
    (1e-4 * (w ** 2).sum()).backward()
    assert torch.allclose(m[0].weight, w0 - 0.1 * w.grad, atol=1e-9)


def test_samplecnn_recipe_defaults(tmp_path):
    from trained.train import TrainSettings, _recipe
    r = _recipe(TrainSettings(arch="samplecnn", block="rese2"))
    assert r == dict(frontend_bn=None, patch_seconds=None, window_hop_seconds=None, weight_decay=1e-4,
                     plateau_patience=2, lr_decreases=4, patience=None)
    assert _recipe(TrainSettings(arch="samplecnn", block="basic"))["plateau_patience"] == 3
    assert _recipe(TrainSettings(arch="samplecnn", block="se", weight_decay=0.0, plateau_patience=5,
                                 lr_decreases=2))["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="--plateau-patience 0: expected an integer >= 1"):
        TrainSettings(arch="samplecnn", block="se", plateau_patience=0)
    with pytest.raises(ValueError, match="--patch-seconds -1.0: expected a finite number >= 0"):
        TrainSettings(arch="vgg", patch_seconds=-1.0)


def test_samplecnn_dry_run_shows_the_head_batch_norm(capsys):
    main(["--arch", "samplecnn", "--dry-run", "--recipe", "toolkit-2025"])
    out = capsys.readouterr().out
    assert "bn_fc" in out and "batch norm 5,888" in out and "fc " in out
