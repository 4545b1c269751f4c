"""Trained front-ends: back-end, checkpoints, portions, a tiny training run, resume, results."""
import csv
from pathlib import Path
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodata.datasets import Clip, Dataset
from trained import data
from architectures.backend import PonsBackend
from architectures.checkpoint import CheckpointError, load_frontend, read_checkpoint
from trained.train import build_model, dry_run, main, train

SR = 12000


def _tone_dataset(folder, protocol="split", n=24, seconds=1.0, sr=SR, multilabel=False):
    """Two classes that a tiny model separates at once: a low hum and a high whistle, in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    clips = []
    for i in range(n):
        low = i % 2 == 0
        f = (150 if low else 2500) * (1 + 0.05 * rng.random())
        wave = 0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, wave.astype(np.float32), sr)
        label = ("low" if low else "high") + (";tone" + (";noisy" if i % 3 == 0 else "")
                                               if multilabel else "")
        if protocol == "split":
            clips.append(Clip(path, path.name, label, split=["train", "train", "val", "test"][(i // 2) % 4]))
        else:
            clips.append(Clip(path, path.name, label, fold=(i // 2) % 3 + 1))
    classes = sorted({c.label for c in clips})
    return Dataset("tones", folder, clips, classes, "split" if protocol == "split" else "folds")


EPOCHS = 6
FAST = dict(arch="sample-level", recipe="toolkit-2025", width="small", input_seconds=1.0, batch_size=4, workers=0,
            cache_dir=None, progress=False)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run (sample-level small + back-end, 6 epochs) shared by several tests.

    Six, not three: with 12 training clips and batch 4, three epochs (9 steps) left the model still
    predicting one class for the init of some seeds; six separate the tones every time tried."""
    root = tmp_path_factory.mktemp("tones")
    ds = _tone_dataset(root)
    results = train(ds=ds, epochs=EPOCHS, out=root / "runs", results_out=root / "results", **FAST)
    return ds, run_dir(root / "runs"), results


def run_dir(out, arch="sample-level", seed=0):
    """The one run folder of ``arch`` / ``seed`` under ``out`` (named by its recipe's key)."""
    (found,) = (Path(out) / "tones").glob(f"{arch}_small_seed{seed}-*")
    return found


def test_backend_shapes_and_short_maps():
    b = PonsBackend(16, 5).eval()
    assert b(torch.randn(3, 16, 40)).shape == (3, 5)
    assert b(torch.randn(2, 16, 1)).shape == (2, 5)  # vgg leaves one frame: same padding + ceil pool
    with pytest.raises(ValueError, match=r"expects \(batch, 16, time\), found \(2, 8, 40\)"):
        b(torch.randn(2, 8, 40))
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in PonsBackend(16, 5, batchnorm=False).modules())


def test_initial_frontend_is_the_random_one():
    import architectures
    _, frontend, _ = build_model("sample-level", 3, width="small", seed=4, input_seconds=1.0)
    random = architectures.build("sample-level", width="small", seed=4)
    trained_state, random_state = frontend.state_dict(), random.state_dict()
    # every random-init tensor is there unchanged; the trained recipe only adds batch-norm entries
    assert random_state and set(random_state) <= set(trained_state)
    assert all(k.startswith("norm") for k in set(trained_state) - set(random_state))
    for k, v in random_state.items():
        assert torch.equal(trained_state[k], v), k


