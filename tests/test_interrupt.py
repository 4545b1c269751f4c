"""Ctrl-C at every entry point: one line, exit status 130, no traceback (toolkit.cli.interruptible).

Two tests send a real SIGINT to a subprocess (the helper alone, and a running extraction, which must
then resume to the same feature set); the others check that each command's ``main`` is wrapped, by
raising ``KeyboardInterrupt`` from the work it calls.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO, write_class_folders
from toolkit.cli import EXIT_INTERRUPTED, INTERRUPTED, interruptible


@pytest.fixture(autouse=True)
def _sigint_handler_restored():
    """``interruptible`` ignores a second Ctrl-C once it caught one; in this pytest process that would
    leave SIGINT ignored, and ignored signals are inherited: later subprocesses would never see theirs."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _sigint_when(proc, stderr_file: Path, marker: str, timeout: float = 120.0) -> None:
    """Send SIGINT to ``proc`` once ``marker`` appears in its stderr (so it is inside its main loop)."""
    t0 = time.monotonic()
    while marker not in stderr_file.read_text(errors="replace"):
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {marker!r}: {stderr_file.read_text()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"no {marker!r} on stderr within {timeout} s")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)


def _assert_one_line(stderr: str, after: str = "") -> None:
    tail = stderr[len(after):] if after and stderr.startswith(after) else stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert tail.rstrip("\n").splitlines()[-1] == INTERRUPTED, stderr
    assert stderr.count(INTERRUPTED) == 1


