"""``python -m studies.batchnorm``: the batch-norm experiment of the study (thesis section 4.4, Fig. 4.5).

With batch normalization that uses the batch's own statistics, a clip's random-CNN features depend on the
other clips of its batch; when a batch holds clips of one genre, that dependence is a genre cue the
classifier can exploit. The study showed it on GTZAN (10-fold cross-validation, SVM, 3 runs): accuracy
changed with the batch size (best with batches of 100 = one genre each, worse with 1 and 10), while
without batch norm it did not (one-way ANOVA over batch sizes, p = 0.491). Hence no batch norm in the
toolkit's random feature extraction.

This command repeats it as the study ran it (elmarc ``src/GTZAN.py``; docs/fidelity.md, item 6):

1. the clips are ordered by label (then id), so that extraction, which batches consecutive clips in the
   order of the dataset, fills each batch with clips of one class as far as the batch size allows; the
   dataset's own folds are kept, other datasets get ``--folds`` stratified folds (``--fold-seed``);
2. the network is the study's (``--arch study-vgg``, :class:`StudyVGG`): the VGG of 32 filters a layer
   (160 features), with batch norm on the input spectrogram and after each ELU, batch statistics (the
   same network without any batch norm for the other half of the cells); ``--arch NAME`` takes one of
   the toolkit's front-ends with its ``--batchnorm`` switch (batch norm before the activation) instead;
3. for each batch size, without and with batch norm, one run per ``--seed``, each run a **fresh random
   network** (the study ran its script once per run, each drawing new weights): the network seed of run
   ``s`` in cell ``c`` (cells in order: no batch norm then batch norm, batch sizes ascending) is
   ``s + 1000 * c`` (``--same-networks``: ``s`` in every cell, this toolkit's former design, under which
   the runs without batch norm are identical at every batch size and their ANOVA is p = 1 by construction);
4. the SVM grid scores each run with the ``cv-best`` protocol (folds pooled, GridSearchCV as the
   study's code);
5. one-way ANOVAs (``scipy.stats.f_oneway``) over batch sizes, one for the runs without batch norm (the
   study: p = 0.491) and one for those with it, each over the distinct networks of its cells.

It writes ``batchnorm.csv`` (one row per run), ``batchnorm.json`` (the cells, the ANOVAs, the settings)
and ``batchnorm.png`` (the figure) into ``--out``; ``python -m report`` shows them. The
feature sets and each cell's grid results (``grid.json``) stay under ``--out`` as provenance.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
from dataclasses import dataclass
import io
import json
import os
import sys
import warnings
from pathlib import Path

from toolkit.cli import HelpFormatter, interruptible, prog  # first: Ctrl-C while importing the rest is one line (toolkit/cli.py)
import numpy as np
import torch
from scipy import stats

from audiodata import datasets
from audiodata.decode import DEFAULT_CACHE
from classifiers.grid import GridSettings
from features.extract import ExtractionError, extract
from features.settings import ExtractSettings, add_dataset_arguments
from toolkit.settings import (Settings, SettingsError, folder_name, add_device_arguments, add_seed_argument, add_width_argument,
                              check_int, check_seeds)
from toolkit.provenance import atomic_write_bytes, atomic_write_json, run_record

__all__ = ["BatchnormSettings", "KIND", "STUDY_ANOVA_P", "DEFAULT_BATCH_SIZES", "STUDY_ARCH", "StudyVGG", "network_seed",
           "sorted_by_label", "anova", "run", "main"]

KIND = "randomcnn-batchnorm"
STUDY_ANOVA_P = 0.491           # thesis section 4.4: no batch norm, ANOVA over batch sizes
STUDY_SOURCE = "Pons 2019 thesis, section 4.4 and Fig. 4.5 (GTZAN, 10-fold CV, SVM, 3 runs, VGG)"
DEFAULT_BATCH_SIZES = (1, 10, 100)
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_OUT = Path("runs/studies/batchnorm")
CSV_FIELDS = ["dataset", "arch", "width", "batchnorm", "batch_size", "seed", "network_seed", "accuracy", "features"]
STUDY_ARCH = "study-vgg"  # the study's own network for this experiment (StudyVGG)
STUDY_FILTERS = 32        # filters a layer: 5 x 32 = 160 features
NETWORK_SEED_STRIDE = 1000  # run s of cell c draws network s + 1000 * c (a fresh network per cell and run)
TF_BN_EPSILON = 1e-3      # tf.layers.batch_normalization's default


class StudyVGG(torch.nn.Module):
    """The network of the study's batch-norm experiment (elmarc ``src/GTZAN.py``, ``cnn_small_filters``):
    the VGG of ``architectures.vgg`` (five blocks of 3x3 conv, 'same' padding, ELU, max-pool 4x2, 4x3,
    5x2, 4x2, 4x4) with 32 filters a layer and, when ``batchnorm``, batch norm on the input spectrogram
    (per mel band) and after each ELU, always with the batch's statistics (TensorFlow's epsilon 1e-3,
    gamma 1, beta 0). The mean of each pooled map is a feature: 5 x 32 = 160.

    Weights: the study's init, drawn by ``features.extract`` from the network seed (``init="study"`` of
    ``architectures.custom``). Reached as ``--arch studies.batchnorm:StudyVGG`` by extraction.
    """

    input_kind = "spectrogram"

    def __init__(self, filters: int = STUDY_FILTERS, batchnorm: bool = False):
        super().__init__()
        from architectures.vgg import POOLS
        self.pools = POOLS
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1)
                                         for i in range(len(POOLS)))
        norm = (lambda c, d: (torch.nn.BatchNorm1d if d == 1 else torch.nn.BatchNorm2d)(
            c, eps=TF_BN_EPSILON, track_running_stats=False)) if batchnorm else (lambda c, d: torch.nn.Identity())
        from audiodata.audio import N_MELS
        self.input_norm = norm(N_MELS, 1)
        self.norms = torch.nn.ModuleList(norm(filters, 2) for _ in POOLS)

    def extract_features(self, x: torch.Tensor) -> list:
        """Five pooled maps ``(batch, filters, time, freq)`` from ``x`` ``(batch, frames, 96)``."""
        h = self.input_norm(x.transpose(1, 2)).transpose(1, 2)[:, None]   # per mel band, over batch and time
        outputs = []
        for conv, norm, pool in zip(self.convs, self.norms, self.pools):
            h = torch.nn.functional.max_pool2d(norm(torch.nn.functional.elu(conv(h))), pool)
            outputs.append(h)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract_features(x)[-1]


def network_seed(seed: int, cell: int, same_networks: bool = False) -> int:
    """The seed of run ``seed``'s network in cell ``cell`` (a fresh network per cell and run)."""
    return int(seed) if same_networks else int(seed) + NETWORK_SEED_STRIDE * int(cell)


