"""The ``randomcnn`` console command: installed for real (a wheel built from this tree into a temporary
folder), then run from inside a user's project that has its own ``features/`` and ``report/`` packages,
where the ``python -m`` forms are shadowed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import write_wav

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("toolkit", "audiodata", "architectures", "features", "classifiers", "report", "trained", "hear",
            "studies", "randomcnn", "examples")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install --target`` of a copy of this tree (no dependencies, no build isolation: offline)."""
    src = tmp_path_factory.mktemp("src")
    for name in PACKAGES:
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"pip install failed:\n{r.stdout}\n{r.stderr}")
    return target


@pytest.fixture()
def project(tmp_path):
    """A user's own project: packages named features/ and report/, and a folder of clips."""
    for pkg in ("features", "report"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("# the user's own package\n")
    for label in ("a", "b"):
        for i in range(2):
            write_wav(tmp_path / "clips" / label / f"{i}.wav", seconds=1.0, freq=300.0 * (i + 1) + 500 * (label == "b"))
    return tmp_path


def _env(target):
    """The installed copy first, then this interpreter's site-packages for the dependencies. Used with
    ``python -S``: no ``.pth`` file runs, so the editable install of the development venv (whose finder
    serves ``features.extract`` even when a project's own ``features`` package was imported) is out of
    the picture, as it is for a user who installed the wheel."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]))
    env.pop("PYTHONSAFEPATH", None)
    return env


PY = [sys.executable, "-S"]


def test_install_has_the_command_and_no_examples(installed):
    assert (installed / "bin" / "randomcnn").is_file()
    assert (installed / "randomcnn" / "cli.py").is_file()
    assert not (installed / "examples").exists()  # examples/ is to copy from, not an installed package
    assert (installed / "features" / "extract.py").is_file()


def test_python_m_is_shadowed_in_such_a_project(installed, project):
    """What the console command exists for: ``python -m`` imports the project's own packages."""
    r = subprocess.run([*PY, "-m", "features.extract", "--help"], cwd=project, env=_env(installed),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "No module named features.extract" in r.stderr
    r = subprocess.run([*PY, "-m", "report"], cwd=project, env=_env(installed), capture_output=True, text=True)
    assert r.returncode != 0 and "'report' is a package and cannot be directly executed" in r.stderr


def test_console_command_works_inside_such_a_project(installed, project):
    script = installed / "bin" / "randomcnn"
    env = _env(installed)
    r = subprocess.run([*PY, str(script), "extract", "--arch", "mfcc", "--dataset", "folder",
                        "--root", "clips", "--out", "feats", "--cache-dir", "none", "--workers", "0"],
                       cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    folder = Path(project / r.stdout.strip().splitlines()[-1])
    assert (folder / "features.npz").is_file() and (folder / "meta.json").is_file()
    assert folder.is_relative_to(project / "feats" / "folder")
    r = subprocess.run([*PY, str(script), "report", "--help"], cwd=project, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: randomcnn report"), r.stdout + r.stderr


def test_every_subcommand_has_help_under_its_randomcnn_name(capsys):
    from randomcnn.cli import SUBCOMMANDS, main
    for name in SUBCOMMANDS:
        assert main([name, "--help"]) == 0, name
        out = capsys.readouterr().out
        assert out.startswith(f"usage: randomcnn {name}"), (name, out[:80])
    assert main([]) == 2 and "subcommands:" in capsys.readouterr().out
    assert main(["extrct"]) == 2 and "unknown subcommand 'extrct'" in capsys.readouterr().err


def test_same_options_as_the_python_m_form(capsys):
    """A usage error of the subcommand is that of its module (exit 2, the module's message)."""
    from randomcnn.cli import main
    assert main(["extract", "--batch-size", "0"]) == 2
    assert "randomcnn extract: error: --batch-size 0: expected an integer >= 1" in capsys.readouterr().err
    assert main(["grid"]) == 2
    assert "randomcnn grid: error: the following arguments are required: --features" in capsys.readouterr().err
