"""--as-published: what the study's code (jordipons/elmarc) computed where it departs from the thesis text.

Each test holds one item of docs/fidelity.md ("As published"): the switch changes exactly that item, and
without it every number is the thesis-text definition (the default).
"""
from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from conftest import tone, write_audio, write_class_folders
from architectures.mfcc import mfcc_statistics
from audiodata import audio, decode
from features import extract as ex
from features.compute import published_means

SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False}


def _noise(n_clips=3, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(12000 * seconds))).astype(np.float32) for _ in range(n_clips)]


def _offsets(model):
    return np.cumsum([0] + [c for _, c in model.layers])


# ----------------------------------------------------------------------------- item 1: the stack's one number

@pytest.mark.parametrize("arch,width,real", [("frame-level", "small", 30 + 3), ("frame-level-many", "small", 5 * 15 + 3),
                                             ("frame-level", "large", 896 + 3),
                                             ("frame-level-many", "large", 5 * 448 + 3)])
def test_stack_layers_give_one_number_each(arch, width, real):
    """The issue's "Done when": 896+3 / 2243 non-constant columns at the large width (small: 33 / 78)."""
    waves = _noise()
    pub = ex.build_frontend(arch, width=width, seed=0, as_published=True)
    text = ex.build_frontend(arch, width=width, seed=0)
    X = ex.embed(pub, waves, input_seconds=1.0, sr=12000, device="cpu")
    X0 = ex.embed(text, waves, input_seconds=1.0, sr=12000, device="cpu")
    assert X.shape == X0.shape == (3, pub.feature_length)
    assert int((X.std(axis=0) > 0).sum()) == real
    assert int((X0.std(axis=0) > 0).sum()) == X0.shape[1]  # the text's definition: every map averaged
    off = _offsets(pub)
    for i, (name, _) in enumerate(pub.layers):
        a, b = off[i], off[i + 1]
        if name in ("c1", "r2", "r3"):
            # the mean over time and all F channels, then F-1 zeros (elmarc format_cnn_data on (B, T', F, 1))
            np.testing.assert_allclose(X[:, a], X0[:, a:b].mean(axis=1), rtol=1e-5)
            assert not X[:, a + 1:b].any()
        else:  # the front convs are averaged per channel either way
            np.testing.assert_array_equal(X[:, a:b], X0[:, a:b])


def test_published_means_only_touches_the_named_layers():
    import torch
    means = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    out = published_means(means, [("a", 2), ("b", 3), ("c", 1)], {"b"})
    assert out[:, :2].tolist() == means[:, :2].tolist() and out[:, 5].tolist() == means[:, 5].tolist()
    assert out[:, 2].tolist() == [3.0, 9.0] and not out[:, 3:5].any()
    assert means[0, 3] == 3  # the input is not modified


def test_other_front_ends_keep_their_features():
    """Only frame-level(-many) declare one-number layers; a waveform model at 12 kHz is unchanged."""
    waves = _noise(2, seconds=3.0)
    for arch in ("sample-level", "7x96"):
        a = ex.embed(ex.build_frontend(arch, width="small", as_published=True), waves, input_seconds=3.0, sr=12000, device="cpu")
        b = ex.embed(ex.build_frontend(arch, width="small"), waves, input_seconds=3.0, sr=12000, device="cpu")
        if arch == "sample-level":
            np.testing.assert_array_equal(a, b)
        else:  # spectrogram: only the reflect-padded first and last frames (2 of 141) move the means
            assert a.shape == b.shape and not np.array_equal(a, b)
            assert np.abs(a - b).max() < 0.05 * np.abs(b).max()


# ----------------------------------------------------------------------------- item 4: MFCC of a short clip

def test_mfcc_short_clip_repeated_whole_uncropped():
    w = tone(1000 / 12000, freq=300.0)
    assert w.shape == (1000,)
    pub = mfcc_statistics(w, published=True)
    tiled = np.tile(w, 3)  # 3000 samples: whole copies until >= 2048, nothing cropped (elmarc)
    m = librosa.feature.mfcc(y=tiled, sr=12000, n_mfcc=20, pad_mode="reflect")
    d = m[:, 1:] - m[:, :-1]
    dd = d[:, 1:] - d[:, :-1]
    want = np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1), dd.mean(1), dd.std(1)])
    np.testing.assert_allclose(pub, want, rtol=1e-5, atol=1e-4)
    text = mfcc_statistics(w)  # the default crops the repetition to 2048
    m2 = librosa.feature.mfcc(y=np.tile(w, 3)[:2048], sr=12000, n_mfcc=20)
    np.testing.assert_allclose(text[:20], m2.mean(1), rtol=1e-5, atol=1e-4)
    assert not np.allclose(pub, text)