class StudyError(ValueError):
    """A setting the experiment cannot run with; the message says which and what was expected."""


def sorted_by_label(ds, folds: int = 10, fold_seed: int = 0):
    """A copy of dataset ``ds`` with its clips ordered by (label, id), evaluated by folds.

    Parameters
    ----------
    ds : audiodata.datasets.Dataset
    folds, fold_seed : int
        Stratified folds (``datasets.stratified_folds``) for a dataset that does not define folds itself.

    Returns
    -------
    audiodata.datasets.Dataset
        ``protocol_hint == "folds"``; every clip has a fold and no split.
    """
    clips = sorted(ds.clips, key=lambda c: (c.label, c.id))
    if ds.protocol_hint == "folds" and all(c.fold is not None for c in clips):
        info = dict(ds.info)
    else:
        try:
            fold = datasets.stratified_folds([c.id for c in clips], [c.label for c in clips], folds, fold_seed)
        except ValueError as e:
            raise StudyError(f"dataset {ds.name}: cannot make {folds} stratified folds: {e}") from e
        clips = [dataclasses.replace(c, split=None, fold=int(f)) for c, f in zip(clips, fold)]
        info = dict(ds.info, folds=folds, fold_seed=fold_seed, folds_made_by="studies.batchnorm")
    return dataclasses.replace(ds, clips=clips, protocol_hint="folds", info=info)


