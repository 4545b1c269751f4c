"""The Ray engine and the grid's Ray backend on a multi-node cluster simulated on this machine.

One ``ray.cluster_utils.Cluster`` for the module: a head without CPUs (it schedules, it does not
compute) and two worker nodes of one CPU each, every process on the loopback address only. On it:
extraction equals the local engine byte for byte and the grid equals the local grid; a worker node
killed in the middle of an extraction and of a grid; the head killed in the middle of an extraction run
by a separate driver (a message, then the same command resumes on a new cluster); a node that cannot
see the audio or the cache refused at the start. The data are tiny (12 clips of 0.5 s, a 60-clip
synthetic feature set): what costs is starting Ray nodes and workers (a Python with torch each).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, write_class_folders
from features import extract as ex

ray = pytest.importorskip("ray")

SMALL = {"width": "small", "batch_size": 2, "progress": False}
NODE_ENV = "RANDOMCNN_TEST_NODE"       # which simulated machine a worker process runs on
MiB = 2**20
# fast failure detection, so that a lost node is seen in about 2 s (Ray's default: 30 s), and raylets
# left without their head give up after 20 s instead of 60
SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                 "health_check_failure_threshold": 4, "gcs_rpc_server_reconnect_timeout_s": 20}


class SimCluster:
    """The module's cluster: ``start()`` a head and nodes ``a`` and ``b``, join it from this process."""

    def __init__(self):
        self.cluster, self.nodes = None, {}

    def start(self):
        from ray.cluster_utils import Cluster
        self.cluster = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=0, node_ip_address="127.0.0.1", include_dashboard=False,
            object_store_memory=80 * MiB, _system_config=SYSTEM_CONFIG))
        for name in ("a", "b"):
            self.add(name)
        self.join()

    def add(self, name):
        self.nodes[name] = self.cluster.add_node(
            num_cpus=1, node_ip_address="127.0.0.1", node_name=f"node-{name}", resources={f"node_{name}": 1},
            object_store_memory=80 * MiB, env_vars={NODE_ENV: name})

    def join(self):
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        ray.init(address=self.cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": path}})

    def ensure(self):
        """Both worker nodes up (a test may have removed one)."""
        for name in ("a", "b"):
            if self.nodes.get(name) not in self.cluster.worker_nodes:
                self.add(name)
        self.cluster.wait_for_nodes()

    def remove(self, name):
        self.cluster.remove_node(self.nodes.pop(name))

    def node_id(self, name) -> str:
        return self.nodes[name].node_id

    @property
    def address(self) -> str:
        return self.cluster.address

    def stop(self):
        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            if self.cluster is not None:
                self.cluster.shutdown()
                self.cluster = None


@pytest.fixture(scope="module")
def sim():
    if ray.is_initialized():  # another module's local instance: this one needs its own cluster
        ray.shutdown()
    import ray._private.ray_constants as constants
    mp = pytest.MonkeyPatch()
    # Ray replaces a loopback --address by the machine's outward IP, where nothing listens (every
    # process here binds to 127.0.0.1); with this flag it keeps loopback (it changes nothing else in a
    # driver; `ray start` of a worker node refuses it, hence tests/ray_node.py)
    mp.setattr(constants, "ENABLE_RAY_CLUSTER", False)
    s = SimCluster()
    try:
        s.start()
        yield s
    finally:  # even when a test (or the start) failed: no Ray process outlives the module
        s.stop()
        mp.undo()


@pytest.fixture
def cluster(sim):
    sim.ensure()
    return sim


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_class_folders(tmp_path_factory.mktemp("raycl") / "data", per_class=6, seconds=0.5)


@pytest.fixture(scope="module")
def local_set(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("local")
    return ex.extract(arch="sample-level", dataset="folder", root=data, out=out, cache_dir=out / "cache",
                      workers=0, **SMALL)


@pytest.fixture
def one_chunk_per_batch(monkeypatch):
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)  # 12 clips -> 6 chunks of 2: work for both nodes


def _meta(folder) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text())


