"""audiodata/datasets.py and audiodata/synthetic.py on tiny generated trees with the real layouts."""
import collections
import hashlib

import librosa
import numpy as np
import pytest

from conftest import write_tree
from audiodata.audio import load_audio
from audiodata.datasets import (BALLROOM_FOLDERS, DATASETS, EXTENDED_BALLROOM_CLASSES, GTZAN_GENRES,
                                load_dataset)
from audiodata.synthetic import CLASSES, make_synthetic


def _gtzan_names(per_genre, ext=".au"):
    return [f"{g}/{g}.{i:05d}{ext}" for g in GTZAN_GENRES for i in range(per_genre)]


def _reasons(ds):
    return " | ".join(p["reason"] for p in ds.problems)


# ------------------------------------------------------------------------------------------------ GTZAN

def test_gtzan_folds_are_stratified_and_seeded(tmp_path):
    write_tree(tmp_path / "genres", _gtzan_names(10))
    ds = load_dataset("gtzan", tmp_path)
    assert ds.root == tmp_path / "genres" and ds.protocol_hint == "folds"
    assert len(ds) == 100 and ds.classes == sorted(GTZAN_GENRES) and ds.problems == []
    assert ds.clips[0].id == "blues/blues.00000.au" and list(ds.ids) == sorted(ds.ids)
    per_fold = collections.Counter((c.fold, c.label) for c in ds.clips)
    assert set(per_fold.values()) == {1} and len(per_fold) == 100     # one clip per genre per fold
    assert ds.info["seed"] == 0 and ds.info["folds"] == 10
    again = load_dataset("gtzan", tmp_path / "genres")                 # root = genres/ itself
    assert [c.fold for c in again.clips] == [c.fold for c in ds.clips]
    other = load_dataset("gtzan", tmp_path, seed=1)
    assert [c.fold for c in other.clips] != [c.fold for c in ds.clips]


def test_gtzan_kaggle_layout_and_unknown_genre(tmp_path):
    base = tmp_path / "Data" / "genres_original"
    write_tree(base, _gtzan_names(3, ".wav") + ["polka/polka.00000.wav"])
    (base / "blues" / "._blues.00000.wav").write_bytes(b"\0" * 10)     # macOS resource fork: ignored
    ds = load_dataset("gtzan", tmp_path, folds=3)
    assert ds.root == base and len(ds) == 30
    assert len(ds.problems) == 1 and "polka" in ds.problems[0]["path"] and "unknown label" in _reasons(ds)


def test_gtzan_split_lists_resolve_either_extension(tmp_path):
    write_tree(tmp_path / "genres", _gtzan_names(4))     # .au, as distributed
    lists = tmp_path / "split"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("blues/blues.00000.wav\nblues/blues.00001.wav\n"
                                              "rock/rock.00000.wav\nblues/blues.00099.wav\n")
    (lists / "valid_filtered.txt").write_text("jazz/jazz.00000.wav\n\n")
    (lists / "test_filtered.txt").write_text("pop/pop.00003.au\nkpop/kpop.00001.wav\n")
    ds = load_dataset("gtzan", tmp_path, split_dir=lists)
    assert ds.protocol_hint == "split"
    assert [(c.id, c.split) for c in ds.clips] == [
        ("blues/blues.00000.au", "train"), ("blues/blues.00001.au", "train"),
        ("jazz/jazz.00000.au", "val"), ("pop/pop.00003.au", "test"), ("rock/rock.00000.au", "train")]
    assert all(c.fold is None for c in ds.clips)
    reasons = _reasons(ds)
    assert len(ds.problems) == 2
    assert "listed in train_filtered.txt but missing" in reasons and "unknown genre 'kpop'" in reasons