def test_tiny_training_lowers_the_loss_and_separates_the_tones(trained_run):
    from sklearn.metrics import roc_auc_score
    from trained.evaluate import predict_test
    ds, run, results = trained_run
    with open(run / "split" / "history.csv") as f:
        hist = list(csv.DictReader(f))
    assert len(hist) == EPOCHS
    assert float(hist[-1]["train_loss"]) < float(hist[0]["train_loss"])
    res = json.loads(results.read_text())
    entry = res["entries"][0]
    assert res["weights"] == "trained" and entry["protocol"] == "end-to-end"
    assert entry["classifier"] == "pons2018-backend"
    r = entry["runs"][0]
    hits = np.array(r["predictions"]["y_true"]) == np.array(r["predictions"]["y_pred"])
    assert r["accuracy"] == pytest.approx(hits.mean(), abs=1e-12)
    # What six epochs on 12 clips reliably learn is the ranking: every high test clip gets a higher
    # "high" probability than every low one (the test margins are ~0.4 either way). Whether the 0.5
    # threshold falls between them depends on the back-end's batch-norm running statistics after
    # 18 steps of batch 4, which move with the thread count: accuracy went 0.5 / 0.67 / 0.83.
    pred = predict_test(run / "split", ds, torch.device("cpu"), progress=False)
    high = pred["classes"].index("high")
    scores = np.asarray(pred["scores"])
    assert roc_auc_score(np.asarray(pred["y"]) == high, scores[:, high]) == 1.0
    assert len(r["predictions"]["ids"]) == 6 and np.array(r["confusion"]).sum() == 6
    meta = json.loads((run / "split" / "meta.json").read_text())
    assert meta["epochs_done"] == EPOCHS and meta["commit"] and meta["config"]["seed"] == 0


def test_checkpoint_round_trip_and_feature_layout(trained_run):
    import architectures
    from features.extract import layer_means
    _, run, _ = trained_run
    ckpt = read_checkpoint(run / "split" / "best.pt")
    for key in ("arch", "dims", "state_dict", "backend_state_dict", "fold", "dataset", "config",
                "history", "epoch", "optimizer_state_dict"):
        assert key in ckpt
    model = load_frontend(run / "split" / "best.pt", expected_arch="sample-level")
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v)
    random = architectures.build("sample-level", width="small", seed=0)
    assert not torch.equal(next(iter(model.state_dict().values())),
                           next(iter(random.state_dict().values())))  # training changed it
    assert model.layers == random.layers and model.feature_length == random.feature_length
    x = torch.randn(2, 12000)
    with torch.no_grad():
        assert layer_means(model.extract_features(x)).shape == layer_means(random.extract_features(x)).shape