def test_mfcc_front_end_follows_the_switch():
    w = [tone(0.1, freq=500.0)]
    a = ex.embed(ex.build_frontend("mfcc", as_published=True), w, sr=12000, device="cpu")
    np.testing.assert_allclose(a[0], mfcc_statistics(w[0], published=True), rtol=1e-6)
    b = ex.embed(ex.build_frontend("mfcc"), w, sr=12000, device="cpu")
    np.testing.assert_allclose(b[0], mfcc_statistics(w[0]), rtol=1e-6)


# ----------------------------------------------------------------------------- item 5: resampy, reflect-padded frames

def test_log_mel_reflect_padding_changes_only_the_edge_frames():
    w = _noise(1, seconds=2.0)[0]
    pub, text = audio.log_mel(w, published=True), audio.log_mel(w)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=w, sr=12000, n_fft=512, hop_length=256, n_mels=96, fmin=0.0, fmax=6000.0, power=2.0, pad_mode="reflect"),
        ref=1.0, amin=1e-10, top_db=80.0).T
    np.testing.assert_allclose(pub, ref, atol=1e-4)
    np.testing.assert_allclose(pub[2:-2], text[2:-2], atol=1e-4)  # frames that never reach the padding
    assert np.abs(pub[0] - text[0]).max() > 0.5


def test_resampling_is_resampy_kaiser_best(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.5, 16000, freq=700.0), sr=16000)
    spec = decode.InputSpec("waveform", 6000, "repeat", published=True)
    wave = decode.decode_cached(path, tmp_path / "cache", res_type=decode.res_type_of(spec))
    src = audio.load_audio(path, sr=16000)
    want = librosa.resample(src, orig_sr=16000, target_sr=12000, res_type="kaiser_best")[:6000]
    np.testing.assert_allclose(wave, want, atol=1e-6)
    default = decode.decode_cached(path, tmp_path / "cache")
    assert wave.shape == default.shape and not np.array_equal(wave, default)
    # two cache entries: the default key is unchanged, the study's filter has its own
    assert decode.cache_key(path) != decode.cache_key(path, res_type="kaiser_best")
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2


# ----------------------------------------------------------------------------- item 9: zero-padding in 0.0 dB

def test_zero_pad_appends_zero_db_frames():
    frames = np.full((10, 96), -30.0, np.float32)
    frames[0, 0] = 5.0
    pub = audio.repeat_frames(frames, 16, pad="zero", published=True)
    text = audio.repeat_frames(frames, 16, pad="zero")
    assert (pub[10:] == 0.0).all() and (text[10:] == 5.0 - audio.TOP_DB).all()
    np.testing.assert_array_equal(pub[:10], frames)
    # repetition is the same rule either way
    np.testing.assert_array_equal(audio.repeat_frames(frames, 25, published=True), audio.repeat_frames(frames, 25))


# ----------------------------------------------------------------------------- the feature set records it

def test_feature_set_records_the_switch_in_settings_and_key(tmp_path):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.6)
    kw = dict(dataset="folder", root=data, out=tmp_path / "fs", cache_dir=tmp_path / "cache", **SMALL)
    a = ex.extract("frame-level", input_seconds=0.5, **kw)
    b = ex.extract("frame-level", input_seconds=0.5, as_published=True, **kw)
    assert a != b
    ma, mb = (json.loads((f / "meta.json").read_text()) for f in (a, b))
    assert ma["as_published"] is False and mb["as_published"] is True
    assert mb["config"]["as_published"] is True and mb["input"]["published"] is True
    assert ma["config_key"] != mb["config_key"]
    with np.load(b / "features.npz") as z:
        X = z["X"]
    assert int((X.std(axis=0) > 0).sum()) <= 30 + 3
    # the same call again is served from the finished feature set
    assert ex.extract("frame-level", input_seconds=0.5, as_published=True, **kw) == b


def test_cli_flag(tmp_path):
    data = write_class_folders(tmp_path / "data", per_class=2, seconds=0.6)
    assert ex.main(["--arch", "frame-level", "--width", "small", "--dataset", "folder", "--root", str(data),
                    "--input-seconds", "0.5", "--out", str(tmp_path / "fs"), "--cache-dir", "none",
                    "--workers", "0", "--as-published"]) == 0
    (meta,) = list((tmp_path / "fs").rglob("meta.json"))
    assert json.loads(meta.read_text())["as_published"] is True
    assert ex.parse_args(["--as-published"]).as_published and not ex.parse_args([]).as_published


