"""Training data: which clips a model may see, their labels, and their decoded inputs in memory.

- ``portions(ds, fold)`` splits a dataset's clips into ``train`` / ``val`` / ``test``. Split datasets
  use their own split. Cross-validated datasets (folds 1..K) hold out fold ``k`` as test, use the next
  fold (``k % K + 1``) as validation for early stopping, and train on the other K - 2 folds: the model
  of fold k never sees fold k's clips.
- ``label_space`` / ``encode_labels``: single-label datasets give class indices; a manifest whose
  ``label`` column holds several labels separated by ``;`` (``rock;guitar;loud``, as MagnaTagATune's
  top-50 tags) is multi-label and gives a 0/1 matrix ``(n_clips, n_tags)``.
- ``load_inputs`` decodes clips once (through the audio cache of ``audiodata.decode``) into one float32
  array: fixed-length waveforms or log-mel spectrograms for the front-ends (12 kHz), or, for SampleCNN,
  every 59 049-sample segment of the clip at 22 050 Hz (``clip`` maps each row back to its clip).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from audiodata import audio
from audiodata.decode import InputSpec, decode_cached, iter_prepared, too_short, verify_of

__all__ = ["DataError", "Inputs", "portions", "label_space", "encode_labels", "load_inputs", "clip_spec",
           "LABEL_SEP"]

LABEL_SEP = ";"  # separates the labels of a multi-label clip in a manifest's label column


class DataError(ValueError):
    """A dataset that cannot be trained on as asked (missing fold, empty portion, too few clips)."""


@dataclass
class Inputs:
    """Decoded model inputs of some clips.

    Attributes
    ----------
    x : np.ndarray
        ``(n_rows, *input_shape)`` float32: ``(n, samples)`` or ``(n, frames, 96)``.
    clip : np.ndarray
        ``(n_rows,)`` int: the position, in the list of clips given, of each row's clip.
    skipped : list of dict
        ``{path, reason}`` of clips that could not be decoded or are too short for the front-end
        (``spec.min_samples``, see :func:`clip_spec`).
    """
    x: np.ndarray
    clip: np.ndarray
    skipped: list = field(default_factory=list)


def portions(ds, fold: int | None = None) -> dict[str, list[int]]:
    """Indices into ``ds.clips`` of the ``train``, ``val`` and ``test`` portions.

    Parameters
    ----------
    ds : audiodata.datasets.Dataset
        With ``clips`` (``split`` or ``fold`` set) and ``protocol_hint`` ``"split"`` or ``"folds"``.
    fold : int, optional
        The held-out fold (1..K) of a cross-validated dataset; must be ``None`` for a split one.

    Raises
    ------
    DataError
        A fold that the dataset does not have, fewer than 3 folds, or an empty portion.
    """
    clips = ds.clips
    if ds.protocol_hint == "split":
        if fold is not None:
            raise DataError(f"dataset {ds.name!r} has a train/val/test split, not folds; "
                            f"drop --fold (found --fold {fold})")
        out = {p: [i for i, c in enumerate(clips) if c.split == p] for p in ("train", "val", "test")}
    else:
        folds = sorted({int(c.fold) for c in clips})
        if fold is None or int(fold) not in folds:
            raise DataError(f"dataset {ds.name!r}: fold {fold!r} is not one of its folds {folds}")
        if len(folds) < 3:
            raise DataError(f"dataset {ds.name!r} has {len(folds)} folds; training needs at least 3 "
                            "(one test, one validation, the rest to train on)")
        val = folds[(folds.index(int(fold)) + 1) % len(folds)]
        out = {"train": [i for i, c in enumerate(clips) if int(c.fold) not in (fold, val)],
               "val": [i for i, c in enumerate(clips) if int(c.fold) == val],
               "test": [i for i, c in enumerate(clips) if int(c.fold) == fold]}
    for name, idx in out.items():
        if not idx:
            where = "its split" if fold is None else f"fold {fold}"
            raise DataError(f"dataset {ds.name!r}: the {name} portion of {where} has no clips")
    return out


def _labels_of(clip) -> list[str]:
    return [t.strip() for t in str(clip.label).split(LABEL_SEP) if t.strip()]


def label_space(ds) -> tuple[list[str], bool]:
    """The output units' labels (sorted) and whether the dataset is multi-label."""
    multilabel = any(LABEL_SEP in str(c.label) for c in ds.clips)
    if multilabel:
        return sorted({t for c in ds.clips for t in _labels_of(c)}), True
    return sorted({str(c.label) for c in ds.clips}), False


