"""The settings objects (``toolkit/settings.py``): one frozen object per stage, each checking its values
with one message naming the flag, the value and what is allowed, deriving variants by ``replace``; and
no function outside ``tests/`` and ``benchmarks/`` taking more than 8 parameters."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("toolkit", "audiodata", "architectures", "features", "classifiers", "report", "trained", "studies",
            "hear", "examples", "tools")
MAX_PARAMETERS = 8


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def too_many_parameters(root: Path = REPO, packages=PACKAGES, limit: int = MAX_PARAMETERS) -> list[str]:
    """``path:line name (n)`` of every function or method whose parameters (``self``/``cls`` aside,
    ``*args`` and ``**kwargs`` counted) are more than ``limit``."""
    found = []
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                       for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = len(_parameters(node, id(node) in methods))
                    if n > limit:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n})")
    return found


def test_no_function_outside_tests_and_benchmarks_takes_more_than_8_parameters():
    assert too_many_parameters() == []


def test_the_parameter_count_check_sees_what_it_must(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "def ok(a, b, c, d, e, f, g, h): pass\n"
        "def nine(a, b, c, d, e, f, g, h, i): pass\n"
        "def star(a, b, c, d, e, f, g, *args, **kw): pass\n"
        "class C:\n"
        "    def method(self, a, b, c, d, e, f, g, h): pass\n"
        "    def kwonly(self, a, *, b, c, d, e, f, g, h, i): pass\n"
        "def outer():\n"
        "    def inner(a, b, c, d, e, f, g, h, i, j): pass\n")
    found = too_many_parameters(tmp_path, ("pkg",))
    assert [f.split(" ", 1)[1] for f in found] == ["nine (9)", "star (9)", "kwonly (9)", "inner (10)"]


# ----------------------------------------------------------------------------- bad values at every CLI

def _usage_error(main, argv, capsys) -> str:
    """``main(argv)`` must stop before any work with exit status 2 and ONE error line (argparse's usage
    line aside), without a traceback; returns that line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def _extract(argv):
    from features.extract import main
    return main(argv)


def _grid(argv):
    from classifiers.grid import main
    return main(["--features", "nowhere", *argv])


def _train(argv):
    from trained.train import main
    return main(["--arch", "sample-level", *argv])


def _study(argv):
    from studies.__main__ import main
    return main(argv)


def _batchnorm(argv):
    from studies.batchnorm import main
    return main(argv)


