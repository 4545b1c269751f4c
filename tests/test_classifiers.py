"""Grid constants and feature-set validation: the study's values, and bad input named clearly."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from classifiers import ELM_GRID, SVM_GRID
from classifiers.featureset import (check_compatible, load_feature_set, synthetic_feature_set,
                                    write_feature_set)
from classifiers.grids import grid_points, resolve_gamma

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def test_grids_are_the_studys():
    points = grid_points(SVM_GRID)
    rbf = [p for p in points if p["kernel"] == "rbf"]
    linear = [p for p in points if p["kernel"] == "linear"]
    assert len(points) == 32 and len(rbf) == 28 and len(linear) == 4
    assert {p["gamma"] for p in rbf} == {2 ** -3, 2 ** -5, 2 ** -7, 2 ** -9, 2 ** -11, 2 ** -13, "auto"}
    assert sorted({p["C"] for p in points}) == [0.1, 2, 8, 32]
    assert [p["n_hidden"] for p in grid_points(ELM_GRID)] == [100, 250, 500, 1200, 1800, 2500]
    assert resolve_gamma("auto", 3584) == 1 / 3584


def test_grids_match_the_published_text():
    text_path = SHARED / "reference" / "published_results.md"
    if not text_path.exists():
        pytest.skip(f"{text_path} absent (developer machines only)")
    text = text_path.read_text()
    gammas = re.search(r"gamma in \{([^}]*)\}", text).group(1)
    assert [float(2.0 ** -int(e)) for e in re.findall(r"2\^-(\d+)", gammas)] == SVM_GRID[0]["gamma"][:-1]
    assert "1/#features" in gammas
    cs = re.search(r"C in \{([^}]*)\}", text).group(1)
    assert [float(c) for c in cs.split(",")] == SVM_GRID[0]["C"] == SVM_GRID[1]["C"]
    units = re.search(r"hidden units in \{([^}]*)\}", text).group(1)
    assert [int(u) for u in units.split(",")] == ELM_GRID[0]["n_hidden"]


def test_empty_grid_is_refused():
    with pytest.raises(ValueError, match="empty classifier grid"):
        grid_points([])
    with pytest.raises(ValueError, match="empty classifier grid|invalid"):
        grid_points({"C": []})


def _write(tmp_path, name="fs", **kw):
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=5, seed=0)
    d.update(kw.pop("arrays", {}))
    return write_feature_set(tmp_path / name, **d, **kw)


def test_valid_feature_set_loads(tmp_path):
    fs = load_feature_set(_write(tmp_path))
    assert fs.X.shape == (60, 8) and fs.kind == "folds" and sorted(set(fs.fold)) == [1, 2, 3, 4, 5]
    split = load_feature_set(write_feature_set(tmp_path / "s", **synthetic_feature_set(n_clips=30)))
    assert split.kind == "split"


def test_nan_in_features(tmp_path):
    X = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=5)["X"]
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf.*clip00003"):
        load_feature_set(_write(tmp_path, arrays={"X": X}))


def test_labels_and_features_of_different_lengths(tmp_path):
    path = _write(tmp_path)
    with np.load(path / "features.npz") as f:
        arrays = dict(f)
    arrays["y"] = arrays["y"][:-1]
    np.savez(path / "features.npz", **arrays)
    with pytest.raises(ValueError, match=r"y has shape \(59,\), expected \(60,\)"):
        load_feature_set(path)


def test_class_with_fewer_clips_than_folds(tmp_path):
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=5)
    d["y"][57:] = "rare"  # 3 clips, 5 folds
    with pytest.raises(ValueError, match=r"fewer clips than the 5 folds.*rare"):
        load_feature_set(write_feature_set(tmp_path / "fs", **d))


def test_single_class(tmp_path):
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=5)
    d["y"][:] = "only"
    with pytest.raises(ValueError, match="single class"):
        load_feature_set(write_feature_set(tmp_path / "fs", **d))


def test_sets_of_different_datasets_or_clip_orders(tmp_path):
    a = load_feature_set(_write(tmp_path, "a"))
    b = load_feature_set(_write(tmp_path, "b", meta={"dataset": "other", "seed": 1}))
    with pytest.raises(ValueError, match="differ in dataset"):
        check_compatible([a, b])
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=5, seed=0)
    order = np.arange(60)[::-1]
    c = load_feature_set(write_feature_set(tmp_path / "c", **{k: v[order] for k, v in d.items()}))
    with pytest.raises(ValueError, match="different clips or clip orders"):
        check_compatible([a, c])
    check_compatible([a, load_feature_set(_write(tmp_path, "a2", meta={"seed": 2}))])


def test_unreadable_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path / "nope")):
        load_feature_set(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    write_feature_set(tmp_path / "m", **synthetic_feature_set(n_clips=30))
    (tmp_path / "m" / "meta.json").write_text("{broken")
    with pytest.raises(ValueError, match="meta.json"):
        load_feature_set(tmp_path / "m")
    assert json.loads((_write(tmp_path) / "meta.json").read_text())["protocol_hint"] == "folds"