# ----------------------------------------------------------------------------- items 2, 3: the grid as run

def _folds_feature_set(tmp_path, name="fs", unequal=True, as_published=True):
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    d = synthetic_feature_set(n_clips=90, n_features=8, n_classes=3, n_folds=3, separation=1.2, seed=4)
    if unequal:  # folds of 15, 30 and 45 clips: pooled and mean differ
        d["fold"] = np.repeat([1, 2, 3], [15, 30, 45])[np.random.default_rng(1).permutation(90)]
    meta = {"seed": 0, "dataset": "toy", "arch": "vgg", "as_published": as_published}
    return write_feature_set(tmp_path / name, **d, meta=meta)


def _grid(tmp_path, fs, out, *extra, classifier="elm"):
    from threadpoolctl import threadpool_limits
    from classifiers.grid import main
    with threadpool_limits(1):
        main(["--features", str(fs), "--grid", "small", "--protocol", "cv-best", "--jobs", "1",
              "--classifier", classifier, "--out", str(tmp_path / out), *extra])
    from conftest import only_results
    return json.loads(only_results(tmp_path / out).read_text())


def test_grid_as_published_elm_selects_by_the_mean_of_fold_accuracies(tmp_path):
    fs = _folds_feature_set(tmp_path)
    res = _grid(tmp_path, fs, "pub", "--as-published")
    (e,) = res["entries"]
    assert e["classifier"] == "elm" and e["fold_weighting"] == "mean" and e["as_published"] is True
    run = e["runs"][0]
    scores = [g["score"] for g in run["grid_scores"]]
    # cross_val_score(...).mean(): each point's score is the unweighted mean of its fold accuracies,
    # and the point reported is the first best of those means
    assert run["accuracy"] == pytest.approx(np.mean(run["fold_accuracies"]), abs=1e-12)
    assert run["accuracy"] == pytest.approx(max(scores), abs=1e-12)
    assert scores.index(max(scores)) == [g["params"] for g in run["grid_scores"]].index(run["selected"])
    assert res["grid_settings"]["as_published"] is True and res["as_published"] == {"grid": True, "features": True}
    assert e["elm"]["engine"] == "fresh" and run["engine"] == "elm-fresh-per-fit"
    # the SVM keeps GridSearchCV's pooled folds (iid=True)
    svm = _grid(tmp_path, fs, "svm", "--as-published", classifier="svm")["entries"][0]
    assert svm["fold_weighting"] == "pooled"
    r = svm["runs"][0]
    hits = np.mean(np.array(r["predictions"]["y_true"]) == np.array(r["predictions"]["y_pred"]))
    assert r["accuracy"] == pytest.approx(hits, abs=1e-12)
    assert abs(np.mean(r["fold_accuracies"]) - r["accuracy"]) > 1e-4  # the folds are unequal
    # without the switch: pooled, one shared layer, and another results key
    text = _grid(tmp_path, fs, "text")
    (t,) = text["entries"]
    assert t["fold_weighting"] == "pooled" and "as_published" not in t and t["elm"]["engine"] == "fast"
    assert "as_published" not in text["grid_settings"] and text["results_key"] != res["results_key"]


def test_grid_as_published_draws_a_new_elm_layer_at_every_fit(tmp_path):
    from classifiers.elm import ELMClassifier
    from classifiers.reference import FreshELM
    from classifiers.featureset import synthetic_feature_set
    d = synthetic_feature_set(n_clips=60, n_features=6, n_classes=3, n_folds=3, separation=1.0, seed=2)
    y = np.unique(d["y"], return_inverse=True)[1]
    fold = d["fold"]
    tasks = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in (1, 2, 3)]
    scorer = FreshELM(d["X"], y, 3, seed=0)
    pred, failed = scorer.run([{"n_hidden": 40}], tasks)
    assert not failed
    draws = {scorer.fit_draw(40, tr, te) for tr, te in tasks}
    assert len(draws) == 3  # one hidden layer per fit
    for (tr, te), p in zip(tasks, pred[0]):
        elm = ELMClassifier(n_hidden=40, random_state=scorer.fit_draw(40, tr, te)).fit(d["X"][tr], y[tr])
        np.testing.assert_array_equal(p, elm.predict(d["X"][te]))
    # the validation fit and the test fit of a split are different networks
    tr, va, te = np.arange(30), np.arange(30, 45), np.arange(45, 60)
    assert scorer.fit_draw(40, tr, va) != scorer.fit_draw(40, tr, te)
    # reproducible: the same fits again give the same predictions
    again, _ = FreshELM(d["X"], y, 3, seed=0).run([{"n_hidden": 40}], tasks)
    assert all(np.array_equal(a, b) for a, b in zip(pred[0], again[0]))
    other, _ = FreshELM(d["X"], y, 3, seed=1).run([{"n_hidden": 40}], tasks)
    assert not all(np.array_equal(a, b) for a, b in zip(pred[0], other[0]))


