"""Ray connection helpers: join or start a Ray cluster, and joblib's Ray backend.

``features.extract --engine ray`` (``features/ray_engine.py``) and ``classifiers.grid --engine ray`` both
connect through here. Nothing here imports torch, and ``ray`` itself only when a function runs (Ray is an
optional extra), so ``classifiers`` can use it without pulling in the extraction code.
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["INSTALL_HINT", "RayUnavailable", "HeadLost", "HeadWatch", "import_ray", "connect", "joblib_backend",
           "is_worker_loss", "dead_nodes", "node_names", "live_cpus", "check_nodes_see"]

INSTALL_HINT = ("needs Ray, an optional extra of this project: pip install '.[ray]' "
                "(or pip install 'ray[data]>=2.9' into the same environment)")
REPO = Path(__file__).resolve().parent.parent
_CONNECT_TIMEOUT_S = 5.0


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached or started (the message says which)."""


def import_ray(what: str = "--engine ray"):
    """The ``ray`` module, or :class:`RayUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable(f"{what} {INSTALL_HINT}") from e
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, with the address in the message, where ``ray.init`` would wait a minute."""
    if address == "auto":
        return  # "the cluster started on this machine by `ray start`": ray.init says if there is none
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"--address {address!r}: expected host:port (e.g. 10.0.0.5:6379), "
                                 "ray://host:10001 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise RayUnavailable(f"cannot reach a Ray cluster at --address {address!r} ({e}); start one "
                                 "with `ray start --head` on the head node, or leave --address out to "
                                 "start a local instance") from e


def connect(address: str | None = None, num_cpus: int | None = None, what: str = "--engine ray"):
    """Join the Ray cluster at ``address``, or start a local instance; reuse one already joined.

    Workers import this project's code: a local instance finds it through ``PYTHONPATH``; a cluster gets
    it uploaded as the job's ``working_dir`` (without ``runs/`` and the virtual environment).
    """
    ray = import_ray(what)
    if ray.is_initialized():
        return ray
    if address:
        _check_reachable(address)
        runtime_env = {"working_dir": str(REPO),
                       "excludes": ["runs/", ".venv/", ".git/", "*.npz", "*.npy", "*.pt"]}
    else:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        runtime_env = {"env_vars": {"PYTHONPATH": path}}
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise RayUnavailable(f"could not start or join {where}: {e}") from e
    return ray


@contextlib.contextmanager
def joblib_backend(address: str | None = None):
    """Run the ``joblib.Parallel`` calls inside on Ray workers (joblib's Ray backend).

    ``n_jobs`` then counts Ray workers, one CPU each (-1: every CPU of the cluster).
    """
    ray = connect(address, what="--engine ray")
    import joblib
    from ray.util.joblib import register_ray
    register_ray()
    # one CPU per pool worker: Ray's pool actors ask for none by default, so they would pile on any node,
    # the head's included, whatever its CPUs; with one each they spread over the nodes that have CPUs
    with joblib.parallel_backend("ray", ray_remote_args={"num_cpus": 1}):
        yield ray


# ----------------------------------------------------------------------------- the cluster's health

HEAD_GRACE_S = 10.0  # the head (its GCS) unreachable this long: the run stops with a message

_LOSS_ERRORS = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
                "NodeDiedError", "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")


class HeadLost(RuntimeError):
    """The Ray head node (its GCS) stopped answering: nothing more can be scheduled."""


def is_worker_loss(ray, e: BaseException) -> bool:
    """Whether ``e`` says a Ray worker process or node died (not an error of the work itself)."""
    kinds = tuple(getattr(ray.exceptions, n) for n in _LOSS_ERRORS if hasattr(ray.exceptions, n))
    return isinstance(e, kinds)


def gcs_address(ray) -> str:
    """host:port of the joined cluster's GCS (on the head node)."""
    return ray.get_runtime_context().gcs_address


