"""Computing features: decode-ahead inputs in fixed batches through a front-end, per-layer means.

The one computation both engines run: ``features.extract`` (local) calls :func:`compute_chunk` in
this process, ``features.ray_engine`` in its Ray workers, so the two write the same bytes. The source of
``layer_means``, ``_features_of_batch`` and ``compute_chunk`` is part of a feature set's code version
(``features.store.code_version``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from audiodata.decode import iter_prepared
from toolkit.device import AdaptiveBatch, compute_dtype, precision_context

__all__ = ["layer_means", "published_means", "batch_features", "compute_chunk", "iter_inputs", "merge_warnings"]


def layer_means(outputs) -> torch.Tensor:
    """Mean of each feature map over all its non-channel axes, concatenated: ``(batch, sum(C))``.

    float32: PyTorch's CPU reductions sum in cascades, so even a 116 666-step map's mean is within a
    few 1e-7 of the float64 one (``tests/test_extract.py`` checks it), while a float64 reduction
    (an up-cast of every element) cost more than the temporal network itself and ~0.4 s per
    sample-level clip.
    """
    means = []
    for out in outputs:
        if out.dim() == 2:
            means.append(out.float())
        else:
            means.append(out.float().mean(dim=tuple(range(2, out.dim()))))
    return torch.cat(means, dim=1)


def _batch(xs: list) -> np.ndarray | list:
    """Inputs stacked into one array, or kept as a list when their shapes differ (input kind "clip")."""
    return np.stack(xs) if len({x.shape for x in xs}) == 1 else list(xs)


@torch.inference_mode()
def _features_of_batch(model, batch, device: torch.device, precision: str = "float32") -> np.ndarray:
    dtype = compute_dtype(model)
    if isinstance(batch, list):  # whole clips of unequal length: the front-end takes a list of 1-D tensors
        x = [torch.from_numpy(b).to(device, dtype=dtype) for b in batch]
    else:
        x = torch.from_numpy(batch).to(device, dtype=dtype, non_blocking=True)
    with precision_context(device, precision):
        means = batch_features(model, x)
    return means.cpu().numpy()  # means accumulated in float32 whatever the precision


def published_means(means: torch.Tensor, layers, one_number) -> torch.Tensor:
    """The per-layer means as the study's code computed them (``--as-published``): each layer named in
    ``one_number`` keeps ONE number, the mean over time and all its channels, in its first column, and
    zeros in the others (elmarc's ``backend()`` hands ``format_cnn_data`` those maps as ``(batch, T', F, 1)``;
    see ``architectures.deepening.PUBLISHED_ONE_NUMBER``). Every channel of a layer has the same time
    length, so the mean of its channel means is the mean over the whole map.

    Parameters
    ----------
    means : Tensor ``(batch, sum(C))``, the per-channel means in ``layers`` order
    layers : sequence of ``(name, channels)``
    one_number : collection of layer names
    """
    out = means.clone()
    start = 0
    for name, channels in layers:
        stop = start + int(channels)
        if name in one_number:
            out[:, start] = means[:, start:stop].mean(dim=1)
            out[:, start + 1:stop] = 0.0
        start = stop
    return out


def batch_features(model, x) -> torch.Tensor:
    """A batch's features, ``(batch, feature_length)`` float32: the front-end's ``extract_means`` where it
    has one (its maps never reach memory whole), else the means of ``extract_features``' maps; with the
    model's ``as_published`` set (``build_frontend(as_published=True)``), then :func:`published_means`."""
    if hasattr(model, "extract_means"):
        means = model.extract_means(x).float()
    else:
        means = layer_means(model.extract_features(x))
    one_number = getattr(model, "published_one_number", ())
    if getattr(model, "as_published", False) and one_number:
        means = published_means(means, model.layers, one_number)
    return means


def iter_inputs(paths, spec, cache_dir, workers: int = 2):
    """Prepared model inputs of ``paths`` in order (``audiodata.decode.iter_prepared``; a ``spec`` with
    an ``sr`` decodes at that rate, for HEAR modules and SampleCNN)."""
    return iter_prepared(paths, spec, cache_dir, workers=workers)