def test_gtzan_split_errors(tmp_path):
    write_tree(tmp_path / "genres", _gtzan_names(2))
    lists = tmp_path / "split"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("blues/blues.00000.wav\n")
    (lists / "valid_filtered.txt").write_text("blues/blues.00001.wav\n")
    with pytest.raises(FileNotFoundError, match="test_filtered.txt"):
        load_dataset("gtzan", tmp_path, split_dir=lists)
    (lists / "test_filtered.txt").write_text("blues/blues.00000.wav\n")
    with pytest.raises(ValueError, match="one split only"):
        load_dataset("gtzan", tmp_path, split_dir=lists)


def test_gtzan_real_split_lists(tmp_path, shared_dir):
    lists = shared_dir / "data" / "gtzan_split"
    if not lists.is_dir():
        pytest.skip(f"{lists} is absent")
    write_tree(tmp_path / "gtzan" / "genres", _gtzan_names(100), seconds=0.01)   # the original 1000 .au
    ds = load_dataset("gtzan", tmp_path / "gtzan", split_dir=lists)
    assert collections.Counter(c.split for c in ds.clips) == {"train": 443, "val": 197, "test": 290}
    assert ds.classes == sorted(GTZAN_GENRES) and ds.problems == []
    assert all(c.path.suffix == ".au" for c in ds.clips)
    assert load_dataset("gtzan", tmp_path / "gtzan", split_dir=lists).ids.tolist() == ds.ids.tolist()


# --------------------------------------------------------------------------------------------- Ballroom

def test_ballroom_merges_rumbas(tmp_path):
    names = [f"BallroomData/{folder}/Media-{i:06d}.wav" for folder in BALLROOM_FOLDERS if folder != "Rumba"
             for i in range(3)] + ["BallroomData/nada/x.wav"]
    write_tree(tmp_path, names)
    (tmp_path / "BallroomData" / "allBallroomFiles").write_text("list\n")
    ds = load_dataset("ballroom", tmp_path, folds=3)
    assert ds.classes == ["ChaChaCha", "Jive", "Quickstep", "Rumba", "Samba", "Tango", "VienneseWaltz", "Waltz"]
    counts = collections.Counter(c.label for c in ds.clips)
    assert counts["Rumba"] == 9 and counts["Waltz"] == 3 and len(ds) == 30
    assert ds.clips[0].id.startswith("ChaChaCha/") and {c.fold for c in ds.clips} == {1, 2, 3}
    assert len(ds.problems) == 1 and "folder 'nada'" in _reasons(ds)


def test_extended_ballroom_13_classes(tmp_path):
    write_tree(tmp_path / "extendedballroom", [f"{c}/{100200 + i}.mp3" for c in EXTENDED_BALLROOM_CLASSES
                                               for i in range(2)])
    ds = load_dataset("extended-ballroom", tmp_path, folds=2)
    assert ds.classes == sorted(EXTENDED_BALLROOM_CLASSES) and len(ds) == 26
    assert all(collections.Counter(c.label for c in ds.clips if c.fold == k) == {c: 1 for c in ds.classes}
               for k in (1, 2))


def test_too_few_clips_per_class(tmp_path):
    write_tree(tmp_path, [f"{c}/{i}.mp3" for c in EXTENDED_BALLROOM_CLASSES for i in range(2)])
    with pytest.raises(ValueError, match="at least 10 clips per class"):
        load_dataset("extended-ballroom", tmp_path)


# ------------------------------------------------------------------------------------------------- US8K

US8K_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class\n"


