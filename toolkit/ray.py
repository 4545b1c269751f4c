"""Ray connection helpers: join or start a Ray cluster, and joblib's Ray backend.

``features.extract --engine ray`` (``features/ray_engine.py``) and ``classifiers.grid --engine ray`` both
connect through here. Nothing here imports torch, and ``ray`` itself only when a function runs (Ray is an
optional extra), so ``classifiers`` can use it without pulling in the extraction code.
"""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

__all__ = ["INSTALL_HINT", "RayUnavailable", "import_ray", "connect", "joblib_backend"]

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

    ``n_jobs`` then counts Ray workers (-1: every CPU of the cluster).
    """
    ray = connect(address, what="--engine ray")
    import joblib
    from ray.util.joblib import register_ray
    register_ray()
    with joblib.parallel_backend("ray"):
        yield ray