def _feature_set(tmp_path):
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=3, separation=3.0, seed=0)
    return write_feature_set(tmp_path / "gfs", d["X"], d["y"], d["ids"], fold=d["fold"],
                             meta={"seed": 0, "arch": "synthetic", "dataset": "synthetic"})


def _picks(results: dict) -> list:
    """What a grid decides: per entry, its accuracy, and per run the selected point and predictions."""
    return [(e["classifier"], e["protocol"], e["mean"],
             [(r["selected"], r["accuracy"], r["predictions"]) for r in e["runs"]]) for e in results["entries"]]


def _saves_per_chunk(monkeypatch) -> dict:
    """Count, in this process (the driver), the writes of each chunk file."""
    from features.store import Chunks
    real, counts = Chunks.save, {}

    def save(self, c, *a, **kw):
        counts[c] = counts.get(c, 0) + 1
        return real(self, c, *a, **kw)

    monkeypatch.setattr(Chunks, "save", save)
    return counts


def _remove_when(sim, name, marker: Path, timeout=120.0):
    """A thread that removes node ``name`` (kills its processes) once ``marker`` exists."""
    def watch():
        deadline = time.monotonic() + timeout
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if marker.exists():
            sim.remove(name)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _by_value():
    """Classes defined in this module travel to the workers by value (they do not import tests/)."""
    from ray import cloudpickle  # Ray's own copy pickles what it ships
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ----------------------------------------------------------------------------- same results