def test_helper_real_sigint(tmp_path):
    script = tmp_path / "cmd.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from toolkit.cli import interruptible

        @interruptible
        def main():
            try:
                print("ready", file=sys.stderr, flush=True)
                time.sleep(60)
            finally:
                print("cleaned up", flush=True)   # the command's own finally blocks still run

        main()
    """))
    err = tmp_path / "err.txt"
    with open(err, "w") as ferr:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=ferr,
                                env=_env(), text=True)
        _sigint_when(proc, err, "ready")
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED == 130
    assert out.strip() == "cleaned up"
    assert err.read_text() == "ready\n" + INTERRUPTED + "\n"


def test_extraction_real_sigint_then_resume(tmp_path):
    """SIGINT in the middle of a real extraction: one line, 130; the same command then finishes."""
    root = write_class_folders(tmp_path / "data", per_class=4, seconds=0.5)
    cmd = [sys.executable, "-m", "features.extract", "--arch", "sample-level", "--width", "small", "--dataset", "folder",
           "--root", str(root), "--input-seconds", "4", "--batch-size", "2", "--workers", "0",
           "--cache-dir", "none",
           "--out", str(tmp_path / "out")]
    err = tmp_path / "err.txt"
    with open(err, "w") as ferr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ferr, env=_env(), text=True,
                                cwd=tmp_path)
        _sigint_when(proc, err, "sample-level:")   # the progress bar: the run is computing
        out, _ = proc.communicate(timeout=120)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    _assert_one_line(stderr)
    assert out.strip() == ""   # no feature set was finished, none is printed
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1], "features.npz").is_file()


def test_decorator_keeps_results_and_other_errors():
    @interruptible
    def ok(x):
        return x + 1

    @interruptible
    def broken():
        raise RuntimeError("boom")

    assert ok(1) == 2 and ok.__name__ == "ok"
    with pytest.raises(RuntimeError, match="boom"):   # only Ctrl-C is turned into the one line
        broken()


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


# (module, the function its main calls for the work, argv)
ENTRY_POINTS = [
    ("features.extract", "extract_many", []),
    ("classifiers.grid", "run_grid", ["--features", "x"]),
    ("report.build", "render_report", []),
    ("trained.train", "train_seeds", ["--arch", "vgg"]),
    ("trained.evaluate", "evaluate", ["some_run"]),
    ("studies.__main__", "run_study", []),
    ("studies.batchnorm", "run", []),
    ("randomcnn.cli", "importlib", ["extract"]),   # the console command, while it imports a subcommand
]


@pytest.mark.parametrize("module,work,argv", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_every_entry_point_is_wrapped(module, work, argv, monkeypatch, capsys, tmp_path):
    import importlib
    mod = importlib.import_module(module)
    if work == "importlib":
        monkeypatch.setattr(mod.importlib, "import_module", _interrupt)
    else:
        monkeypatch.setattr(mod, work, _interrupt)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        mod.main(argv)
    assert e.value.code == 130
    err = capsys.readouterr().err
    # features.extract says what it starts on before any work (issue 22); then the one interruption line
    started = [line for line in err.splitlines() if line.startswith("extract: ") and "feature set(s)" in line]
    assert err == "".join(f"{line}\n" for line in started) + INTERRUPTED + "\n"


SLOW_IMPORT = '''
import sys, time


class _SlowNumpy:
    """Makes the first import of numpy (the commands' first heavy import) last, and says when it starts."""
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            sys.stderr.write("importing numpy\\n")
            sys.stderr.flush()
            time.sleep(60)
        return None


sys.meta_path.insert(0, _SlowNumpy())
'''


@pytest.mark.parametrize("module", ["features.extract", "classifiers.grid", "trained.train", "studies"])
def test_real_sigint_while_importing(module, tmp_path):
    """Ctrl-C while ``python -m MODULE`` is still importing (numpy, then torch ...): the one line, 130.
    A ``sitecustomize`` on the path holds the import of numpy open until the signal comes."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_IMPORT)
    env = _env()
    env["PYTHONPATH"] = str(site) + os.pathsep + env["PYTHONPATH"]
    err = tmp_path / "err.txt"
    with open(err, "w") as ferr:
        proc = subprocess.Popen([sys.executable, "-m", module, "--help"], stdout=subprocess.PIPE, stderr=ferr,
                                env=env, text=True, cwd=tmp_path)
        _sigint_when(proc, err, "importing numpy", timeout=60)
        out, _ = proc.communicate(timeout=60)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    assert stderr == "importing numpy\n" + INTERRUPTED + "\n"
    assert out == ""


def test_dash_m_module_parsing():
    from toolkit.cli import _dash_m_module
    assert _dash_m_module(["python", "-m", "classifiers.grid", "--features", "x"]) == "classifiers.grid"
    assert _dash_m_module(["python", "-X", "importtime", "-u", "-mstudies"]) == "studies"
    assert _dash_m_module(["python", "-c", "pass", "-m", "studies"]) is None
    assert _dash_m_module(["python", "script.py", "-m", "studies"]) is None
    assert _dash_m_module(["python"]) is None


def _interrupt_then_resume(cmd, marker, cwd, timeout=180):
    """SIGINT ``cmd`` once ``marker`` is on its stderr: status 130, the one line, no traceback; then the
    same command, run again, finishes (status 0). Returns the second run."""
    err = cwd / "err.txt"
    with open(err, "w") as ferr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ferr, env=_env(), text=True, cwd=cwd)
        _sigint_when(proc, err, marker, timeout=timeout)
        proc.communicate(timeout=timeout)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    _assert_one_line(stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=2 * timeout)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def test_grid_real_sigint_then_resume(tmp_path):
    from features import extract as ex
    root = write_class_folders(tmp_path / "data", per_class=10, seconds=0.5)
    fs = ex.extract("sample-level", dataset="folder", root=root, out=tmp_path / "fs", cache_dir=None,
                    width="small", workers=0, batch_size=8, progress=False, input_seconds=1.0)
    cmd = [sys.executable, "-m", "classifiers.grid", "--features", str(fs), "--grid", "study", "--jobs", "1",
           "--folds", "5", "--out", str(tmp_path / "res")]
    done = _interrupt_then_resume(cmd, "svm seed 0:", tmp_path)   # the SVM grid's progress bar
    assert Path(done.stdout.strip().splitlines()[-1]).is_file()   # results.json


def test_training_real_sigint_then_resume(tmp_path):
    root = write_class_folders(tmp_path / "data", per_class=10, seconds=0.5)
    cmd = [sys.executable, "-m", "trained.train", "--arch", "sample-level", "--width", "small", "--dataset",
           "folder", "--root", str(root), "--folds", "3", "--fold", "1", "--input-seconds", "1", "--epochs", "2",
           "--batch-size", "4", "--workers", "0", "--cache-dir", "none", "--device", "cpu",
           "--recipe", "toolkit-2025",  # 1 s inputs: too few frames for the released back-end
           "--out", str(tmp_path / "runs"), "--results-out", str(tmp_path / "results")]
    # epoch 2's bar: epoch 1 is checkpointed (the line "epoch 1: ..." is printed just before its checkpoint)
    done = _interrupt_then_resume(cmd, "epoch 2/2", tmp_path)
    assert re.search(r"resuming \S+checkpoint\.pt after epoch [12]\n", done.stderr), done.stderr
    assert "epoch 1: train_loss" not in done.stderr                   # not trained again
    assert Path(done.stdout.strip().splitlines()[-1]).name == "results.json"


def test_study_real_sigint_then_resume(tmp_path):
    root = write_class_folders(tmp_path / "data", per_class=10, seconds=0.5)
    cmd = [sys.executable, "-m", "studies", "--dataset", "folder", "--root", str(root), "--arch", "sample-level",
           "--width", "small", "--seed", "0", "--grid", "small", "--input-seconds", "4", "--workers", "0",
           "--cache-dir", "none", "--folds", "3", "--jobs", "1", "--device", "cpu", "--out", str(tmp_path / "st")]
    done = _interrupt_then_resume(cmd, "sample-level:", tmp_path)   # extraction's progress bar
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "st" / "report")
