"""The report on bad results files and bad output folders (issue 19): each results file is read
defensively (malformed in any way -> named in the problems section, the rest built), every figure and
page is written atomically, and an unwritable --out is one message."""
from __future__ import annotations

import builtins
import copy
import errno
import json
import math
import os
import tempfile
from pathlib import Path

import matplotlib.image
import pytest

from report.build import main, render_report
from report.load import load_results
from test_report import write_results

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
BAD_VALUES = [None, "x", -1, 1.5, float("inf"), float("nan"), [], {}, True, [[[]]], {"a": {"b": 1}}]


def _good(tmp_path, arch="vgg"):
    return write_results(tmp_path / "good", "gtzan", arch, {("svm", "split"): [0.6, 0.62],
                                                            ("elm", "split"): [0.5, 0.55]})


def _paths(node, prefix=(), depth=0):
    """Every key path of a JSON tree (lists: their first item only), to ``depth`` 5."""
    yield prefix
    if depth >= 5:
        return
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,), depth + 1)
    elif isinstance(node, list) and node:
        yield from _paths(node[0], prefix + (0,), depth + 1)


def _set(tree, path, value):
    tree = copy.deepcopy(tree)
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return tree


def _check_rows(rows):
    for r in rows:
        assert all(math.isfinite(a) and 0 <= a <= 1 for a in r["accuracies"])
        assert math.isfinite(r["mean"]) and (r["std"] is None or math.isfinite(r["std"]))
        assert r["feature_length"] is None or (isinstance(r["feature_length"], int) and r["feature_length"] > 0)
        for k in ("dataset", "arch", "width", "classifier", "protocol"):
            assert isinstance(r[k], str)


def test_every_field_of_a_results_file_replaced_by_a_bad_value(tmp_path):
    """Each key path of a real results file (down to predictions and runs) set to each of 11 bad values:
    the loader never raises; the file gives usable rows or is named with a reason."""
    good = _good(tmp_path)
    data = json.loads(good.read_text())
    paths = [p for p in _paths(data) if p]
    n = 0
    for i, path in enumerate(paths):
        for j, value in enumerate(BAD_VALUES):
            f = tmp_path / "m" / f"{i}_{j}" / "results.json"
            f.parent.mkdir(parents=True)
            f.write_text(json.dumps(_set(data, path, value)))   # NaN and Infinity as Python writes them
            rows, read, messages = load_results([f], log=lambda m: None)
            _check_rows(rows)
            assert rows or any(str(f) in m for m in messages), (path, value)
            n += 1
    assert n == len(paths) * len(BAD_VALUES) and n > 300


def _nested(depth):
    return "[" * depth + "]" * depth


ISSUE_CASES = {
    "feature_length_inf": lambda d: {**d, "feature_length": float("inf")},
    "feature_length_nan": lambda d: {**d, "feature_length": float("nan")},
    "feature_length_fraction": lambda d: {**d, "feature_length": 12.5},
    "n_params_negative": lambda d: {**d, "n_params": -3},
    "ids_not_a_list": lambda d: _set(d, ("entries", 0, "runs", 0, "predictions", "ids"), 7),
    "ids_a_string": lambda d: _set(d, ("entries", 0, "runs", 0, "predictions", "ids"), "abc"),
    "y_pred_of_lists": lambda d: _set(d, ("entries", 0, "runs", 0, "predictions", "y_pred"), [[1]] * 60),
    "arch_not_a_string": lambda d: {**d, "arch": {"name": "vgg"}},
    "entries_not_a_list": lambda d: {**d, "entries": {"0": 1}},
    "accuracy_infinity": lambda d: _set(d, ("entries", 0, "runs", 0, "accuracy"), float("inf")),
}


def test_the_issues_files_are_listed_and_the_rest_is_built(tmp_path, capsys):
    good = _good(tmp_path)
    data = json.loads(good.read_text())
    bad = {}
    for name, mutate in ISSUE_CASES.items():
        f = write_results(tmp_path / "bad" / name, "gtzan", f"x{name}", {("svm", "split"): [0.5]})
        f.write_text(json.dumps(mutate({**data, "arch": f"x{name}"}) if name != "arch_not_a_string"
                                else mutate(data)))
        bad[name] = f
    deep = tmp_path / "bad" / "deep" / "results.json"
    deep.parent.mkdir(parents=True)
    deep.write_text('{"kind": "randomcnn-results", "entries": ' + _nested(100_000) + "}")
    bad["nested_100000_deep"] = deep
    binary = tmp_path / "bad" / "binary" / "results.json"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\xff\xfe\x00garbage")
    bad["not_utf8"] = binary
    out = render_report(results=[tmp_path], out=tmp_path / "report")
    md = (out / "report.md").read_text()
    problems = md.split("Skipped or corrected", 1)[1]
    for name, f in bad.items():
        assert str(f) in problems, name
    assert "| vgg |" in md   # the good file's rows are in the report
    assert "Traceback" not in capsys.readouterr().err


def test_cli_with_a_deep_file_gives_a_report(tmp_path, capsys):
    _good(tmp_path)
    deep = tmp_path / "deep" / "results.json"
    deep.parent.mkdir()
    deep.write_text(_nested(100_000))
    main([str(tmp_path), "--out", str(tmp_path / "rep")])
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == str(tmp_path / "rep")
    assert "nested too deeply" in (tmp_path / "rep" / "report.md").read_text()


