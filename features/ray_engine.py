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
as they come; actor tasks give exactly that with Ray's own fault tolerance. A worker process that dies is
restarted and its chunk retried (``retries`` times); a worker whose node is lost is dropped and its
chunks go to the others; the head lost stops the run after ``toolkit.ray.HEAD_GRACE_S``; a chunk that
still fails is reported with its clip ids, and the chunks that finished are kept for the next run. What
was retried is in ``meta.json`` (``retried``) and said at the end (docs/scaling.md has the table).

Audio paths and the decode cache must be readable by every worker: before any work each node where a
worker can land checks them (``toolkit.ray.check_nodes_see``) and one that cannot is refused, naming the
node and the path. On a cluster put the dataset (and ``--cache-dir``) on storage the nodes share.

The connection helpers (``connect``, ``RayUnavailable``; also used by ``python -m classifiers.grid
--engine ray``) live in ``toolkit/ray.py``.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

from features.compute import Batching, compute_chunk, iter_inputs, merge_warnings
from features.progress import clips_done
from features.store import ExtractionError
from toolkit.ray import (HeadLost, HeadWatch, RayUnavailable, check_nodes_see, dead_nodes, head_reachable,
                         import_ray, is_worker_loss, node_names)

__all__ = ["resolve_cluster_device", "run_chunks", "RETRIES"]

