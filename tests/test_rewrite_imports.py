"""tools/rewrite_imports.py: code written against the old layout comes out importing the new one."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("rewrite_imports", REPO / "tools" / "rewrite_imports.py")
rw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rw)

OLD = '''from features import audio, extract as ex  # noqa: E402
from features.provenance import atomic_write_json
from trained.checkpoint import SAMPLECNN, save_checkpoint
from classifiers import report_stats


def f():
    from features.ray_engine import RayUnavailable, run_chunks
    from trained.backend import PonsBackend, init_weights
    import features.datasets as ds
    return "python -m classifiers.report", "features/decode.py", ds
'''

NEW = '''from audiodata import audio
from features import extract as ex  # noqa: E402
from toolkit.provenance import atomic_write_json
from architectures.checkpoint import SAMPLECNN
from trained.checkpoint import save_checkpoint
from report import stats as report_stats


def f():
    from toolkit.ray import RayUnavailable
    from features.ray_engine import run_chunks
    from architectures.backend import PonsBackend, init_he_normal as init_weights
    import audiodata.datasets as ds
    return "python -m report", "audiodata/decode.py", ds
'''


def test_old_imports_are_rewritten_and_a_second_pass_changes_nothing():
    once = rw.rewrite_paths(rw.rewrite_imports(OLD, Path("studies/new_study.py")))
    assert once == NEW
    assert rw.rewrite_paths(rw.rewrite_imports(once, Path("studies/new_study.py"))) == once


def test_relative_imports_of_a_moved_module_become_absolute():
    # classifiers/report_rank.py (another branch's new file) moves to report/rank.py
    text = "from .report_stats import ARCH_ORDER\nfrom .integrity import sha256_file\n"
    out = rw.rewrite_imports(text, Path("report/rank.py"))
    assert out == "from report.stats import ARCH_ORDER\nfrom classifiers.integrity import sha256_file\n"


def test_the_repository_is_already_rewritten():
    assert rw.main(["--check"]) == 0