def anova(groups) -> dict:
    """One-way ANOVA over groups of accuracies (``scipy.stats.f_oneway``).

    Parameters
    ----------
    groups : sequence of sequence of float
        One group per batch size (its runs' accuracies).

    Returns
    -------
    dict
        ``F``, ``p`` (None when not computable) and ``note``: when every group is constant the F
        statistic is undefined; if all groups are also equal, the means are identical (``p`` is then
        reported as 1.0, the ANOVA's limit for equal means).
    """
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if len(groups) < 2 or min(len(g) for g in groups) < 1 or sum(len(g) for g in groups) <= len(groups):
        return {"F": None, "p": None, "note": "n/a (needs 2 or more batch sizes and more runs than batch sizes)"}
    if all(np.ptp(g) == 0 for g in groups):
        if np.ptp(np.concatenate(groups)) == 0:
            return {"F": None, "p": 1.0, "note": "every run has the same accuracy: the means are identical"}
        return {"F": None, "p": None, "note": "n/a (no variance within batch sizes)"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.f_oneway(*groups)
    n = sum(len(g) for g in groups)
    return {"F": float(res.statistic), "p": float(res.pvalue), "note": "",
            "df": [len(groups) - 1, n - len(groups)]}


def _cell_dir(out: Path, batchnorm: bool, batch_size: int) -> Path:
    return out / f"{'bn' if batchnorm else 'no-bn'}_batch{batch_size}"


def _check_order(folder: Path, expected_ids: list[str]) -> None:
    with np.load(folder / "features.npz") as z:
        ids = [str(i) for i in z["ids"]]
    keep = set(ids)
    if ids != [i for i in expected_ids if i in keep]:
        raise StudyError(f"{folder}: the feature set's clips are not in label order, so its batches were "
                         "not sorted by label; the experiment needs extraction to batch clips in the "
                         "dataset's order")


@dataclass(frozen=True)
class BatchnormSettings(Settings):
    """The experiment's settings (``python -m studies.batchnorm --help`` explains each field); each cell's
    extraction and grid settings derive from it (``extract_settings``, ``grid_settings``)."""
    dataset: str = "synthetic"
    root: object = None
    split_dir: object = None
    manifest: object = None
    arch: str = STUDY_ARCH
    width: str = "large"
    batch_sizes: tuple = DEFAULT_BATCH_SIZES
    seeds: tuple = DEFAULT_SEEDS
    folds: int = 10
    fold_seed: int = 0
    grid: str = "study"
    input_seconds: float | None = None
    same_networks: bool = False
    device: str = "auto"
    workers: int = 2
    jobs: int = 1
    out: object = DEFAULT_OUT
    cache_dir: object = DEFAULT_CACHE

    RECORD_ONLY = ("workers", "jobs", "out", "cache_dir")

    def validate(self) -> None:
        sizes = self.batch_sizes if isinstance(self.batch_sizes, (list, tuple)) else [self.batch_sizes]
        sizes = tuple(sorted({check_int("--batch-sizes", b, 1) for b in sizes}))
        if len(sizes) < 2:
            raise SettingsError("--batch-sizes", list(self.batch_sizes), "at least two distinct batch sizes (the "
                                "experiment compares them)")
        self._set("batch_sizes", sizes)
        self._set("seeds", check_seeds("--seed", self.seeds))
        if not self.same_networks and max(self.seeds) >= NETWORK_SEED_STRIDE:
            raise SettingsError("--seed", list(self.seeds), f"seeds in 0..{NETWORK_SEED_STRIDE - 1}: each run draws "
                                f"network seed + {NETWORK_SEED_STRIDE} x cell (or --same-networks)")
        if self.arch == "mfcc":
            raise SettingsError("--arch", self.arch, "a CNN front-end with a batch-norm switch (not mfcc)")
        self.extract_settings(batch_size=sizes[0], batchnorm=False, seed=self.seeds[0])  # checks them all once
        self.grid_settings()

    def extract_settings(self, batch_size: int, batchnorm: bool, seed: int) -> ExtractSettings:
        """One cell's extraction of one network seed, into the cell's ``features/`` folder."""
        net = dict(arch=f"{__name__}:StudyVGG", custom={"options": {"batchnorm": batchnorm}}, width="small") \
            if self.arch == STUDY_ARCH else dict(arch=self.arch, width=self.width)
        return ExtractSettings(dataset=self.dataset, root=self.root, split_dir=self.split_dir,
                               manifest=self.manifest, seed=seed, batch_size=batch_size, batchnorm=batchnorm,
                               input_seconds=self.input_seconds, device=self.device, workers=self.workers,
                               cache_dir=self.cache_dir,
                               out=_cell_dir(Path(self.out), batchnorm, batch_size) / "features", **net)

    def grid_settings(self) -> GridSettings:
        """The SVM grid, cv-best (folds pooled, GridSearchCV as the study's code)."""
        return GridSettings(classifier="svm", protocol="cv-best", grid=self.grid, jobs=self.jobs,
                            folds=self.folds, fold_seed=self.fold_seed)


def _grid_accuracies(paths, settings: GridSettings, out: Path, progress: bool) -> tuple[dict, dict]:
    """SVM grid, cv-best (folds pooled), on one cell's feature sets; ``{seed: accuracy}`` and the entry."""
    from classifiers.grid import run_grid
    path = run_grid(settings.replace(features=[str(p) for p in paths], out=out), progress=progress)
    kept = out / "grid.json"          # not results.json: the report must not mix these cells with the study's rows
    os.replace(path, kept)
    os.replace(Path(path).parent / "results.csv", out / "grid.csv")
    with contextlib.suppress(OSError):  # the grid's keyed folder, now empty
        Path(path).parent.rmdir()
    results = json.loads(kept.read_text())
    (entry,) = [e for e in results["entries"] if e["protocol"] == "cv-best"]
    if not entry["runs"]:
        raise StudyError(f"{out}: every SVM grid point failed ({'; '.join(entry.get('errors', []))})")
    return {r["seed"]: r["accuracy"] for r in entry["runs"]}, entry


def run(settings: BatchnormSettings | None = None, /, *, ds=None, progress: bool = True, **changes) -> Path:
    """Run the experiment and write ``batchnorm.csv`` / ``.json`` / ``.png`` into ``settings.out/<dataset>/<arch>_<key>/`` (the key: the settings's).

    ``settings`` is a :class:`BatchnormSettings` (keyword ``changes`` give a copy with those fields
    changed); ``ds`` an already loaded dataset. ``arch`` is ``"study-vgg"`` (the study's network,
    :class:`StudyVGG`; ``width`` is then only a label) or a toolkit front-end with a batch-norm switch
    (every CNN front-end; not ``mfcc``). The cells: each batch size without and with batch norm, one run
    per seed; ``same_networks``: one network per seed shared by every cell (this toolkit's former
    design) instead of a fresh network per cell and run (the study's). Returns that ``batchnorm.json``.
    """
    st = settings or BatchnormSettings()
    st = st.replace(**changes) if changes else st
    arch, width, batch_sizes, seeds = st.arch, st.width, list(st.batch_sizes), list(st.seeds)
    folds, fold_seed, same_networks, grid = st.folds, st.fold_seed, st.same_networks, st.grid
    study_net = arch == STUDY_ARCH
    if study_net:
        width = f"{STUDY_FILTERS} filters"
    if ds is None:
        ds = datasets.load_dataset(st.dataset, root=st.root, split_dir=st.split_dir, manifest=st.manifest,
                                   folds=folds, seed=fold_seed)
    ds = sorted_by_label(ds, folds, fold_seed)
    order = [c.id for c in ds.clips]
    # --out is the root, as in every tool: this experiment's folder is named by its settings' key, so an
    # experiment of other settings into the same --out never replaces it
    out = Path(st.out) / folder_name(ds.name) / f"{folder_name(arch)}_{st.key(10)}"
    cells, csv_rows = [], []
    for c, (batchnorm, bs) in enumerate((bn, b) for bn in (False, True) for b in batch_sizes):
        cell_out = _cell_dir(out, batchnorm, bs)
        paths = []
        net_seeds = [network_seed(s, c, same_networks) for s in seeds]
        for seed, net_seed in zip(seeds, net_seeds):
            try:
                folder = extract(st.extract_settings(bs, batchnorm, net_seed), ds=ds, progress=progress)
            except ValueError as e:
                if "batchnorm" in str(e):
                    raise StudyError(f"--arch {arch}: has no batch-norm switch; choose a CNN front-end") from e
                raise
            _check_order(folder, order)
            paths.append(folder)
        accs, entry = _grid_accuracies(paths, st.grid_settings(), cell_out, progress)
        values = [accs[s] for s in net_seeds if s in accs]
        cells.append({"batchnorm": batchnorm, "batch_size": bs,
                      "seeds": [s for s, n in zip(seeds, net_seeds) if n in accs],
                      "network_seeds": [n for n in net_seeds if n in accs],
                      "accuracies": values, "mean": float(np.mean(values)),
                      "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                      "selected": [r["selected"] for r in entry["runs"]],
                      "fold_weighting": entry.get("fold_weighting"),
                      "features": [str(p) for p in paths], "grid_results": str(cell_out / "grid.json")})
        csv_rows += [{"dataset": ds.name, "arch": arch, "width": width, "batchnorm": batchnorm,
                      "batch_size": bs, "seed": s, "network_seed": n, "accuracy": accs[n], "features": str(p)}
                     for s, n, p in zip(seeds, net_seeds, paths) if n in accs]
    tests = {}
    for bn in (False, True):
        mine = [c for c in cells if c["batchnorm"] == bn]
        tests["batchnorm" if bn else "no_batchnorm"] = dict(
            anova([c["accuracies"] for c in mine]),
            groups=len(mine), runs=sum(len(c["accuracies"]) for c in mine),
            distinct_networks=len({n for c in mine for n in c["network_seeds"]}))
    config = dict(st.record(), dataset=ds.name, root=str(ds.root) if ds.root else None, width=width,
                  batch_sizes=batch_sizes, seeds=seeds)
    result = {"kind": KIND, "version": 1, "dataset": ds.name, "arch": arch, "width": width,
              "classifier": "svm", "protocol": "cv-best", "n_clips": len(ds.clips), "classes": list(ds.classes),
              "order": "clips sorted by label, then id; each batch holds consecutive clips",
              "networks": ("one network per seed, shared by every cell (--same-networks)" if same_networks else
                           f"a fresh network for every cell and run (network seed = seed + "
                           f"{NETWORK_SEED_STRIDE} x cell), as the study"),
              "network": (f"the study's VGG: {STUDY_FILTERS} filters a layer, batch norm on the input "
                          "spectrogram and after each ELU (batch statistics)") if study_net else
                         f"{arch}: the toolkit's front-end, batch norm after each conv, before the activation",
              "batch_sizes": batch_sizes, "seeds": seeds, "cells": cells, "anova": tests,
              "study": {"anova_p_no_batchnorm": STUDY_ANOVA_P, "source": STUDY_SOURCE},
              "figure": "batchnorm.png"}
    result.update(run_record(config))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows)
    atomic_write_bytes(out / "batchnorm.csv", buf.getvalue().encode("utf-8"))
    from report.figures import batchnorm_chart
    atomic_write_bytes(out / "batchnorm.png", batchnorm_chart(result))
    return atomic_write_json(out / "batchnorm.json", result)