def test_malformed_per_layer_section_is_left_out(tmp_path):
    good = _good(tmp_path)
    data = json.loads(good.read_text())
    data["per_layer"] = {"layers": "pool1", "curves": [{"classifier": "svm"}]}
    good.write_text(json.dumps(data))
    out = render_report(results=[tmp_path], out=tmp_path / "report")
    assert "| vgg |" in (out / "report.md").read_text()


# ---------------------------------------------------------------------------------- writing

class _Disk:
    """Fail every write into ``folder`` after ``budget`` of them with ENOSPC (atomic temp files and
    plain opens alike), as a disk that fills up while the report is written."""

    def __init__(self, monkeypatch, folder: Path, budget: int):
        self.folder, self.budget, self.writes = str(folder), budget, 0
        real_mkstemp, real_open = tempfile.mkstemp, builtins.open

        def mkstemp(*a, dir=None, **k):
            self._count(dir)
            return real_mkstemp(*a, dir=dir, **k)

        def fake_open(file, mode="r", *a, **k):
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax"):
                self._count(os.path.dirname(os.fspath(file)))
            return real_open(file, mode, *a, **k)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(builtins, "open", fake_open)

    def _count(self, where):
        if where is not None and os.path.abspath(where) == self.folder:
            self.writes += 1
            if self.writes > self.budget:
                raise OSError(errno.ENOSPC, "No space left on device")


def _png_ok(path: Path) -> bool:
    try:
        matplotlib.image.imread(path)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("budget", [0, 2, 4])
def test_a_full_disk_while_re_rendering_leaves_the_earlier_report_whole(tmp_path, monkeypatch, capsys, budget):
    write_results(tmp_path / "r", "gtzan", "vgg", {("svm", "split"): [0.6, 0.62]})
    out = tmp_path / "report"
    render_report(results=[tmp_path / "r"], out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_results(tmp_path / "r", "gtzan", "7x86", {("svm", "split"): [0.5, 0.52]})
    write_results(tmp_path / "r", "us8k", "vgg", {("svm", "cv-best"): [0.7, 0.71]})
    disk = _Disk(monkeypatch, out, budget)
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "r"), "--out", str(out)])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: cannot write the report in {out}") and "free space" in err[-1]
    assert "Traceback" not in "\n".join(err)
    monkeypatch.undo()
    # nothing replaced, nothing cut, nothing left over: the earlier report as it was, every file
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert all(_png_ok(p) for p in out.glob("*.png"))
    # and with space again the same command writes the new report (more files than the budget)
    render_report(results=[tmp_path / "r"], out=out)
    assert "7x86" in (out / "report.md").read_text() and disk.writes > budget
    assert len(list(out.iterdir())) > budget


def test_read_only_out_is_one_message(tmp_path, monkeypatch, capsys):
    _good(tmp_path)
    out = tmp_path / "ro"
    out.mkdir()
    if ROOT:   # root writes anywhere: the file system says read-only instead
        def mkstemp(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system")
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    else:
        out.chmod(0o555)
    try:
        with pytest.raises(SystemExit) as e:
            main([str(tmp_path / "good"), "--out", str(out)])
    finally:
        out.chmod(0o755)
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write the report in {out}")
    assert "choose another --out" in err and "Traceback" not in err


def test_out_under_a_file_is_one_message(tmp_path, capsys):
    _good(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "good"), "--out", str(tmp_path / "file" / "report")])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the report in" in err and "choose another --out" in err


def test_figures_go_through_a_temporary_file(tmp_path, monkeypatch):
    """savefig never writes into the report folder directly (a crash mid-PNG would leave it cut)."""
    import matplotlib.figure
    _good(tmp_path)
    real = matplotlib.figure.Figure.savefig
    targets = []

    def savefig(self, fname, *a, **k):
        targets.append(fname)
        return real(self, fname, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    out = render_report(results=[tmp_path / "good"], out=tmp_path / "report")
    assert targets and not [t for t in targets if isinstance(t, (str, os.PathLike))]
    assert list(out.glob("fig_*.png"))


@pytest.mark.parametrize("text", ['[' * 100_000 + ']' * 100_000, '[1, 2]', '{"kind": "randomcnn-batchnorm"}',
                                  '{"kind": "randomcnn-batchnorm", "cells": [], "batch_sizes": "8"}', "\xff"],
                         ids=["deep", "a-list", "no-cells", "bad-sizes", "not-utf8"])
def test_malformed_batchnorm_experiment_is_listed_and_the_rest_built(tmp_path, text):
    _good(tmp_path)
    bn = tmp_path / "bn" / "batchnorm.json"
    bn.parent.mkdir()
    bn.write_bytes(text.encode("latin-1") if text == "\xff" else text.encode())
    out = render_report(results=[tmp_path], out=tmp_path / "report")
    md = (out / "report.md").read_text()
    assert f"skipped {bn}: not a usable batch-norm experiment" in md and "| vgg |" in md


def test_grid_on_a_feature_set_with_deep_metadata_is_one_message(tmp_path, capsys):
    import numpy as np
    from classifiers.grid import main as grid_main
    fs = tmp_path / "fs"
    fs.mkdir()
    np.savez(fs / "features.npz", X=np.zeros((3, 2)), y=np.array(["a", "b", "a"]), ids=np.array(["1", "2", "3"]))
    (fs / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SystemExit) as e:
        grid_main(["--features", str(fs), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read feature-set metadata {fs / 'meta.json'}" in err