def head_reachable(address: str, timeout: float = 1.0) -> bool:
    """A TCP connection to the head's GCS opens (it is refused at once when the head is gone)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError:
        return False
    return True


class HeadWatch:
    """Says when the head has been unreachable for ``grace`` seconds: call ``check()`` while waiting."""

    def __init__(self, ray, grace: float | None = None):
        self.address, self.since = gcs_address(ray), None
        self.grace = HEAD_GRACE_S if grace is None else grace

    def check(self) -> bool:
        """True while the head answers (or has been silent for less than ``grace``); raises HeadLost."""
        if head_reachable(self.address):
            self.since = None
            return True
        self.since = self.since or time.monotonic()
        if time.monotonic() - self.since >= self.grace:
            raise HeadLost(f"lost the Ray head node: its GCS at {self.address} has not answered for "
                           f"{self.grace:.0f} s")
        return False


@contextlib.contextmanager
def head_watched(ray, what: str, period: float = 1.0):
    """For a block that waits inside Ray's joblib pool (the grid): a thread checks the head every
    ``period`` seconds, and once it has been unreachable for ``HEAD_GRACE_S`` it prints one message
    (``what``, the head's address, and that nothing was written) and ends the process with status 1.

    Why the process: a pool waiting on a cluster without its head cannot be interrupted cleanly (joblib's
    abort asks the lost head to stop its workers and waits), and Ray's core worker ends the process
    itself when the head stays away (``gcs_rpc_server_reconnect_timeout_s``, 60 s by default) with only
    its own log line. The grid writes nothing before every computation is done, so there is nothing to
    clean up: the same command on a cluster with a head computes the same numbers."""
    import sys
    import threading
    watch, stop = HeadWatch(ray), threading.Event()

    def run():
        while not stop.wait(period):
            try:
                watch.check()
            except HeadLost as e:
                print(f"error: {what}: {e}; nothing was written: start the cluster again and run the same "
                      "command (with the new head's --address)", file=sys.stderr, flush=True)
                os._exit(1)

    thread = threading.Thread(target=run, name="ray-head-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def node_names(ray) -> dict:
    """node id -> "IP (id abcdef12)" for every node the cluster has known, alive or dead."""
    return {n["NodeID"]: f"{n['NodeManagerAddress']} (node {n['NodeID'][:8]})" for n in ray.nodes()}


def dead_nodes(ray) -> set:
    """Ids of the nodes the cluster has marked dead."""
    return {n["NodeID"] for n in ray.nodes() if not n["Alive"]}


def live_cpus(ray) -> int:
    """CPUs of the nodes alive now (joblib's Ray pool cannot start more workers than that)."""
    return int(sum(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]))


def _probe(read: list, sample: list, write_dirs: list) -> list:
    """Run on one node: ``(path, why)`` of each path there that cannot be read (or dir written)."""
    bad = []
    for p in read:
        if not os.path.isfile(p):
            bad.append((p, "no such file" if not os.path.exists(p) else "not a file"))
    for p in sample:
        if p in dict(bad):
            continue
        try:
            with open(p, "rb") as f:
                f.read(1)
        except OSError as e:
            bad.append((p, f"cannot be read ({e.strerror or e})"))
    for d in write_dirs:
        try:
            os.makedirs(d, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".randomcnn-probe-", dir=d)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            bad.append((d, f"cannot be written ({e.strerror or e})"))
    return bad


def check_nodes_see(ray, read: list, write_dirs: list, needs: dict, what: str = "--engine ray",
                    timeout: float = 120.0) -> list:
    """Refuse, before any work, a cluster one of whose nodes cannot read ``read`` or write ``write_dirs``.

    Every alive node that has the resources ``needs`` (e.g. ``{"CPU": 1}``: where a worker can land)
    runs one small task that stats every path of ``read``, opens a few of them and writes a file in each
    directory of ``write_dirs``. Raises ``RayUnavailable`` naming the node and the first path it cannot
    see; returns the names of the nodes checked.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = [n for n in ray.nodes() if n["Alive"] and all(n["Resources"].get(k, 0) >= v
                                                          for k, v in needs.items())]
    if not nodes:
        raise RayUnavailable(f"{what}: no node of the Ray cluster has {needs} free for a worker "
                             f"(nodes: {[n['Resources'] for n in ray.nodes() if n['Alive']]})")
    step = max(1, len(read) // 8)
    sample = list(read[::step][:8]) + ([read[-1]] if read else [])
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(list(read), sample, list(write_dirs)): n for n in nodes}
    try:
        answers = dict(zip(refs, ray.get(list(refs), timeout=timeout)))
    except Exception as e:  # a node that cannot even run the check: named by its error
        raise RayUnavailable(f"{what}: could not check the nodes' view of the data ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from e
    problems = []
    for ref, bad in answers.items():
        if bad:
            n = refs[ref]
            files = [(p, why) for p, why in bad if p not in write_dirs]
            said = [f"{p} {why}" for p, why in bad if p in write_dirs]
            if files:
                more = f" (and {len(files) - 1} more of the {len(read)} files)" if len(files) > 1 else ""
                said.insert(0, f"{files[0][0]} {files[0][1]}{more}")
            problems.append(f"node {n['NodeManagerAddress']} (id {n['NodeID'][:8]}): {'; '.join(said)}")
    if problems:
        raise RayUnavailable(f"{what}: not every node of the Ray cluster sees the data: "
                             f"{'; '.join(problems)}. Put the audio and the --cache-dir on storage every "
                             "node mounts at the same path (docs/scaling.md)")
    return [f"{n['NodeManagerAddress']} (node {n['NodeID'][:8]})" for n in nodes]
