"""``features.extract --engine ray``: the same chunks, computed by Ray workers.

The clip list is cut into the chunks of the local engine (``features.extract.plan``: ``batch_size x
CHUNK_BATCHES`` clips each, batches starting at fixed clip indices). Each chunk is one Ray task, run by
one of ``workers`` Ray actors that hold one copy of the model each (a CPU actor, or a GPU actor with
``--device cuda``) and decode and embed with the very function the local engine uses
(``features.extract.compute_chunk``). The driver saves every finished chunk in ``<set>.partial/`` as
the local engine does (each chunk file carries the run's config key and clip range), and
``features.extract`` writes the feature set with ``store.write_feature_set`` under the same lock: the
result is byte-identical to the local engine's, and either engine resumes the other's unfinished run.

Why actors and not Ray Data: a chunk must stay one unit (its batches fix the numbers and its file is the
unit of resume), results are few and small (one row of means per clip), and the driver must write them
as they come; actor tasks give exactly that with Ray's own fault tolerance. A worker that dies is
restarted and its chunk retried (``retries`` times); a chunk that still fails is reported with its clip
ids, and the chunks that finished are kept for the next run.

Audio paths and the decode cache must be readable by every worker: on one machine they are; on a
cluster put the dataset (and ``--cache-dir``) on storage the nodes share.

``python -m classifiers.grid --backend ray`` uses :func:`joblib_backend`. The connection helpers at the
top import neither torch nor the extraction code (``classifiers`` never imports torch); the engine
below imports them when it runs.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections import deque
from pathlib import Path

__all__ = ["INSTALL_HINT", "RayUnavailable", "import_ray", "connect", "joblib_backend", "resolve_device",
           "run_chunks", "RETRIES"]

INSTALL_HINT = ("needs Ray, an optional extra of this project: pip install '.[ray]' "
                "(or pip install 'ray[data]>=2.9' into the same environment)")
RETRIES = 3          # restarts of a dead worker and retries of its chunk before the chunk counts as failed
IN_FLIGHT = 2        # chunks queued per worker, so its next chunk's arguments are there when one ends
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
    ray = connect(address, what="--backend ray")
    import joblib
    from ray.util.joblib import register_ray
    register_ray()
    with joblib.parallel_backend("ray"):
        yield ray


def resolve_device(device: str = "auto"):
    """``auto`` -> CUDA when the cluster has GPUs, else CPU (the driver itself may have none)."""
    import torch
    from features import extract as ex
    ray = import_ray()
    gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    if device == "auto":
        return torch.device("cuda" if gpus > 0 else "cpu")
    if device.startswith("cuda") and gpus == 0:
        raise ex.ExtractionError("--device cuda was asked for but the Ray cluster has no GPU; use "
                                 "--device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ex.ExtractionError(f"unknown device {device!r}; expected auto, cpu or cuda[:N]")
    return torch.device("cuda" if device.startswith("cuda") else "cpu")


class _ClipRef:
    """What a worker needs of a clip: its path (absolute: workers do not share our cwd) and id."""
    __slots__ = ("path", "id")

    def __init__(self, path, id_):
        self.path, self.id = path, id_


class Embedder:
    """A Ray actor: one model, decoding and embedding whole chunks with ``extract.compute_chunk``."""

    def __init__(self, model, device: str, threads: int, spec, cache_dir, fault=None):
        import torch
        torch.set_num_threads(max(1, threads))
        self.dev = torch.device(device)
        if self.dev.type == "cuda":
            torch.backends.cudnn.benchmark = False  # as the local engine: fixed algorithms, no TF32
            torch.backends.cudnn.deterministic = True  # TF32: per batch, from the run's precision
        self.model = model.to(self.dev).eval()
        self.spec, self.cache_dir, self.fault = spec, cache_dir, fault

    def pid(self) -> int:
        return os.getpid()

    def run(self, c: int, lo: int, clips: list, batch_size: int, precision: str = "float32"):
        """Chunk ``c`` = clips ``lo .. lo + len(clips)``; returns ``(c, compute_chunk's five results)``."""
        from features import extract as ex
        self._maybe_die(c)
        paths = [clip.path for clip in clips]
        prepared = ex.iter_inputs(paths, self.spec, self.cache_dir, workers=0)
        shifted = _Shifted(clips, lo)
        return c, ex.compute_chunk(self.model, self.dev, shifted, lo, lo + len(clips), batch_size, prepared,
                                   precision=precision)

    def _maybe_die(self, c: int) -> None:
        """Test hook: ``fault = {"chunk", "times", "dir"}`` kills this worker (SIGKILL, as the OOM killer
        would) the first ``times`` times it starts chunk ``chunk``; the marker files count the deaths."""
        if not self.fault or c != self.fault["chunk"]:
            return
        marks = Path(self.fault["dir"])
        marks.mkdir(parents=True, exist_ok=True)
        if len(list(marks.glob("death_*"))) < self.fault["times"]:
            (marks / f"death_{len(list(marks.glob('death_*')))}_{os.getpid()}").touch()
            os.kill(os.getpid(), signal.SIGKILL)


class _Shifted:
    """``clips[i]`` for global index ``i`` of a chunk that starts at ``lo`` (compute_chunk's indexing)."""

    def __init__(self, clips, lo):
        self.clips, self.lo = clips, lo

    def __getitem__(self, i):
        return self.clips[i - self.lo]


def run_chunks(run, dev, workers: int = 2, cache_dir=None, progress: bool = True,
               retries: int = RETRIES, gpus_per_worker: float = 1.0, fault=None) -> dict:
    """Compute ``run.todo`` (a :class:`features.extract.Run`) on ``workers`` Ray actors.

    Every finished chunk is saved to ``run.chunks`` at once. Returns the warnings (message -> clip ids).
    Raises :class:`ExtractionError` naming the clips of chunks that failed after ``retries`` retries
    (the finished chunks stay saved: the same command resumes).
    """
    from tqdm import tqdm

    from features import extract as ex
    ray = import_ray()
    if workers < 1:
        raise ex.ExtractionError(f"--engine ray needs at least one worker, got --workers {workers}")
    if not run.todo:
        return {}
    clips = run.ds.clips
    cache = str(Path(cache_dir).resolve()) if cache_dir else None
    cpus = max(1, int(ray.available_resources().get("CPU", workers) // workers)) if dev.type == "cpu" else 1
    gpus = gpus_per_worker if dev.type == "cuda" else 0
    actor_cls = ray.remote(Embedder).options(num_cpus=cpus, num_gpus=gpus, max_restarts=retries,
                                             max_task_retries=retries)
    model_ref = ray.put(run.model.cpu())  # one copy in the object store, whatever the number of workers
    actors = [actor_cls.remote(model_ref, dev.type, cpus, run.spec, cache, fault) for _ in range(workers)]
    queue, pending, failed, warned = deque(run.todo), {}, {}, {}
    n = len(clips)
    done_clips = n - sum(hi - lo for lo, hi in map(run.chunk_range, run.todo))
    bar = tqdm(total=n, initial=done_clips, unit="clip", desc=f"{run.arch} (ray x{workers})",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)

    assigned = {id(a): deque() for a in actors}  # chunks sent to each worker, in its (serial) order

    def submit(actor):
        c = queue.popleft()
        lo, hi = run.chunk_range(c)
        refs = [_ClipRef(str(Path(clips[i].path).resolve()), clips[i].id) for i in range(lo, hi)]
        pending[actor.run.remote(c, lo, refs, run.batch_size, run.precision)] = (c, actor)
        assigned[id(actor)].append(c)

    def fill():  # round robin, up to IN_FLIGHT chunks per worker
        for level in range(IN_FLIGHT):
            for actor in alive:
                if queue and len(assigned[id(actor)]) <= level:
                    submit(actor)

    alive = list(actors)
    try:
        fill()
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            c, actor = pending.pop(ref)
            try:
                _, (idx_ok, X, skipped, timing, w) = ray.get(ref)
            except Exception as e:  # a worker dead for good (after its retries) or an error in the chunk
                if _is_dead(ray, e):
                    # a worker runs its chunks in order: the first one it was given killed it; the
                    # others it held go back to the queue for the remaining workers
                    culprit = assigned[id(actor)][0]
                    failed[culprit] = _describe(e)
                    alive = [a for a in alive if a is not actor]
                    _requeue(pending, actor, queue, exclude=culprit)
                    assigned[id(actor)].clear()
                else:
                    failed[c] = _describe(e)
                    assigned[id(actor)].remove(c)
            else:
                assigned[id(actor)].remove(c)
                run.chunks.save(c, idx_ok, X, skipped, timing)
                ex.merge_warnings(warned, w)
                bar.update(len(idx_ok) + len(skipped))
            fill()
        for c in queue:  # every worker died for good
            failed.setdefault(c, "no Ray worker left to compute it")
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    if failed:
        raise ex.ExtractionError(_failure_message(run, failed))
    return warned


def _describe(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"[:300]


def _is_dead(ray, e) -> bool:
    dead = tuple(getattr(ray.exceptions, name) for name in ("RayActorError", "WorkerCrashedError")
                 if hasattr(ray.exceptions, name))
    return isinstance(e, dead)


def _requeue(pending, actor, queue, exclude=None):
    """Chunks held by a worker that died for good go back to the queue (in order) for the others."""
    mine = [(ref, c) for ref, (c, a) in pending.items() if a is actor]
    for ref, c in reversed(mine):
        del pending[ref]
        if c != exclude:
            queue.appendleft(c)


def _failure_message(run, failed: dict) -> str:
    ids = [run.ds.clips[i].id for c in sorted(failed) for i in range(*run.chunk_range(c))]
    reasons = "; ".join(f"chunk {c}: {why}" for c, why in sorted(failed.items())[:3])
    return (f"{run.arch}: {len(failed)} chunk(s) failed on the Ray workers ({len(ids)} clips: "
            f"{', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''}); {reasons}. The "
            f"{len(run.chunks.done)} finished chunks are kept in {run.chunks.folder}: run the same "
            "command again to compute only the missing ones")


if __name__ == "__main__":  # pragma: no cover - a convenience: same CLI as features.extract
    from features import extract as ex
    sys.exit(ex.main([*sys.argv[1:], "--engine", "ray"]))