def test_extraction_on_two_nodes_equals_the_local_engine(cluster, data, local_set, tmp_path,
                                                         one_chunk_per_batch):
    out = ex.extract(arch="sample-level", dataset="folder", root=data, out=tmp_path, engine="ray", workers=2,
                     cache_dir=tmp_path / "cache", **SMALL)
    assert (out / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()
    meta = _meta(out)
    assert meta["config_key"] == _meta(local_set)["config_key"] and meta["retried"] == []
    # both worker nodes checked the data and both computed chunks (the head has no CPU)
    names = {f"127.0.0.1 (node {cluster.node_id(n)[:8]})" for n in ("a", "b")}
    assert set(meta["ray"]["nodes_checked"]) == names
    assert set(meta["ray"]["chunks_by_node"]) == names and sum(meta["ray"]["chunks_by_node"].values()) == 6


def test_grid_through_joblibs_ray_backend_equals_the_local_grid(cluster, tmp_path):
    from classifiers.grid import run_grid
    fs = _feature_set(tmp_path)
    local = json.loads(run_grid([fs], grid="small", jobs=1, out=tmp_path / "l", progress=False).read_text())
    remote = json.loads(run_grid([fs], grid="small", jobs=2, backend="ray", out=tmp_path / "r",
                                 progress=False).read_text())
    engine = remote["config"].get("engine", remote["config"].get("backend"))  # --backend is now --engine
    assert engine == "ray" and len(local["entries"]) == len(remote["entries"]) >= 2
    assert _picks(local) == _picks(remote)
    assert not [n for n in remote["notes"] if "lost" in n]


# ----------------------------------------------------------------------------- nodes that cannot see the data

def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -m` (root or CAP_SYS_ADMIN) to give one "
                                                 "node a view of the files without the data")
def test_a_node_that_cannot_see_the_audio_or_the_cache_is_refused_at_the_start(cluster, data, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    # the blind node: the data folder covered by an empty mount, the cache by a read-only one
    script = (f"mount -t tmpfs -o size=1m tmpfs {data} && mount -t tmpfs -o ro,size=1m tmpfs {cache} && "
              f"exec {sys.executable} {REPO / 'tests' / 'ray_node.py'} {cluster.address} "
              "'{\"node_blind\": 1}'")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **{NODE_ENV: "blind"}))
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        blind = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node_blind" in n["Resources"])
        t0 = time.monotonic()
        with pytest.raises(ex.ExtractionError) as err:
            ex.extract(arch="sample-level", dataset="folder", root=data, out=tmp_path / "out", engine="ray",
                       workers=3, cache_dir=cache, **SMALL)
        msg = str(err.value)
        assert f"node 127.0.0.1 (id {blind[:8]})" in msg
        assert f"{data.resolve() / 'high' / 'high0.wav'} no such file (and 11 more" in msg
        assert f"{cache.resolve()} cannot be written (Read-only file system)" in msg
        # the good nodes are not named, and nothing was computed
        assert cluster.node_id("a")[:8] not in msg and cluster.node_id("b")[:8] not in msg
        assert not list((tmp_path / "out").rglob("chunk_*.npz"))
        assert time.monotonic() - t0 < 60
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# ----------------------------------------------------------------------------- a node lost mid-run

class StopsOnNodeA:
    """Mixin: on node ``a`` only, the first call writes ``marker`` and then works for a minute: the test
    kills the node while the call is running."""
    marker = ""

    def _stall_on_node_a(self):
        if os.environ.get(NODE_ENV) == "a" and not os.path.exists(self.marker):
            Path(self.marker).touch()
            time.sleep(60)


def test_a_node_lost_mid_extraction_hands_its_chunks_to_the_other(cluster, data, local_set, tmp_path,
                                                                  monkeypatch, one_chunk_per_batch, capsys):
    from features import ray_engine
    marker = tmp_path / "node_a_busy"
    _by_value()

    class Stalling(ray_engine.Embedder, StopsOnNodeA):
        def run(self, *args, **kwargs):
            self._stall_on_node_a()
            return super().run(*args, **kwargs)

    Stalling.marker = str(marker)
    monkeypatch.setattr(ray_engine, "Embedder", Stalling)
    saves = _saves_per_chunk(monkeypatch)
    watcher = _remove_when(cluster, "a", marker)
    out = ex.extract(arch="sample-level", dataset="folder", root=data, out=tmp_path, engine="ray", workers=2,
                     cache_dir=tmp_path / "cache", **dict(SMALL, progress=True))
    watcher.join(timeout=5)
    assert marker.exists() and "a" not in cluster.nodes  # node a really died mid-chunk
    assert (out / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()
    assert saves == {c: 1 for c in range(6)}  # every chunk written once
    retried = _meta(out)["retried"]
    lost = f"node 127.0.0.1 (node {cluster.nodes['b'].node_id[:8]})"
    assert retried and all("was lost" in r["reason"] and lost not in r["reason"] for r in retried)
    assert {r["chunk"] for r in retried} <= set(range(6))
    err = capsys.readouterr().err
    assert f"{len(retried)} chunk(s) retried on the remaining Ray workers" in err
    assert not (tmp_path / "folder" / (out.name + ".partial")).exists()
    # what node b did: everything (node a finished nothing)
    assert list(_meta(out)["ray"]["chunks_by_node"].values()) == [6]


def test_a_node_lost_mid_grid_is_retried_on_the_nodes_left(cluster, tmp_path, monkeypatch):
    from classifiers import grid as grid_mod
    from classifiers.kernels import FastSVM
    marker = tmp_path / "node_a_busy"
    _by_value()

    class StallingSVM(FastSVM, StopsOnNodeA):
        def _fit_task(self, *args):
            self._stall_on_node_a()
            return super()._fit_task(*args)

    StallingSVM.marker = str(marker)
    fs = _feature_set(tmp_path)
    local = json.loads(grid_mod.run_grid([fs], classifier="svm", grid="small", jobs=1, out=tmp_path / "l",
                                         progress=False).read_text())
    monkeypatch.setitem(grid_mod.CLASSIFIERS["svm"].engines, "fast", StallingSVM)
    writes = []
    real_write = grid_mod.atomic_write_json
    monkeypatch.setattr(grid_mod, "atomic_write_json", lambda p, d: writes.append(p) or real_write(p, d))
    watcher = _remove_when(cluster, "a", marker)
    path = grid_mod.run_grid([fs], classifier="svm", grid="small", jobs=2, backend="ray", out=tmp_path / "r",
                             progress=False, log=lambda m: None)
    watcher.join(timeout=5)
    assert marker.exists() and "a" not in cluster.nodes
    remote = json.loads(path.read_text())
    assert _picks(remote) == _picks(local)
    assert writes == [path]  # written once, at the end
    notes = [n for n in remote["notes"] if "Ray workers were lost" in n]
    assert len(notes) == 1 and "retried on the nodes left (1 CPU(s), --jobs 1), attempt 2" in notes[0]


# ----------------------------------------------------------------------------- the head lost mid-run

def _driver_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")) if p),
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # keep the loopback --address (see the fixture)


def _run_until_head_lost(sim, marker, args, cwd):
    """``args`` in tests/ray_head_loss_driver.py on node b's machine; the head removed once MARKER is
    there; returns (exit status, stderr). The cluster is stopped afterwards."""
    # the driver runs on the machine of node b (as a driver on a machine other than the head; one on the
    # head's machine goes with the head)
    driver = [sys.executable, str(REPO / "tests" / "ray_head_loss_driver.py"), str(marker), "node-b", "--"]
    proc = subprocess.Popen(driver + args + ["--address", sim.address], env=_driver_env(), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), proc.communicate(timeout=60)
        ray.shutdown()  # this process leaves the cluster before its head goes
        sim.cluster.remove_node(sim.cluster.head_node)
        t_lost = time.monotonic()
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err, time.monotonic() - t_lost
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sim.stop()  # the worker nodes left without their head


def test_the_head_lost_mid_grid_stops_with_a_message_then_the_same_command_runs(sim, tmp_path):
    """The grid waits inside joblib's Ray pool: without the head watch it hung about a minute and failed
    with Ray's own error. Now: the message within seconds (grace 3 s here), exit 1, nothing written; the
    same command on a new cluster gives the local grid's picks."""
    from classifiers.grid import run_grid
    sim.ensure()
    fs = _feature_set(tmp_path)
    marker = tmp_path / "grid_started"
    out = tmp_path / "r"
    args = ["--features", str(fs), "--grid", "small", "--classifier", "svm", "--engine", "ray", "--jobs", "2",
            "--out", str(out)]
    code, err, seconds = _run_until_head_lost(sim, marker, args, tmp_path)
    assert code == 1, err
    assert "lost the Ray head node: its GCS at 127.0.0.1:" in err and "nothing was written" in err
    assert "run the same command" in err and "Traceback" not in err
    assert seconds < 40, err  # the head watch (3 s grace), not Ray's minute of reconnecting
    assert not (out / "results.json").exists()
    sim.start()
    local = json.loads(run_grid([fs], classifier="svm", grid="small", jobs=1, out=tmp_path / "l",
                                progress=False).read_text())
    again = json.loads(run_grid([fs], classifier="svm", grid="small", jobs=2, backend="ray", out=out,
                                progress=False).read_text())
    assert _picks(again) == _picks(local)


def test_the_head_lost_mid_extraction_stops_with_a_message_then_resumes(sim, data, local_set, tmp_path,
                                                                      one_chunk_per_batch):
    sim.ensure()
    marker = tmp_path / "first_chunk_saved"
    args = ["--arch", "sample-level", "--dataset", "folder", "--root", str(data), "--width", "small",
            "--batch-size", "2", "--engine", "ray", "--workers", "2", "--out", str(tmp_path),
            "--cache-dir", str(tmp_path / "cache")]
    # 12 clips in 6 chunks of one batch of 2; the first saved, then the head goes
    code, err, _ = _run_until_head_lost(sim, marker, args, tmp_path)
    assert code == 1, err
    assert "lost the Ray head node: its GCS at 127.0.0.1:" in err and "run the same command" in err
    assert "Traceback" not in err
    partial = next(tmp_path.glob("folder/*.partial"))
    kept = sorted(p.name for p in partial.glob("chunk_*.npz"))
    assert kept and len(kept) < 6
    # a new cluster, the same command: only the missing chunks are computed, the same bytes
    sim.start()
    out = ex.extract(arch="sample-level", dataset="folder", root=data, out=tmp_path, engine="ray", workers=2,
                     cache_dir=tmp_path / "cache", **SMALL)
    assert (out / "features.npz").read_bytes() == (local_set / "features.npz").read_bytes()
    assert not partial.exists()
