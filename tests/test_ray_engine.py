"""The Ray engine and the grid's Ray backend.

The bad-input tests run by default. The rest start a local Ray instance with 2 CPUs (about 15 s on the
shared 2-core machine, then ~20 s per run as each worker imports torch), so they are marked slow: run
them with ``python -m pytest -q -m slow tests/test_ray_engine.py``. The default suite's Ray tests, on a
simulated multi-node cluster, are in ``tests/test_ray_cluster.py``.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import interrupt_after_chunks, write_class_folders
from features import extract as ex

SMALL = {"width": "small", "batch_size": 2, "progress": False}


def _ray_is_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def test_without_ray_the_flag_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is absent
    with pytest.raises(ex.ExtractionError, match=r"--engine ray needs Ray.*pip install '\.\[ray\]'"):
        ex.extract("mfcc", engine="ray", out=tmp_path, progress=False)
    assert ex.main(["--arch", "mfcc", "--engine", "ray", "--out", str(tmp_path)]) == 1
    assert "pip install '.[ray]'" in capsys.readouterr().err
    from classifiers.grid import run_grid
    fs = _feature_set(tmp_path)
    with pytest.raises(ValueError, match=r"--engine ray needs Ray.*pip install '\.\[ray\]'"):
        run_grid([fs], grid="small", engine="ray", out=tmp_path / "res", progress=False)


def _feature_set(tmp_path):
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=3, separation=3.0, seed=0)
    return write_feature_set(tmp_path / "gfs", d["X"], d["y"], d["ids"], fold=d["fold"],
                             meta={"seed": 0, "arch": "synthetic", "dataset": "synthetic"})


def test_unreachable_or_malformed_address_is_named(tmp_path):
    pytest.importorskip("ray")
    if _ray_is_running():
        pytest.skip("a Ray instance is already joined in this process (the address would not be used)")
    with pytest.raises(ex.ExtractionError, match=r"cannot reach a Ray cluster at --address '127\.0\.0\.1:9'"):
        ex.extract("mfcc", engine="ray", address="127.0.0.1:9", out=tmp_path, progress=False)
    with pytest.raises(ex.ExtractionError, match="expected host:port"):
        ex.extract("mfcc", engine="ray", address="no-port-here", out=tmp_path, progress=False)


def test_address_needs_the_ray_engine():
    with pytest.raises(SystemExit):
        ex.parse_args(["--address", "10.0.0.1:6379"])


# ----------------------------------------------------------------------------- on a local Ray instance

@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from toolkit import ray as ray_helpers
    started = not ray.is_initialized()
    ray_helpers.connect(None, num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_class_folders(tmp_path_factory.mktemp("ray") / "data", per_class=6, seconds=0.5)


@pytest.fixture(scope="module")
def local_set(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("local")
    return ex.extract("sample-level", dataset="folder", root=data, out=out, cache_dir=out / "cache",
                      workers=0, **SMALL)


@pytest.mark.slow
def test_ray_engine_is_byte_identical_to_local(ray_local, data, local_set, tmp_path):
    ray_set = ex.extract("sample-level", dataset="folder", root=data, out=tmp_path, engine="ray", workers=2,
                         cache_dir=tmp_path / "cache", **SMALL)
    assert (ray_set / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()
    meta = json.loads((ray_set / "meta.json").read_text())
    assert meta["config"]["engine"] == "ray" and meta["n_clips"] == 12
    assert meta["config_key"] == json.loads((local_set / "meta.json").read_text())["config_key"]


@pytest.mark.slow
def test_ray_resumes_a_local_run(ray_local, data, local_set, tmp_path, monkeypatch):
    kw = dict(dataset="folder", root=data, out=tmp_path, cache_dir=tmp_path / "cache", **SMALL)
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)  # 12 clips -> 6 chunks of 2
    interrupt_after_chunks(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        ex.extract("sample-level", workers=0, **kw)
    monkeypatch.undo()
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)
    partial = tmp_path / "folder" / (local_set.name + ".partial")
    assert len(list(partial.glob("chunk_*.npz"))) == 2
    resumed = ex.extract("sample-level", engine="ray", workers=2, **kw)
    assert not partial.exists()
    assert (resumed / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()


def _dying_embedder(monkeypatch, chunk: int, times: int, marks):
    """Replace the Ray actor class by one that kills its own process (SIGKILL, as the OOM killer would)
    the first ``times`` times it starts chunk ``chunk``; marker files under ``marks`` count the deaths.
    The class is pickled by value, so the Ray workers run it without importing this test module."""
    import os
    import signal
    from pathlib import Path

    from ray import cloudpickle  # Ray's own copy pickles what it ships

    from features import ray_engine

    class Dying(ray_engine.Embedder):
        def run(self, c, *args, **kwargs):
            if c == chunk:
                Path(marks).mkdir(parents=True, exist_ok=True)
                n = len(list(Path(marks).glob("death_*")))
                if n < times:
                    (Path(marks) / f"death_{n}_{os.getpid()}").touch()
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().run(c, *args, **kwargs)

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(ray_engine, "Embedder", Dying)
    return ray_engine


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_chunk_retried(ray_local, data, local_set, tmp_path,
                                                            monkeypatch):
    marks = tmp_path / "deaths"
    _dying_embedder(monkeypatch, chunk=1, times=1, marks=str(marks))
    out = ex.extract("sample-level", dataset="folder", root=data, out=tmp_path, engine="ray", workers=2,
                     cache_dir=tmp_path / "cache", **SMALL)
    assert len(list(marks.glob("death_*"))) == 1  # one worker really died (SIGKILL) mid-run
    assert (out / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()


@pytest.mark.slow
def test_a_chunk_that_keeps_failing_is_named_and_the_rest_is_kept(ray_local, data, local_set, tmp_path,
                                                                  monkeypatch):
    import functools
    kw = dict(dataset="folder", root=data, out=tmp_path, cache_dir=tmp_path / "cache", **SMALL)
    ray_engine = _dying_embedder(monkeypatch, chunk=0, times=100, marks=str(tmp_path / "deaths"))
    monkeypatch.setattr(ray_engine, "run_chunks", functools.partial(ray_engine.run_chunks, retries=1))
    with pytest.raises(ex.ExtractionError) as err:
        ex.extract("sample-level", engine="ray", workers=2, **kw)
    monkeypatch.undo()
    msg = str(err.value)
    # chunk 0 = the first 8 clips in id order (batch 2 x 4 batches): the first of them is named
    assert "1 chunk(s) failed" in msg and "high/high0.wav" in msg and "run the same command again" in msg
    partial = tmp_path / "folder" / (local_set.name + ".partial")
    assert [p.name for p in sorted(partial.glob("chunk_*.npz"))] == ["chunk_000001.npz"]
    again = ex.extract("sample-level", engine="ray", workers=1, **kw)  # resumes: only chunk 0 computed
    assert (again / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()


@pytest.mark.slow
def test_grid_on_the_ray_backend_equals_local(ray_local, tmp_path):
    from classifiers.grid import run_grid
    fs = _feature_set(tmp_path)
    local = json.loads(run_grid([fs], grid="small", jobs=1, out=tmp_path / "l", progress=False).read_text())
    remote = json.loads(run_grid([fs], grid="small", jobs=2, engine="ray", out=tmp_path / "r",
                                 progress=False).read_text())
    assert remote["config"]["engine"] == "ray"
    for a, b in zip(local["entries"], remote["entries"]):
        assert (a["classifier"], a["protocol"], a["mean"]) == (b["classifier"], b["protocol"], b["mean"])
        assert a["runs"][0]["predictions"] == b["runs"][0]["predictions"]
    assert np.isfinite([e["mean"] for e in remote["entries"]]).all()