def encode_labels(clips, classes: list[str], multilabel: bool) -> np.ndarray:
    """``(n,)`` int64 class indices, or ``(n, len(classes))`` float32 0/1 for multi-label."""
    pos = {c: i for i, c in enumerate(classes)}
    if multilabel:
        y = np.zeros((len(clips), len(classes)), np.float32)
        for r, c in enumerate(clips):
            for t in _labels_of(c):
                y[r, pos[t]] = 1.0
        return y
    try:
        return np.array([pos[str(c.label)] for c in clips], np.int64)
    except KeyError as e:
        raise DataError(f"label {e.args[0]!r} is not one of the classes {classes}") from e


def _segments(wave: np.ndarray, seg: int, max_segments: int | None, pad: str) -> np.ndarray:
    """Non-overlapping ``seg``-sample segments ``(k, seg)`` from the clip's start (at least one: a
    shorter clip is padded)."""
    n = max(1, len(wave) // seg)
    if max_segments:
        n = min(n, int(max_segments))
    return audio.fit_length(wave, n * seg, pad=pad).reshape(n, seg)


@dataclass(frozen=True)
class Segments:
    """SampleCNN style input: every ``length``-sample segment of a clip decoded at ``sample_rate`` (at
    most ``max_segments`` from the start; None: all)."""
    sample_rate: int = audio.SAMPLE_RATE
    max_segments: int | None = None


def clip_spec(spec: InputSpec, model, name: str) -> InputSpec:
    """``spec`` with the shortest decoded clip ``model`` can use (``features.embed.clip_minimum``: the
    receptive field of its first convolution, or one log-mel window), as extraction has it: a shorter
    clip is skipped with that reason instead of being repeated into a whole input of a few samples."""
    from features.embed import clip_minimum
    need, why = clip_minimum(model, spec.kind, name)
    return dataclasses.replace(spec, min_samples=need, min_why=why)


def _minimum(spec: InputSpec) -> InputSpec:
    """A spec without a minimum (a caller that did not use :func:`clip_spec`): a spectrogram input
    still needs one log-mel window."""
    if getattr(spec, "min_samples", 0) or spec.kind != "spectrogram":
        return spec
    return dataclasses.replace(spec, min_samples=audio.N_FFT,
                               min_why=f"a spectrogram front-end (one log-mel window of {audio.N_FFT} samples)")


def load_inputs(clips, spec: InputSpec, cache_dir=None, workers: int = 0, segments: Segments | None = None,
                desc: str = "decode", progress: bool = True) -> Inputs:
    """Decode ``clips`` into memory.

    Parameters
    ----------
    clips : list
        Clip records with ``path``.
    spec : audiodata.decode.InputSpec
        The model's ``input_kind`` (``waveform`` or ``spectrogram``), the samples or frames per row (the
        segment length with ``segments``) and the padding.
    segments : Segments, optional
        SampleCNN style: each clip gives all its ``spec.length``-sample segments (``Segments``).

    Returns
    -------
    Inputs
        Clips that fail to decode or are shorter than ``spec.min_samples`` are left out, listed in
        ``skipped`` and named on stderr.
    """
    spec = _minimum(spec)
    length, pad = spec.length, spec.pad
    xs, rows, skipped = [], [], []
    paths = [c.path for c in clips]
    bar = tqdm(total=len(paths), desc=desc, unit="clip", disable=not progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    if segments is not None:
        for i, p in enumerate(paths):
            try:
                wave = decode_cached(p, cache_dir, sr=segments.sample_rate, verify=verify_of(spec))
                short = too_short(wave.size, spec, segments.sample_rate)
                if short is not None:
                    raise audio.AudioError(p, short)
                seg = _segments(wave, length, segments.max_segments, pad)
                xs.append(seg)
                rows.append(np.full(len(seg), i))
            except audio.AudioError as e:
                skipped.append({"path": str(p), "reason": e.reason})
            bar.update()
    else:
        for prep in iter_prepared(paths, spec, cache_dir, workers=workers):  # min_samples: too short skipped
            if prep.x is None:
                skipped.append({"path": str(paths[prep.index]), "reason": prep.error})
            else:
                xs.append(prep.x[None])
                rows.append(np.array([prep.index]))
            bar.update()
    bar.close()
    if skipped:  # recorded (meta.json's skipped) and said, as extraction does; the rest is used
        print(f"{desc}: skipped {len(skipped)} of {len(paths)} clips:", file=sys.stderr)
        for s in skipped[:10]:
            print(f"  {s['path']}: {s['reason']}", file=sys.stderr)
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more", file=sys.stderr)
    if not xs:
        raise DataError(f"none of the {len(paths)} clips could be decoded; first failure: "
                        f"{skipped[0] if skipped else 'no clips given'}")
    return Inputs(np.concatenate(xs).astype(np.float32, copy=False),
                  np.concatenate(rows).astype(np.int64), skipped)