def test_checkpoint_errors(trained_run, tmp_path):
    _, run, _ = trained_run
    best = run / "split" / "best.pt"
    with pytest.raises(CheckpointError, match="holds architecture 'sample-level', but 'vgg'"):
        load_frontend(best, expected_arch="vgg")
    with pytest.raises(CheckpointError, match="dims do not match.*filters: 512, 16"):
        load_frontend(best, expected_dims={"filters": 512})
    ckpt = torch.load(best, weights_only=False)
    ckpt["dims"] = dict(ckpt["dims"], filters=32)
    torch.save(ckpt, tmp_path / "resized.pt")
    with pytest.raises(CheckpointError, match="do not fit the model built from its dims"):
        load_frontend(tmp_path / "resized.pt")
    del ckpt["backend_state_dict"]
    torch.save(ckpt, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \['backend_state_dict'\]"):
        load_frontend(tmp_path / "partial.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable torch checkpoint"):
        load_frontend(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_frontend(tmp_path / "absent.pt")


def test_resume_continues_the_same_run(trained_run, tmp_path):
    ds, run, _ = trained_run
    kw = dict(ds=ds, out=tmp_path, evaluate=False, **FAST)
    train(epochs=1, **kw)
    train(epochs=2, **kw)  # picks up checkpoint.pt after epoch 1
    resumed = read_checkpoint(run_dir(tmp_path) / "split" / "checkpoint.pt")
    straight = read_checkpoint(run / "split" / "checkpoint.pt")  # EPOCHS epochs without a break
    assert resumed["epoch"] == 2
    for key in ("train_loss", "val_loss"):  # same batches, same dropout masks after the break
        assert [h[key] for h in resumed["history"]] == pytest.approx(
            [h[key] for h in straight["history"][:2]], rel=1e-4)
    before = (run_dir(tmp_path) / "split" / "checkpoint.pt").read_bytes()
    train(epochs=1, **dict(kw, batch_size=6))  # another recipe: its own folder, the first one untouched
    folders = sorted((tmp_path / "tones").glob("sample-level_small_seed0-*"))
    assert len(folders) == 2
    assert sorted(read_checkpoint(f / "split" / "checkpoint.pt")["config"]["batch_size"] for f in folders) == [4, 6]
    assert before in [(f / "split" / "checkpoint.pt").read_bytes() for f in folders]


def test_fold_model_never_sees_its_fold(tmp_path):
    ds = _tone_dataset(tmp_path, protocol="folds", n=18)
    for k in (1, 2, 3):
        p = data.portions(ds, k)
        test_ids = {ds.clips[i].id for i in p["test"]}
        assert test_ids == {c.id for c in ds.clips if c.fold == k}
        assert not test_ids & {ds.clips[i].id for i in p["train"] + p["val"]}
    results = train(ds=ds, fold=2, epochs=1, out=tmp_path / "runs", results_out=tmp_path / "res", **FAST)
    meta = json.loads((run_dir(tmp_path / "runs") / "fold2" / "meta.json").read_text())
    fold2 = {c.id for c in ds.clips if c.fold == 2}
    assert set(meta["test_ids"]) == fold2
    assert not fold2 & set(meta["train_ids"]) and not fold2 & set(meta["val_ids"])
    run = json.loads(results.read_text())["entries"][0]["runs"][0]
    assert set(run["predictions"]["ids"]) == fold2 and len(run["fold_accuracies"]) == 1
    with pytest.raises(data.DataError, match="fold 4 is not one of its folds \\[1, 2, 3\\]"):
        train(ds=ds, fold=4, epochs=1, out=tmp_path / "runs", **FAST)


def test_too_small_for_the_batch(tmp_path):
    ds = _tone_dataset(tmp_path, n=8)
    with pytest.raises(ValueError, match="training portion has 4 examples, fewer than the batch size 16"):
        train(ds=ds, epochs=1, out=tmp_path, **dict(FAST, batch_size=16))


def test_multilabel_labels_and_metrics(tmp_path):
    ds = _tone_dataset(tmp_path, n=12, multilabel=True)
    classes, multilabel = data.label_space(ds)
    assert multilabel and classes == ["high", "low", "noisy", "tone"]
    y = data.encode_labels(ds.clips[:3], classes, True)
    assert y.tolist() == [[0, 1, 1, 1], [1, 0, 0, 1], [0, 1, 0, 1]]


def _auc_by_pairs(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def _ap_by_ranks(y, s):
    order = np.argsort(-s, kind="stable")
    hits = np.cumsum(y[order])
    return float(np.mean([hits[k] / (k + 1) for k in range(len(y)) if y[order][k]]))


def test_multilabel_metrics_are_macro_over_the_scorable_tags():
    """evaluate's roc_auc / pr_auc and the validation metric: the mean over tags with both positive and
    negative clips of each tag's AUC / AP, computed here by pairs and by ranks and by sklearn; micro
    averaging, keeping the all-positive tag, or scoring 1 - s would each give another number."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    from trained.evaluate import _multilabel_run
    from trained.loop import val_metric
    y = np.array([[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 1], [0, 0, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]])
    s = np.array([[.9, .2, .6, .5], [.3, .4, .7, .6], [.35, .8, .1, .7], [.6, .45, .2, .8], [.7, .1, .55, .9],
                  [.2, .3, .15, .4]])  # tag 3 is positive everywhere: no AUC, left out
    keep = [0, 1, 2]
    auc = np.mean([_auc_by_pairs(y[:, j], s[:, j]) for j in keep])
    ap = np.mean([_ap_by_ranks(y[:, j], s[:, j]) for j in keep])
    assert auc == pytest.approx(roc_auc_score(y[:, keep], s[:, keep], average="macro"), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(y[:, keep], s[:, keep], average="macro"), abs=1e-12)
    # the wrong ways give other numbers on this case
    wrong = [roc_auc_score(y[:, keep], s[:, keep], average="micro"), roc_auc_score(y[:, keep], 1 - s[:, keep]),
             roc_auc_score(y[:, keep], s[:, keep], average="weighted"),  # the tags have 3, 2 and 4 positives
             np.mean([_auc_by_pairs(y[:, j], s[:, j]) for j in (0, 1)]),  # a tag dropped
             np.mean([_auc_by_pairs(y[:, j], s[:, j]) for j in (0, 1, 2)] + [1.0])]  # the constant tag kept as 1
    assert min(abs(w - auc) for w in wrong) > 0.01, (auc, wrong)
    wrong_ap = [average_precision_score(y[:, keep], s[:, keep], average="micro"),
                average_precision_score(y[:, keep], s[:, keep], average="weighted"),
                average_precision_score(1 - y[:, keep], s[:, keep], average="macro"), auc]
    assert min(abs(w - ap) for w in wrong_ap) > 0.01, (ap, wrong_ap)
    ckpt = {"config": {}, "arch": "sample-level", "history": [], "epoch": 1}
    parts = [{"classes": list("abcd"), "y": y[:4], "scores": s[:4], "ckpt": ckpt, "ids": list("0123"),
              "labels": ["a;c;d"] * 4},
             {"classes": list("abcd"), "y": y[4:], "scores": s[4:], "ckpt": ckpt, "ids": list("45"),
              "labels": ["a;c;d"] * 2}]  # two folds: pooled before scoring
    run = _multilabel_run(parts, 0, "root")
    assert run["roc_auc"] == pytest.approx(auc, abs=1e-12) and run["pr_auc"] == pytest.approx(ap, abs=1e-12)
    assert run["tags_scored"] == 3 and run["accuracy"] is None
    assert run["predictions"]["y_pred"][0] == "a;c;d"  # scores >= 0.5
    assert val_metric(y, s, multilabel=True) == ("roc_auc", pytest.approx(auc, abs=1e-12))
    assert np.isnan(val_metric(np.ones((3, 2)), np.zeros((3, 2)), multilabel=True)[1])


def test_dry_run_prints_layers_and_totals(capsys):
    text = dry_run("samplecnn", n_classes=50, block="se", recipe="toolkit-2025")
    assert "blocks.0.se.fc1" in text and "total parameters: 2,044,498" in text  # + 1,024: BN on conv 1-512
    main(["--arch", "sample-level", "--recipe", "toolkit-2025", "--width", "small", "--input-seconds", "1", "--dry-run",
          "--n-classes", "3"])
    out = capsys.readouterr().out
    assert "backend.conv1" in out and "backend.out" in out and "total parameters" in out


@pytest.mark.slow
def test_samplecnn_multilabel_end_to_end(tmp_path):
    ds = _tone_dataset(tmp_path, n=16, seconds=2.7, sr=22050, multilabel=True)
    results = train(arch="samplecnn", width="small", block="rese2", multi_level=True, ds=ds, epochs=2,
                    batch_size=4, workers=0, cache_dir=None, progress=False, out=tmp_path / "runs",
                    results_out=tmp_path / "res")
    res = json.loads(results.read_text())
    entry = res["entries"][0]
    assert entry["classifier"] == "samplecnn-rese2" and entry["metric"] == "roc_auc"
    run = entry["runs"][0]
    assert 0 <= run["roc_auc"] <= 1 and 0 <= run["pr_auc"] <= 1 and run["accuracy"] is None
    assert len(run["predictions"]["ids"]) == 4
    model = load_frontend(run_dir(tmp_path / "runs", "samplecnn") / "split" / "best.pt",
                          expected_arch="samplecnn")
    assert model.dims["block"] == "rese2" and model.feature_length == sum(model.dims["channels"])
