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

The connection helpers (``connect``, ``RayUnavailable``; also used by ``python -m classifiers.grid
--engine ray``) live in ``toolkit/ray.py``.
"""
from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path

from features.compute import Batching, compute_chunk, iter_inputs, merge_warnings
from features.store import ExtractionError
from toolkit.ray import import_ray

__all__ = ["resolve_cluster_device", "run_chunks", "RETRIES"]

RETRIES = 3          # restarts of a dead worker and retries of its chunk before the chunk counts as failed
IN_FLIGHT = 2        # chunks queued per worker, so its next chunk's arguments are there when one ends


def resolve_cluster_device(device: str = "auto"):
    """``auto`` -> CUDA when the cluster has GPUs, else CPU (the driver itself may have none)."""
    import torch
    ray = import_ray()
    gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    if device == "auto":
        return torch.device("cuda" if gpus > 0 else "cpu")
    if device.startswith("cuda") and gpus == 0:
        raise ExtractionError("--device cuda was asked for but the Ray cluster has no GPU; use "
                                 "--device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ExtractionError(f"unknown device {device!r}; expected auto, cpu or cuda[:N]")
    return torch.device("cuda" if device.startswith("cuda") else "cpu")


class _ClipRef:
    """What a worker needs of a clip: its path (absolute: workers do not share our cwd) and id."""
    __slots__ = ("path", "id")

    def __init__(self, path, id_):
        self.path, self.id = path, id_


class Embedder:
    """A Ray actor: one model, decoding and embedding whole chunks with ``extract.compute_chunk``."""

    def __init__(self, model, device: str, threads: int, spec, cache_dir):
        import torch
        torch.set_num_threads(max(1, threads))
        self.dev = torch.device(device)
        if self.dev.type == "cuda":
            torch.backends.cudnn.benchmark = False  # as the local engine: fixed algorithms, no TF32
            torch.backends.cudnn.deterministic = True  # TF32: per batch, from the run's precision
        self.model = model.to(self.dev).eval()
        self.spec, self.cache_dir = spec, cache_dir

    def pid(self) -> int:
        return os.getpid()

    def run(self, c: int, lo: int, clips: list, batch_size: int, precision: str = "float32"):
        """Chunk ``c`` = clips ``lo .. lo + len(clips)``; returns ``(c, compute_chunk's six results)``."""
        paths = [clip.path for clip in clips]
        prepared = iter_inputs(paths, self.spec, self.cache_dir, workers=0)
        shifted = _Shifted(clips, lo)
        return c, compute_chunk(self.model, self.dev, shifted, (lo, lo + len(clips)), prepared,
                                Batching(batch_size, precision))


class _Shifted:
    """``clips[i]`` for global index ``i`` of a chunk that starts at ``lo`` (compute_chunk's indexing)."""

    def __init__(self, clips, lo):
        self.clips, self.lo = clips, lo

    def __getitem__(self, i):
        return self.clips[i - self.lo]


def run_chunks(run, dev, workers: int = 2, cache_dir=None, progress: bool = True,
               retries: int = RETRIES, gpus_per_worker: float = 1.0) -> dict:
    """Compute ``run.todo`` (a :class:`features.extract.Run`) on ``workers`` Ray actors.

    Every finished chunk is saved to ``run.chunks`` at once. Returns the warnings (message -> clip ids).
    Raises :class:`ExtractionError` naming the clips of chunks that failed after ``retries`` retries
    (the finished chunks stay saved: the same command resumes).
    """
    from tqdm import tqdm

    ray = import_ray()
    if workers < 1:
        raise ExtractionError(f"--engine ray needs at least one worker, got --workers {workers}")
    if not run.todo:
        return {}
    clips = run.ds.clips
    cache = str(Path(cache_dir).resolve()) if cache_dir else None
    cpus = max(1, int(ray.available_resources().get("CPU", workers) // workers)) if dev.type == "cpu" else 1
    gpus = gpus_per_worker if dev.type == "cuda" else 0
    actor_cls = ray.remote(Embedder).options(num_cpus=cpus, num_gpus=gpus, max_restarts=retries,
                                             max_task_retries=retries)
    model_ref = ray.put(run.model.cpu())  # one copy in the object store, whatever the number of workers
    actors = [actor_cls.remote(model_ref, dev.type, cpus, run.spec, cache) for _ in range(workers)]
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
                _, (idx_ok, X, skipped, timing, w, crop) = ray.get(ref)
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
                run.chunks.save(c, idx_ok, X, skipped, timing, crop)
                merge_warnings(warned, w)
                bar.update(len(idx_ok) + len(skipped))
            fill()
        for c in queue:  # every worker died for good
            failed.setdefault(c, "no Ray worker left to compute it")
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    if failed:
        raise ExtractionError(_failure_message(run, failed))
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