BAD_VALUES = [  # (entry point, argv, what the one message must say: the flag, the value, what is allowed)
    (_extract, ["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
    (_extract, ["--workers", "-1"], "--workers -1: expected an integer >= 0"),
    (_extract, ["--input-seconds", "0"], "--input-seconds 0.0: expected a finite number > 0"),
    (_extract, ["--input-seconds", "nan"], "--input-seconds nan: expected a finite number > 0"),
    (_extract, ["--seed", str(2**64)], f"seed {2**64} is outside 0..4294967295"),
    (_extract, ["--seed", "-1"], "seed -1 is outside 0..4294967295"),
    (_extract, ["--seed", "0", "0"], "seed 0 is given twice"),
    (_extract, ["--device", "gpu"], "--device gpu: expected auto"),
    (_extract, ["--address", "host:1"], "--address host:1: expected no address with --engine local"),
    (_grid, ["--jobs", "0"], "--jobs 0: expected an integer >= 1"),
    (_grid, ["--fold-seed", "-1"], "--fold-seed -1: expected an integer from 0 to 4294967295"),
    (_grid, ["--folds", "1"], "--folds 1: expected an integer >= 2"),
    (_grid, ["--jobs", "-1"], "--jobs -1: expected an integer >= 1 (-1 is for --engine ray only)"),
    (_train, ["--epochs", "0"], "--epochs 0: expected an integer >= 1"),
    (_train, ["--epochs", "-1"], "--epochs -1: expected an integer >= 1"),
    (_train, ["--lr", "0"], "--lr 0.0: expected a finite number > 0"),
    (_train, ["--lr", "inf"], "--lr inf: expected a finite number > 0"),
    (_train, ["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
    (_train, ["--n-classes", "0", "--dry-run"], "--n-classes 0: expected an integer >= 1"),
    (_train, ["--n-classes", "-1", "--dry-run"], "--n-classes -1: expected an integer >= 1"),
    (_train, ["--fold-seed", "-1"], "--fold-seed -1: expected an integer from 0 to 4294967295"),
    (_train, ["--seed", str(2**64)], f"seed {2**64} is outside 0..4294967295"),
    (_train, ["--folds", "3", "--fold", "4"], "--fold 4: expected an integer from 1 to 3"),
    (_train, ["--patience", "0"], "--patience 0: expected an integer >= 1"),
    (_train, ["--precision", "fp16", "--device", "cpu"], "--precision fp16 needs --device cuda"),
    (_study, ["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
    (_study, ["--jobs", "0"], "--jobs 0: expected an integer >= 1"),
    (_study, ["--fold-seed", "-1"], "--fold-seed -1: expected an integer from 0 to 4294967295"),
    (_study, ["--folds", "1"], "--folds 1: expected an integer >= 2"),
    (_batchnorm, ["--batch-sizes", "0", "4"], "--batch-sizes 0: expected an integer >= 1"),
    (_batchnorm, ["--batch-sizes", "4"], "--batch-sizes 4: expected at least two distinct batch sizes"),
    (_batchnorm, ["--jobs", "0"], "--jobs 0: expected an integer >= 1"),
]


@pytest.mark.parametrize("entry, argv, message", BAD_VALUES,
                         ids=[f"{e.__name__[1:]} {' '.join(a)}" for e, a, _ in BAD_VALUES])
def test_a_bad_value_is_one_usage_error_naming_flag_value_and_what_is_allowed(entry, argv, message, capsys):
    assert message in _usage_error(entry, argv, capsys)


def test_seed_lists_are_accepted_with_commas_or_spaces():
    from features.extract import parse_args
    assert parse_args(["--seed", "0,1", "2"]).seed == [0, 1, 2]
    assert parse_args(["--seed", "0", "1"]).seed == [0, 1]
    from studies.__main__ import parse_args as study_args
    assert study_args(["--seed", "3,1"]).settings.seeds == (3, 1)


# ----------------------------------------------------------------------------- the objects

def test_settings_are_frozen_checked_and_derived_by_replace():
    import dataclasses
    from classifiers.grid import GridSettings
    from features.extract import ExtractSettings
    from toolkit.settings import SettingsError
    from trained.train import TrainSettings
    s = ExtractSettings(arch="vgg", width="small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 1
    t = s.replace(seed=1)
    assert (t.arch, t.width, t.seed, s.seed) == ("vgg", "small", 1, 0)
    assert t.key() != s.key() and s.replace(workers=0).key() == s.key()  # workers change no number
    with pytest.raises(SettingsError, match="--seed 4294967296: expected an integer from 0 to 4294967295"):
        s.replace(seed=2**32)
    g = GridSettings(features=["a"], cv_weighting="mean")
    assert g.replace(features=["b"]).identity() == g.identity()
    assert g.replace(standardize=True).identity() != g.identity()
    assert g.record()["features"] == ["a"] and g.record()["cv_weighting"] == "mean"
    with pytest.raises(SettingsError, match="--cv-weighting median: expected one of pooled, mean"):
        g.replace(cv_weighting="median")
    tr = TrainSettings(arch="vgg")
    assert tr.resolved("cpu").lr == 1e-3 and TrainSettings(arch="samplecnn").resolved("cpu").lr == 0.01
    assert tr.resolved("cpu").precision == "float32" and tr.resolved("cuda").precision == "fp16"
    assert tr.replace(epochs=99).identity() == tr.identity()  # a run resumes with more epochs
    assert tr.replace(lr=0.5).identity() != tr.identity()