RETRIES = 3          # restarts of a dead worker and retries of its chunk before the chunk counts as failed
IN_FLIGHT = 2        # chunks queued per worker, so its next chunk's arguments are there when one ends
NODE_CHECK_S = 1.0   # how often the driver, while it waits, checks that the head answers and no node died


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

    def where(self) -> tuple:
        """(the id of the node this worker runs on, its process id)."""
        import ray
        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run(self, c: int, lo: int, clips: list, batch_size: int, precision: str = "float32"):
        """Chunk ``c`` = clips ``lo .. lo + len(clips)``; returns ``(c, (node id, pid), compute_chunk's six
        results)``."""
        paths = [clip.path for clip in clips]
        prepared = iter_inputs(paths, self.spec, self.cache_dir, workers=0)
        shifted = _Shifted(clips, lo)
        return c, self.where(), compute_chunk(self.model, self.dev, shifted, (lo, lo + len(clips)), prepared,
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

    Before any work every node where a worker can land must see the clips and the cache (else
    :class:`ExtractionError` naming the node and the path). Every finished chunk is saved to
    ``run.chunks`` at once, once. A worker whose node is lost hands its chunks to the others; a worker
    process that dies is restarted by Ray and its chunk retried (``retries`` times); both are recorded in
    ``run.meta["retried"]`` and said at the end. Returns the warnings (message -> clip ids). Raises
    :class:`ExtractionError` naming the clips of chunks that failed, or when the head node is lost
    (the finished chunks stay saved: the same command resumes).
    """
    ray = import_ray()
    if workers < 1:
        raise ExtractionError(f"--engine ray needs at least one worker, got --workers {workers}")
    if not run.todo:
        return {}
    cache = str(Path(cache_dir).resolve()) if cache_dir else None
    cpus = max(1, int(ray.available_resources().get("CPU", workers) // workers)) if dev.type == "cpu" else 1
    gpus = gpus_per_worker if dev.type == "cuda" else 0
    paths = [str(Path(run.ds.clips[i].path).resolve()) for c in run.todo for i in range(*run.chunk_range(c))]
    try:  # before the actors: a node that cannot see the data is refused, not failed chunk by chunk
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        nodes = check_nodes_see(ray, paths, [cache] if cache else [], {"GPU": gpus} if gpus else {"CPU": cpus})
    except RayUnavailable as e:
        raise ExtractionError(f"{run.arch}: {e}") from e
    run.meta["ray"] = {"workers": workers, "nodes_checked": nodes}
    try:
        return _Driver(ray, run, cache, progress).run(workers, cpus, gpus, retries)
    except HeadLost as e:
        raise ExtractionError(f"{run.arch}: {e}. The {len(run.chunks.done)} finished chunks are kept in "
                              f"{run.chunks.folder}: start the cluster again and run the same command "
                              "(with the new head's --address): only the missing chunks are computed") from e


class _Driver:
    """The driver's loop: hand chunks to the actors, save what comes back, notice lost nodes and head."""

    def __init__(self, ray, run, cache, progress):
        self.ray, self.run_, self.cache, self.progress = ray, run, cache, progress
        self.retried = run.meta.setdefault("retried", [])
        self.by_node = {}  # node id -> chunks it computed

    def run(self, workers, cpus, gpus, retries) -> dict:
        from tqdm import tqdm
        ray, run = self.ray, self.run_
        clips = run.ds.clips
        self.watch = HeadWatch(ray)
        actor_cls = ray.remote(Embedder).options(num_cpus=cpus, num_gpus=gpus, max_restarts=retries,
                                                 max_task_retries=retries)
        model_ref = ray.put(run.model.cpu())  # one copy in the object store, whatever the number of workers
        actors = [actor_cls.remote(model_ref, "cuda" if gpus else "cpu", cpus, run.spec, self.cache)
                  for _ in range(workers)]
        self.where = {ray_ref: a for a in actors for ray_ref in [a.where.remote()]}  # -> (node, pid)
        self.node_of, self.pid_of = {}, {}
        self.queue, self.pending, failed, warned = deque(run.todo), {}, {}, {}
        n = len(clips)
        done_clips = n - sum(hi - lo for lo, hi in map(run.chunk_range, run.todo))
        bar = tqdm(total=n, initial=done_clips, unit="clip", desc=f"{run.arch} (ray x{workers})",
                   disable=not self.progress, dynamic_ncols=True, file=sys.stderr)
        self.assigned = {id(a): deque() for a in actors}  # chunks sent to each worker, in its (serial) order
        self.alive = list(actors)
        head_lost = False
        try:
            self._fill()
            while self.pending or self.queue:
                if self.pending:
                    ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=NODE_CHECK_S)
                else:  # chunks held back while the head is silent
                    ready = []
                    time.sleep(NODE_CHECK_S)
                # the head silent: no new chunks go out (those out are collected) until it answers again,
                # or HeadLost after its grace
                healthy = self._check_cluster()
                if healthy and not self.alive:
                    break
                if not ready or ready[0] not in self.pending:  # (a lost worker's chunks are requeued already)
                    if healthy:
                        self._fill()
                    continue
                ref = ready[0]
                c, actor = self.pending.pop(ref)
                try:
                    _, (node, pid), (idx_ok, X, skipped, timing, w, crop) = ray.get(ref)
                except Exception as e:  # a worker dead for good (after its retries) or an error in the chunk
                    if is_worker_loss(ray, e) and self._on_lost_node(actor):
                        self._lose(actor, f"its node {self._node_name(actor)} was lost", c)
                    elif is_worker_loss(ray, e):
                        # a worker runs its chunks in order: the first one it was given killed it; the
                        # others it held go back to the queue for the remaining workers
                        culprit = self.assigned[id(actor)][0]
                        failed[culprit] = _describe(e)
                        self._lose(actor, "its worker died for good", c, culprit=culprit)
                    else:
                        failed[c] = _describe(e)
                        self.assigned[id(actor)].remove(c)
                else:
                    self.assigned[id(actor)].remove(c)
                    old = self.pid_of.get(id(actor))
                    if old is not None and pid != old:  # Ray restarted the worker and ran the chunk again
                        self._note(c, f"worker process {old} died; Ray restarted it (pid {pid}) and "
                                      "retried the chunk")
                    self.node_of[id(actor)], self.pid_of[id(actor)] = node, pid
                    if c in run.chunks.done:  # never written twice (a chunk is in flight once at a time)
                        raise ExtractionError(f"{run.arch}: chunk {c} came back twice; nothing was overwritten")
                    run.chunks.save(c, idx_ok, X, skipped, timing, crop)
                    self.by_node[node] = self.by_node.get(node, 0) + 1
                    merge_warnings(warned, w)
                    bar.update(len(idx_ok) + len(skipped))
                    clips_done(len(idx_ok) + len(skipped))
                if healthy:
                    self._fill()
            for c in self.queue:  # every worker died for good
                failed.setdefault(c, "no Ray worker left to compute it")
        except HeadLost:
            head_lost = True
            raise
        finally:
            bar.close()
            # with the head gone every call to the cluster would wait for it (the workers end with the job)
            if not head_lost and head_reachable(self.watch.address):
                names = node_names(ray)
                run.meta["ray"]["chunks_by_node"] = {names.get(k, k): v for k, v in self.by_node.items()}
                for actor in actors:
                    ray.kill(actor, no_restart=True)
        if self.retried and self.progress:
            lost = sorted({r["reason"] for r in self.retried})
            print(f"{run.arch}: {len(self.retried)} chunk(s) retried on the remaining Ray workers "
                  f"({'; '.join(lost)}): chunks {', '.join(str(r['chunk']) for r in self.retried)} "
                  "(recorded in meta.json as retried)", file=sys.stderr)
        if failed:
            raise ExtractionError(_failure_message(run, failed))
        return warned

    def _submit(self, actor):
        run, clips = self.run_, self.run_.ds.clips
        c = self.queue.popleft()
        lo, hi = run.chunk_range(c)
        refs = [_ClipRef(str(Path(clips[i].path).resolve()), clips[i].id) for i in range(lo, hi)]
        self.pending[actor.run.remote(c, lo, refs, run.batch_size, run.precision)] = (c, actor)
        self.assigned[id(actor)].append(c)

    def _fill(self):  # round robin, up to IN_FLIGHT chunks per worker
        for level in range(IN_FLIGHT):
            for actor in self.alive:
                if self.queue and len(self.assigned[id(actor)]) <= level:
                    self._submit(actor)

    def _check_cluster(self) -> bool:
        """Whether the head answers (HeadLost once it has been silent for its grace); workers placed on
        nodes that died are lost."""
        if not self.watch.check():
            return False
        ray = self.ray
        if self.where:  # where each worker landed, as soon as it says
            done, _ = ray.wait(list(self.where), num_returns=len(self.where), timeout=0)
            for ref in done:
                actor = self.where.pop(ref)
                try:
                    self.node_of[id(actor)], self.pid_of[id(actor)] = ray.get(ref)
                except Exception:  # died before it said: its chunks fail or come back as usual
                    pass
        dead = dead_nodes(ray)
        for actor in list(self.alive):
            if self.node_of.get(id(actor)) in dead:
                self._lose(actor, f"its node {self._node_name(actor)} was lost")
        return True

    def _on_lost_node(self, actor) -> bool:
        node = self.node_of.get(id(actor))
        return node is not None and node in dead_nodes(self.ray)

    def _node_name(self, actor) -> str:
        node = self.node_of.get(id(actor))
        return node_names(self.ray).get(node, f"node {str(node)[:8]}")

    def _lose(self, actor, reason, c=None, culprit=None):
        """``actor`` is gone: its chunks (``c``, already out of ``pending``, and those still in it) go back
        to the queue, in order, for the remaining workers (all but ``culprit``, which failed)."""
        mine = [(ref, k) for ref, (k, a) in self.pending.items() if a is actor]
        for ref, _ in mine:
            del self.pending[ref]
        back = sorted({k for _, k in mine} | ({c} if c is not None else set()))
        back = [k for k in back if k != culprit]
        for k in reversed(back):
            self.queue.appendleft(k)
        for k in back:
            self._note(k, f"worker lost: {reason}")
        self.assigned[id(actor)].clear()
        self.alive = [a for a in self.alive if a is not actor]
        if culprit is None:
            self.ray.kill(actor, no_restart=True)  # no restart on a node that is gone

    def _note(self, c, reason):
        lo, hi = self.run_.chunk_range(c)
        self.retried.append({"chunk": int(c), "clips": [lo, hi], "reason": reason})
        if self.progress:
            print(f"{self.run_.arch}: chunk {c} (clips {lo}-{hi - 1}) goes again: {reason}", file=sys.stderr)


def _describe(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"[:300]


def _failure_message(run, failed: dict) -> str:
    ids = [run.ds.clips[i].id for c in sorted(failed) for i in range(*run.chunk_range(c))]
    reasons = "; ".join(f"chunk {c}: {why}" for c, why in sorted(failed.items())[:3])
    return (f"{run.arch}: {len(failed)} chunk(s) failed on the Ray workers ({len(ids)} clips: "
            f"{', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''}); {reasons}. The "
            f"{len(run.chunks.done)} finished chunks are kept in {run.chunks.folder}: run the same "
            "command again to compute only the missing ones")