def test_grid_as_published_split_scores_test_with_a_new_layer(tmp_path):
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    from threadpoolctl import threadpool_limits
    from classifiers.grid import run_grid
    d = synthetic_feature_set(n_clips=60, n_features=6, n_classes=2, separation=1.0, seed=5)
    fs = write_feature_set(tmp_path / "fs", **d, meta={"seed": 0, "dataset": "toy", "arch": "vgg"})
    with threadpool_limits(1):
        a = json.loads(run_grid([fs], classifier="elm", grid="small", out=tmp_path / "a", progress=False,
                                as_published=True).read_text())
        b = json.loads(run_grid([fs], classifier="elm", grid="small", out=tmp_path / "b", progress=False,
                                as_published=True).read_text())
    (e,) = a["entries"]
    assert e["protocol"] == "split" and e["runs"][0]["engine"] == "elm-fresh-per-fit"
    assert e["runs"][0]["predictions"] == b["entries"][0]["runs"][0]["predictions"]  # same bytes
    assert a["as_published"] == {"grid": True, "features": False}
    assert any("without --as-published" in n for n in a["notes"])


@pytest.mark.parametrize("extra,word", [(["--cv-weighting", "mean"], "--cv-weighting mean"),
                                        (["--elm-engine", "hpelm"], "--elm-engine hpelm")])
def test_grid_as_published_refuses_conflicting_flags(tmp_path, capsys, extra, word):
    fs = _folds_feature_set(tmp_path)
    with pytest.raises(SystemExit) as e:
        _grid(tmp_path, fs, "x", "--as-published", *extra)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert word in err and "--as-published" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- studies and the report

def test_study_as_published_rows_beside_the_text_rows_in_the_report(tmp_path):
    from studies.study import Study, run_study
    data = write_class_folders(tmp_path / "data", per_class=3)
    kw = dict(dataset="folder", root=str(data), folds=3, archs=["frame-level"], seeds=[0, 1], width="small",
              input_seconds=1.0, workers=0, batch_size=2, classifier="elm", grid="small", protocol="cv-best",
              out=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"), jobs=1)
    assert run_study(Study(**kw), log=lambda m: None) == 0
    assert run_study(Study(**kw, as_published=True), log=lambda m: None) == 0
    results = sorted((tmp_path / "runs" / "results" / "folder").glob("*/results.json"))
    flags = sorted(json.dumps(json.loads(p.read_text())["as_published"], sort_keys=True) for p in results)
    assert flags == ['{"features": false, "grid": false}', '{"features": true, "grid": true}']
    feature_sets = sorted((tmp_path / "runs" / "features" / "folder").glob("*/meta.json"))
    assert sorted(json.loads(p.read_text())["as_published"] for p in feature_sets) == [False, False, True, True]
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| frame-level")]
    assert any(line.startswith("| frame-level (as published) |") for line in rows)
    assert any(line.startswith("| frame-level |") for line in rows)
    assert "Rows labelled `(as published)`" in md
    assert "Why Student's" in md and "McNemar" in md


def test_report_labels_and_published_figure_lookup():
    from report.published import PUBLISHED, PUBLISHED_PROTOCOLS, base_arch, published_figure, published_variant
    assert published_variant({"grid": True, "features": True}) == "as published"
    assert published_variant({"grid": True, "features": False}) == "as published: grid only"
    assert published_variant({"grid": False, "features": True}) == "as published: features only"
    assert published_variant({"grid": False, "features": False}) is None and published_variant(None) is None
    assert base_arch("frame-level (as published)") == "frame-level" == base_arch("frame-level")
    (ds, arch, clf), fig = next(iter(PUBLISHED.items()))
    protocol = PUBLISHED_PROTOCOLS[ds][0]
    same = published_figure(ds, f"{arch} (as published)", clf, "random", protocol, fig.feature_length)
    assert same == published_figure(ds, arch, clf, "random", protocol, fig.feature_length) == fig