@dataclass(frozen=True)
class Batching:
    """How ``compute_chunk`` batches: ``size`` clips a batch, in ``precision``; ``adaptive`` halves a batch
    that does not fit in the device's memory (shared by the chunks of a run so the smaller size sticks;
    ``toolkit.device.AdaptiveBatch``); ``on_batch(n_clips)`` is called after every batch (progress)."""
    size: int
    precision: str = "float32"
    adaptive: AdaptiveBatch | None = None
    on_batch: object = None


def compute_chunk(model, dev, clips, span: tuple, prepared, batching: Batching):
    """Features of the clips ``lo..hi`` (``span``, one chunk), in batches of ``batching.size`` from ``lo``.

    Parameters
    ----------
    model : nn.Module on ``dev``
    clips : sequence of objects with ``path`` and ``id`` (indexable by the global clip index)
    prepared : iterator of ``audiodata.decode.Prepared`` for exactly the clips ``lo..hi``, in order

    Returns
    -------
    indices : list of int, the clips that gave features, in order
    X : ndarray (len(indices), feature_length) float32
    skipped : list of {path, id, reason}
    timing : (decode_s, compute_s, wall_s)
    warned : dict message -> list of clip ids
    crop : {"cut": [[id, seconds], ...], "windows": [[id, n], ...]}: the clips the network saw only part
        of (``--crop start|center``), and those read as several windows (``--crop windows``)
    """
    (lo, hi), batch_size, precision, on_batch = span, batching.size, batching.precision, batching.on_batch
    idx_ok, feats, skipped, warned = [], [], [], {}
    crop = {"cut": [], "windows": []}
    adaptive = batching.adaptive if batching.adaptive is not None else AdaptiveBatch(batch_size)
    decode_s = compute_s = 0.0
    t_chunk = time.perf_counter()
    for b in range(lo, hi, batch_size):
        # a batch always holds the same clips (those of [b, b + batch_size) that decoded), so an
        # interrupted run resumed later, or another engine, computes exactly the same numbers
        xs, ok = [], []
        for i in range(b, min(hi, b + batch_size)):
            p = next(prepared)
            decode_s += p.decode_s
            for w in p.warnings:
                warned.setdefault(w, []).append(clips[i].id)
            if p.error is not None:
                skipped.append({"path": str(clips[i].path), "id": clips[i].id, "reason": p.error})
            else:
                xs.append(p.x if p.windows is None else (p.x, p.windows))
                ok.append(i)
                if p.cut_s > 0:
                    crop["cut"].append([clips[i].id, round(float(p.cut_s), 4)])
                if p.windows is not None and p.windows > 1:
                    crop["windows"].append([clips[i].id, int(p.windows)])
        if xs:
            t0 = time.perf_counter()
            if isinstance(xs[0], tuple):  # --crop windows: every window of the batch's clips, then their means
                f = _window_means(model, dev, precision, adaptive, xs)
            else:
                f = adaptive(lambda a: _features_of_batch(model, a, dev, precision), _batch(xs))
            compute_s += time.perf_counter() - t0
            finite = np.isfinite(f).all(axis=1)
            for j in np.flatnonzero(~finite):
                skipped.append({"path": str(clips[ok[j]].path), "id": clips[ok[j]].id,
                                "reason": "the network produced NaN or inf features"})
            idx_ok += [ok[j] for j in np.flatnonzero(finite)]
            feats.append(f[finite].astype(np.float32))
        if on_batch is not None:
            on_batch(min(hi, b + batch_size) - b)
    X = np.concatenate(feats) if feats else np.zeros((0, model.feature_length), np.float32)
    return idx_ok, X, skipped, (decode_s, compute_s, time.perf_counter() - t_chunk), warned, crop


def _window_means(model, dev, precision, adaptive, xs) -> np.ndarray:
    """Features of clips given as ``(windows, n)`` stacks: each window through the network (in batches of
    at most ``adaptive.size`` windows), then each clip's mean over its windows (float64 sums)."""
    rows = np.concatenate([x for x, _ in xs])
    f = adaptive(lambda a: _features_of_batch(model, a, dev, precision), rows).astype(np.float64)
    bounds = np.cumsum([0] + [k for _, k in xs])
    return np.stack([f[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)


def merge_warnings(into: dict, new: dict) -> dict:
    for message, ids in new.items():
        into.setdefault(message, []).extend(ids)
    return into