def summary(result: dict) -> str:
    """A text table: batch size x (no batch norm, batch norm), mean +- std percent, and the ANOVAs."""
    lines = [f"{'batch size':>10}  {'no batch norm':>16}  {'batch norm':>16}"]
    by = {(c["batchnorm"], c["batch_size"]): c for c in result["cells"]}

    def fmt(c):
        return f"{100 * c['mean']:.2f}" + (f" +- {100 * c['std']:.2f}" if c["std"] is not None else "")
    for bs in result["batch_sizes"]:
        lines.append(f"{bs:>10}  {fmt(by[False, bs]):>16}  {fmt(by[True, bs]):>16}")
    for name, a in result["anova"].items():
        p = "n/a" if a["p"] is None else f"{a['p']:.3g}"
        lines.append(f"ANOVA over batch sizes, {name.replace('_', ' ')}: p = {p}" + (f" ({a['note']})" if a["note"] else ""))
    lines.append(f"(the study, no batch norm: p = {STUDY_ANOVA_P})")
    if result.get("networks"):
        lines.append(f"networks: {result['networks']}")
    return "\n".join(lines)


def parse_args(argv=None):
    import architectures
    p = argparse.ArgumentParser(
        prog=prog("python -m studies.batchnorm"),
        description="The study's batch-norm experiment as it ran it (thesis section 4.4, Fig. 4.5; elmarc "
                    "src/GTZAN.py): random-CNN features of its VGG (32 filters a layer, batch norm on the input "
                    "and after each ELU, batch statistics) extracted with clips sorted by label into batches of "
                    "each --batch-sizes, without and with batch norm, a fresh random network for every batch "
                    "size and run, scored by the SVM grid (cv-best, folds pooled), one run per --seed; one-way "
                    "ANOVAs over batch sizes without batch norm (the study: "
                    f"p = {STUDY_ANOVA_P}) and with it. Writes batchnorm.csv, batchnorm.json and batchnorm.png "
                    "into OUT/<dataset>/<arch>_<key>/ (the last line printed is the JSON's path). The study's setting: --dataset "
                    "gtzan --root DIR --folds 10 --batch-sizes 1 10 100 --seed 0 1 2.",
        formatter_class=HelpFormatter)
    archs = [a for a in architectures.ARCHITECTURES if a != "mfcc"]
    add_dataset_arguments(p)
    p.add_argument("--arch", default=STUDY_ARCH, choices=[STUDY_ARCH, *archs],
                   help=f"{STUDY_ARCH}: the study's network for this experiment (its VGG of {STUDY_FILTERS} "
                        "filters a layer, batch norm on the input and after each ELU); or a toolkit front-end "
                        "with its --batchnorm switch (batch norm after each conv, before the activation)")
    p.add_argument("--same-networks", action="store_true",
                   help="one network per --seed in every cell (the toolkit's former design: the runs without "
                        "batch norm are then identical across batch sizes, ANOVA p = 1 by construction); "
                        "default: a fresh network for every cell and run, as the study")
    add_width_argument(p, "large: about 3500 features; small: about 120 (quicker); a label only for study-vgg")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCH_SIZES),
                   help="extraction batch sizes to compare")
    add_seed_argument(p, default=DEFAULT_SEEDS, help="random-weight seeds, one run each (the study: 3 runs)")
    p.add_argument("--folds", type=int, default=10,
                   help="stratified folds for datasets that do not define their own")
    p.add_argument("--fold-seed", type=int, default=0, help="shuffling seed of those folds")
    p.add_argument("--grid", default="study", choices=["study", "small"], help="SVM grid")
    p.add_argument("--input-seconds", type=float, default=None,
                   help="input length; default: the study's about 29 s")
    add_device_arguments(p)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    from classifiers.kernels import available_cpus  # the grid's default, imported when parsing
    p.add_argument("--jobs", type=int, default=available_cpus(),
                   help=f"threads for the SVM fits and the ELM tasks; default: the {available_cpus()} CPUs "
                        "this process may use")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-audio cache ('none' disables)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="root of the experiments: each writes batchnorm.csv / "
                   ".json / .png and its cells into OUT/<dataset>/<arch>_<key>/ (as every tool's --out)")
    a = p.parse_args(argv)
    a.settings = BatchnormSettings.parse(p, a, seeds=a.seed)
    return a


@interruptible
def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        path = run(a.settings)
    except (StudyError, ExtractionError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary(json.loads(Path(path).read_text())))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