def test_us8k_uses_the_metadata_folds(tmp_path):
    rows = [("100032-3-0-0.wav", 1, 3, "dog_bark"), ("100263-2-0-117.wav", 5, 2, "children_playing"),
            ("100648-1-0-0.wav", 10, 1, "car_horn"), ("101281-3-0-0.wav", 2, 3, "dog_bark"),
            ("missing-3-0-0.wav", 3, 3, "dog_bark"), ("moved-1-0-0.wav", 4, 1, "car_horn")]
    meta = tmp_path / "UrbanSound8K" / "metadata"
    meta.mkdir(parents=True)
    (meta / "UrbanSound8K.csv").write_text(US8K_HEADER + "".join(
        f"{n},{n.split('-')[0]},0.0,0.317551,1,{f},{cid},{cls}\n" for n, f, cid, cls in rows))
    audio = tmp_path / "UrbanSound8K" / "audio"
    write_tree(audio, [f"fold{f}/{n}" for n, f, _, _ in rows[:4]] + ["fold7/moved-1-0-0.wav",
                                                                      "fold2/stray-9-0-0.wav"])
    ds = load_dataset("us8k", tmp_path)                       # root above UrbanSound8K/ also works
    assert ds.protocol_hint == "folds" and len(ds) == 4
    assert [(c.id, c.label, c.fold) for c in ds.clips] == [
        ("audio/fold1/100032-3-0-0.wav", "dog_bark", 1), ("audio/fold10/100648-1-0-0.wav", "car_horn", 10),
        ("audio/fold2/101281-3-0-0.wav", "dog_bark", 2), ("audio/fold5/100263-2-0-117.wav", "children_playing", 5)]
    reasons = _reasons(ds)
    assert len(ds.problems) == 3
    assert "(line 6) but missing" in reasons
    assert "found in fold7 but the metadata (line 7) says fold4" in reasons
    assert "not in metadata/UrbanSound8K.csv" in reasons


def test_us8k_bad_metadata(tmp_path):
    (tmp_path / "metadata").mkdir()
    with pytest.raises(FileNotFoundError, match="UrbanSound8K.csv"):
        load_dataset("us8k", tmp_path)
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_text(US8K_HEADER + "a.wav,1,0,1,1,one,3,dog_bark\n")
    with pytest.raises(ValueError, match="line 2: fold 'one'"):
        load_dataset("us8k", tmp_path)


# ----------------------------------------------------------------------------------------- folder / csv

def test_folder_classes_from_top_level_folders(tmp_path):
    write_tree(tmp_path, [f"cats/{i}.wav" for i in range(3)] + [f"dogs/loud/{i}.flac" for i in range(3)]
               + ["top.wav", ".hidden/x.wav"])
    (tmp_path / "cats" / "notes.txt").write_text("not audio")
    ds = load_dataset("folder", tmp_path, folds=3)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 6   # dogs/loud/ belongs to dogs
    assert ds.problems[0]["path"].endswith("top.wav") and len(ds.problems) == 1


def test_csv_manifest_split(tmp_path):
    write_tree(tmp_path / "clips", ["a.wav", "b.wav", "c.ogg", "d.wav"])
    manifest = tmp_path / "lists" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,label,split\n../clips/a.wav,x,train\n../clips/b.wav,y,Valid\n"
                        "../clips/c.ogg,x,validation\n../clips/d.wav,y,test\n../clips/gone.wav,y,test\n")
    ds = load_dataset("csv", manifest=manifest)
    assert ds.protocol_hint == "split" and ds.root == manifest.parent
    assert [(c.id, c.split) for c in ds.clips] == [("../clips/a.wav", "train"), ("../clips/b.wav", "val"),
                                                  ("../clips/c.ogg", "val"), ("../clips/d.wav", "test")]
    assert ds.clips[0].path.is_file()
    assert len(ds.problems) == 1 and "(line 6) but missing" in _reasons(ds)


