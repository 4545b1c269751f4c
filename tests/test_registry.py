"""architectures.FRONTENDS is the one table of front-ends that the CLIs, HEAR modules and report read."""
import importlib
import subprocess
import sys

import pytest

import architectures
from architectures import FRONTENDS, WIDTHS
from hear import MODULES


@pytest.mark.parametrize("name", list(FRONTENDS))
def test_table_row_matches_its_class(name):
    row = FRONTENDS[name]
    cls = row.load()
    assert cls is architectures.ARCHITECTURES[name]
    assert cls.input_kind == row.input_kind
    assert set(row.widths) == set(architectures.WIDTH_NAMES) and WIDTHS[name] is row.widths


@pytest.mark.parametrize("name", list(FRONTENDS))
def test_every_row_has_a_hear_module(name):
    mod = importlib.import_module(MODULES[name])
    assert mod.ARCH == name
    assert callable(mod.load_model) and callable(mod.get_scene_embeddings)
    assert callable(mod.get_timestamp_embeddings)


def test_unknown_hear_module_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("hear.randomcnn_no_such_frontend")


def test_reading_the_table_imports_no_torch():
    code = ("import sys, architectures; names = list(architectures.FRONTENDS); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(len(FRONTENDS))


def test_build_names_the_choices():
    with pytest.raises(ValueError, match="unknown architecture 'nope'; available: sample-level"):
        architectures.build("nope")
    with pytest.raises(ValueError, match="unknown width 'huge'"):
        architectures.build("vgg", width="huge")


def test_a_classifier_row_is_all_the_grid_needs(tmp_path, monkeypatch):
    """A new CLASSIFIERS row (here: the SVM scorer under another name) runs with --classifier and 'all'."""
    import json

    from classifiers import grid
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    from classifiers.grids import GRIDS
    monkeypatch.setitem(grid.CLASSIFIERS, "svm2", grid.CLASSIFIERS["svm"])
    monkeypatch.setitem(GRIDS["small"], "svm2", GRIDS["small"]["svm"])
    fs = write_feature_set(tmp_path / "fs", **synthetic_feature_set(n_clips=60, n_features=6, separation=3.0))
    res = json.loads(grid.run_grid([fs], classifier="all", grid="small", out=tmp_path / "r",
                                   progress=False).read_text())
    by = {e["classifier"]: e["mean"] for e in res["entries"]}
    assert set(by) == set(grid.CLASSIFIERS) and "svm2" in by and by["svm2"] == by["svm"]
    assert "svm2" in grid.build_parser()._option_string_actions["--classifier"].choices