def test_csv_manifest_folds_and_errors(tmp_path):
    write_tree(tmp_path, [f"{i}.wav" for i in range(4)])
    m = tmp_path / "manifest.csv"
    m.write_text("path,label,fold\n0.wav,x,1\n1.wav,x,2\n2.wav,y,1\n3.wav,y,2\n")
    ds = load_dataset("csv", root=tmp_path)                    # <root>/manifest.csv by default
    assert ds.protocol_hint == "folds" and [c.fold for c in ds.clips] == [1, 2, 1, 2]
    m.write_text("path,label\n0.wav,x\n1.wav,x\n2.wav,y\n3.wav,y\n")
    assert {c.fold for c in load_dataset("csv", manifest=m, folds=2).clips} == {1, 2}
    m.write_text("path,label,split\n0.wav,x,train\n1.wav,x,dev\n")
    with pytest.raises(ValueError, match=r"line 3: split 'dev' is not one of"):
        load_dataset("csv", manifest=m)
    m.write_text("path,label,fold\n0.wav,x,0\n")
    with pytest.raises(ValueError, match="line 2: fold '0'"):
        load_dataset("csv", manifest=m)
    m.write_text("path,label,split\n0.wav,x,train\n1.wav,x,test\n")
    with pytest.raises(ValueError, match="no val clips"):
        load_dataset("csv", manifest=m)
    m.write_text("file,class\n0.wav,x\n")
    with pytest.raises(ValueError, match="lacks 'path' and 'label'"):
        load_dataset("csv", manifest=m)


# ------------------------------------------------------------------------------------------ bad roots

def test_missing_root_empty_dataset_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*genres/<genre>"):
        load_dataset("gtzan", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs a root folder"):
        load_dataset("us8k")
    (tmp_path / "genres" / "blues").mkdir(parents=True)
    with pytest.raises(ValueError, match="no usable clips"):
        load_dataset("gtzan", tmp_path)
    with pytest.raises(ValueError, match="no class folder"):
        load_dataset("ballroom", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; available: gtzan"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="gtzan only"):
        load_dataset("folder", tmp_path, split_dir=tmp_path)
    assert set(DATASETS) == {"gtzan", "ballroom", "extended-ballroom", "us8k", "folder", "csv", "synthetic"}


# -------------------------------------------------------------------------------------------- synthetic

def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_is_deterministic_and_generated_once(tmp_path):
    a = make_synthetic(tmp_path / "a", n_per_class=4, duration=1.0, seed=3)
    b = make_synthetic(tmp_path / "b", n_per_class=4, duration=1.0, seed=3)
    assert _digest(a) == _digest(b) and len(_digest(a)) == 6 * 4 + 2
    assert _digest(make_synthetic(tmp_path / "c", n_per_class=4, duration=1.0, seed=4)) != _digest(a)
    with pytest.raises(FileExistsError):
        make_synthetic(a)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())    # no temp folder left behind
    ds = load_dataset("synthetic", root=a)
    assert ds.name == "synthetic" and ds.classes == sorted(CLASSES) and ds.protocol_hint == "split"
    assert collections.Counter(c.split for c in ds.clips) == {"train": 12, "val": 6, "test": 6}
    wave = load_audio(ds.clips[0].path)        # written at 22 050 Hz, loaded at 12 kHz
    assert 0.85 * 12000 - 1 <= len(wave) <= 1.15 * 12000 + 1


def test_synthetic_default_root_generated_on_first_use(tmp_path, monkeypatch):
    import audiodata.datasets as datasets
    import audiodata.synthetic as synthetic
    calls = []
    real = synthetic.make_synthetic
    monkeypatch.setattr(synthetic, "make_synthetic",
                        lambda root, **kw: calls.append(root) or real(root, n_per_class=4, duration=0.5))
    monkeypatch.setattr(datasets, "DEFAULT_SYNTHETIC_ROOT", tmp_path / "runs" / "data" / "synthetic")
    first = load_dataset("synthetic")
    second = load_dataset("synthetic")
    assert len(calls) == 1 and first.ids.tolist() == second.ids.tolist() and len(first) == 24


def test_synthetic_classes_differ_in_timbre_and_rhythm(tmp_path):
    """MFCC statistics find the timbre (not the loudness); the fast rhythms have more onsets per second.

    MFCC means and deviations hardly see the rhythm (about 0.55 on the 6 classes here, chance 0.17,
    mostly timbre right and rhythm guessed): front-ends with temporal receptive fields have
    something to gain, as on Ballroom.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ds = load_dataset("synthetic", root=make_synthetic(tmp_path / "s", n_per_class=6, duration=3.0))
    feats, rates, loudness = [], [], []
    for clip in ds.clips:
        wave = load_audio(clip.path)
        mfcc = librosa.feature.mfcc(y=wave, sr=12000, n_mfcc=20)
        feats.append(np.r_[mfcc.mean(axis=1), mfcc.std(axis=1)])
        onsets = librosa.onset.onset_detect(y=wave, sr=12000, units="time")
        rates.append(len(onsets) / (len(wave) / 12000))
        loudness.append([np.log(np.mean(wave**2))])
    y = ds.labels
    timbre = np.array([label.split("-")[0] for label in y])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc = cross_val_score(model, np.array(feats), y, cv=3).mean()
    timbre_acc = cross_val_score(model, np.array(feats), timbre, cv=3).mean()
    loud_acc = cross_val_score(model, np.array(loudness), y, cv=3).mean()
    assert acc > 0.4, f"MFCC statistics reach {acc:.2f} on the 6 classes (chance 0.17)"
    assert timbre_acc > 0.7, f"MFCC statistics reach {timbre_acc:.2f} on the 3 timbres (chance 0.33)"
    assert loud_acc < 0.4, f"loudness alone should not separate the classes ({loud_acc:.2f})"
    rates = np.array(rates)
    fast = rates[np.char.endswith(y, "-fast")]
    slow = rates[np.char.endswith(y, "-slow")]
    assert fast.mean() > 1.5 * slow.mean(), (fast, slow)
    assert np.median(fast) > np.max(slow) * 0.9, (fast, slow)


# ---------------------------------------------------------------------------- issue 9: inputs that broke

def test_no_generated_folds_when_folds_is_none(tmp_path):
    write_tree(tmp_path / "f", ["a/1.wav", "b/2.wav"])  # one clip per class: no K-fold possible
    ds = load_dataset("folder", tmp_path / "f", folds=None)
    assert ds.protocol_hint is None and [c.fold for c in ds.clips] == [None, None]
    write_tree(tmp_path / "m", ["a/1.wav", "b/2.wav"])
    (tmp_path / "m" / "m.csv").write_text("path,label,fold\na/1.wav,a,2\nb/2.wav,b,1\n")
    own = load_dataset("csv", manifest=tmp_path / "m" / "m.csv", folds=None)
    assert own.protocol_hint == "folds" and [c.fold for c in own.clips] == [2, 1]  # the manifest's own


def test_short_rows_are_named_by_line(tmp_path):
    write_tree(tmp_path, ["a/1.wav", "b/2.wav"])
    (tmp_path / "m.csv").write_text("path,label,fold\na/1.wav,a,1\nb/2.wav,b\n")
    with pytest.raises(ValueError, match=r"m\.csv: line 3: too few fields \(\['fold'\] missing\)"):
        load_dataset("csv", manifest=tmp_path / "m.csv")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_text(US8K_HEADER + "a.wav,1,0\n")
    with pytest.raises(ValueError, match=r"UrbanSound8K\.csv: line 2: too few fields"):
        load_dataset("us8k", tmp_path)


def test_a_name_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path):
    import os
    write_tree(tmp_path, ["a/1.wav", "b/2.wav"])
    with open(os.path.join(os.fsencode(tmp_path / "a"), b"\xff.wav"), "wb") as f:
        f.write((tmp_path / "a" / "1.wav").read_bytes())
    ds = load_dataset("folder", tmp_path, folds=None)
    assert [c.id for c in ds.clips] == ["a/1.wav", "b/2.wav"]
    [p] = ds.problems
    assert p["path"] == repr(str(tmp_path / "a") + "/\udcff.wav") and "not valid UTF-8" in p["reason"]
