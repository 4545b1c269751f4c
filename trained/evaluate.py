"""End-to-end evaluation of trained models, written in the classifier grid's results format.

``python -m trained.evaluate RUN [RUN ...]`` takes run folders of ``trained.train`` (one per seed,
``runs/trained/<dataset>/<arch>_<width>_seed<s>-<recipe key>``), lets each fold's (or the split's) ``best.pt``
predict its own test clips, and writes ``results.json`` + ``results.csv`` (``docs/formats.md``
"Results") to ``runs/results/<dataset>/<arch>_<width>_end-to-end/``, with ``protocol: "end-to-end"``
and ``classifier: "samplecnn-<block>"`` (SampleCNN) or ``"pons2018-backend"`` (front-end + back-end).

Front-ends trained on patches (``patch_seconds`` in the checkpoint's config) predict a clip as the
mean of their predictions over a moving window of patches covering the whole input (Pons et al.
2018); SampleCNN as the mean over its 59 049-sample segments.

Single-label: ``accuracy`` (split: on the test clips; folds: the mean of ``fold_accuracies``, with
every clip's out-of-fold prediction), confusion, per-class accuracy. Multi-label (tags): extra fields
``roc_auc`` and ``pr_auc`` (macro over tags, sklearn), ``metric: "roc_auc"``, ``accuracy`` null, and
the predicted tags (score >= 0.5) joined with ``;``; ``mean`` / ``std`` are over ``roc_auc``.
"""
from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

from toolkit.cli import HelpFormatter, interruptible  # first: Ctrl-C while importing the rest is one line (toolkit/cli.py)
import numpy as np
import torch

from toolkit.device import resolve_device
from toolkit.provenance import atomic_write_bytes, atomic_write_json, run_record
from toolkit.settings import folder_name, stable_key
from audiodata.decode import InputSpec
from trained import data
from architectures.checkpoint import SAMPLECNN, load_model, read_checkpoint
from trained.loop import clip_scores, patch_lengths, predict_scores, windows
from architectures.samplecnn import SAMPLE_RATE, SEGMENT_SAMPLES

__all__ = ["evaluate", "predict_test", "DEFAULT_OUT"]

DEFAULT_OUT = Path("runs/results")


def predict_test(run_dir, ds, device: torch.device, progress: bool = True) -> dict:
    """Test-clip predictions of ``run_dir/best.pt``: ``{ids, y (targets), scores, classes, ...}``."""
    run_dir = Path(run_dir)
    model, ckpt = load_model(run_dir / "best.pt")
    model = model.to(device)
    cfg, classes = ckpt["config"], ckpt["classes"]
    multilabel = bool(cfg.get("multilabel"))
    idx = data.portions(ds, ckpt["fold"])["test"]
    clips = [ds.clips[i] for i in idx]
    seen = set(ckpt.get("train_ids") or []) | set(ckpt.get("val_ids") or [])
    leaked = [c.id for c in clips if c.id in seen]
    if leaked:
        raise ValueError(f"{run_dir / 'best.pt'}: {len(leaked)} of its {len(clips)} test clips were "
                         f"in its training or validation set (first: {leaked[0]}); the dataset's folds "
                         "differ from the ones it was trained on")
    if ckpt["arch"] == SAMPLECNN:  # every segment of the clip: prediction = their mean
        inp = data.load_inputs(clips, InputSpec("waveform", SEGMENT_SAMPLES, cfg["pad"],
                                                verify=cfg.get("verify_audio", "stamp")), cfg["cache_dir"],
                               segments=data.Segments(SAMPLE_RATE), desc="test", progress=progress)
    else:
        from audiodata import audio
        n_samples, n_frames = audio.input_lengths(cfg["input_seconds"])
        kind = cfg["input_kind"]
        inp = data.load_inputs(clips, InputSpec(kind, n_samples if kind == "waveform" else n_frames, cfg["pad"],
                                                verify=cfg.get("verify_audio", "stamp")),
                               cfg["cache_dir"], workers=cfg.get("workers", 0), desc="test", progress=progress)
    x, clip = inp.x, inp.clip
    patch = None if ckpt["arch"] == SAMPLECNN else patch_lengths(
        cfg["input_kind"], cfg["input_seconds"], cfg.get("patch_seconds"), cfg.get("window_hop_seconds"))
    if patch is not None:  # trained on patches: a clip's prediction is the mean over its windows
        x, rows = windows(x, *patch)
        clip = clip[rows]
    kept = np.unique(clip)
    scores = clip_scores(predict_scores(model, x, device, cfg["batch_size"], multilabel, cfg.get("precision")),
                         np.searchsorted(kept, clip), len(kept))
    kept_clips = [clips[i] for i in kept]
    return {"ids": [c.id for c in kept_clips], "labels": [str(c.label) for c in kept_clips],
            "y": data.encode_labels(kept_clips, classes, multilabel), "scores": scores,
            "classes": classes, "multilabel": multilabel, "fold": ckpt["fold"], "ckpt": ckpt,
            "skipped": inp.skipped}


def _single_label_run(parts, seed, run_root) -> dict:
    from sklearn.metrics import confusion_matrix
    classes = parts[0]["classes"]
    ids = [i for p in parts for i in p["ids"]]
    y = np.concatenate([p["y"] for p in parts])
    pred = np.concatenate([p["scores"].argmax(1) for p in parts])
    accs = [float((p["scores"].argmax(1) == p["y"]).mean()) for p in parts]
    conf = confusion_matrix(y, pred, labels=list(range(len(classes))))
    per_class = {c: (float(conf[i, i] / conf[i].sum()) if conf[i].sum() else None)
                 for i, c in enumerate(classes)}
    is_folds = parts[0]["fold"] is not None
    return {"seed": seed, "features": str(run_root),
            "accuracy": float(np.mean(accs)) if is_folds else accs[0],
            "selected": _selected(parts[0]["ckpt"]),
            "fold_accuracies": accs if is_folds else None, "per_class_accuracy": per_class,
            "labels": classes, "confusion": conf.tolist(),
            "predictions": {"ids": ids, "y_true": [classes[i] for i in y],
                            "y_pred": [classes[i] for i in pred]}}


def _multilabel_run(parts, seed, run_root) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score
    classes = parts[0]["classes"]
    y = np.concatenate([p["y"] for p in parts])
    s = np.concatenate([p["scores"] for p in parts])
    keep = (y.min(0) == 0) & (y.max(0) == 1)  # tags all-positive or all-negative have no AUC
    if not keep.any():
        raise ValueError("no tag has both positive and negative test clips; ROC-AUC is undefined")
    pred = s >= 0.5
    return {"seed": seed, "features": str(run_root), "accuracy": None, "metric": "roc_auc",
            "roc_auc": float(roc_auc_score(y[:, keep], s[:, keep], average="macro")),
            "pr_auc": float(average_precision_score(y[:, keep], s[:, keep], average="macro")),
            "tags_scored": int(keep.sum()), "selected": _selected(parts[0]["ckpt"]),
            "fold_accuracies": None, "labels": classes,
            "predictions": {"ids": [i for p in parts for i in p["ids"]],
                            "y_true": [l for p in parts for l in p["labels"]],
                            "y_pred": [";".join(classes[j] for j in np.flatnonzero(r)) for r in pred]}}


def _selected(ckpt) -> dict:
    cfg = ckpt["config"]
    keys = (("block", "se_ratio", "multi_level", "weight_decay", "plateau_patience", "lr_decreases")
            if ckpt["arch"] == SAMPLECNN else
            ("batchnorm", "frontend_bn", "patch_seconds", "window_hop_seconds", "input_seconds"))
    best = [h for h in ckpt["history"] if h["epoch"] == ckpt["epoch"]]
    return {**{k: cfg.get(k) for k in keys}, "best_epoch": ckpt["epoch"],
            "val_loss": best[0]["val_loss"] if best else None}


_NOT_RECIPE = ("seed", "fold", "epochs", "patience", "device", "workers", "cache_dir", "root", "split_dir",
               "manifest", "settings", "input_kind", "backend", "recipe_key")


def _recipe_of(cfg: dict) -> str:
    """The recipe of a checkpoint's config: its ``recipe_key`` (the run folder's), else a key of every
    setting but the seed, the fold and what changes no weight (checkpoints of older versions)."""
    if cfg.get("recipe_key"):
        return str(cfg["recipe_key"])
    return stable_key({k: v for k, v in cfg.items() if k not in _NOT_RECIPE}, 10)


def _check_one_recipe(recipes: dict) -> None:
    """Runs of one results file are runs of one thing: one recipe in every fold of every seed."""
    for root, keys in recipes.items():
        if len(keys) > 1:
            raise ValueError(f"{root}: its folds were trained with different settings (recipes {sorted(keys)}); "
                             "folds of other settings are other runs: train them into their own folder")
    every = set().union(*recipes.values()) if recipes else set()
    if len(every) > 1:
        raise ValueError(f"run folders {', '.join(recipes)} were trained with different settings (recipes "
                         f"{sorted(every)}); one results file holds runs of one recipe (other seeds only)")


def _classifier(ckpt) -> str:
    return f"samplecnn-{ckpt['config']['block']}" if ckpt["arch"] == SAMPLECNN else "pons2018-backend"


def evaluate(run_roots, out=DEFAULT_OUT, ds=None, device: str = "auto", progress: bool = True) -> Path:
    """Predict every run's test clips and write ``results.json`` / ``results.csv``; returns the json path.

    Parameters
    ----------
    run_roots : list of path
        ``trained.train`` run folders of one dataset and architecture (one per seed), each holding
        ``split/`` or ``fold<k>/`` folders with ``best.pt``.
    ds : Dataset, optional
        The dataset; loaded from the first checkpoint's config when omitted.
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    runs, first, recipes, covered = [], None, {}, {}
    for root in map(Path, run_roots):
        dirs = sorted(d for d in root.iterdir() if (d / "best.pt").exists()) if root.is_dir() else []
        if not dirs:
            raise FileNotFoundError(f"{root}: no split/ or fold<k>/ folder with a best.pt "
                                    "(train first with python -m trained.train)")
        ckpt0 = read_checkpoint(dirs[0] / "best.pt")
        first = first or ckpt0
        if ds is None:
            from audiodata import datasets
            c = ckpt0["config"]
            ds = datasets.load_dataset(c["dataset"], root=c["root"], split_dir=c["split_dir"],
                                       manifest=c["manifest"], folds=c["folds"],
                                       seed=(c["fold_seed"] or 0) if "fold_seed" in c else c["seed"])
        parts = [predict_test(d, ds, dev, progress) for d in dirs]
        recipes[str(root)] = {_recipe_of(read_checkpoint(d / "best.pt")["config"]) for d in dirs}
        seed = ckpt0["config"]["seed"]
        run = _multilabel_run(parts, seed, root) if parts[0]["multilabel"] else _single_label_run(parts, seed, root)
        covered[seed] = sorted(p["fold"] for p in parts if p["fold"] is not None)
        n_folds = ckpt0["config"].get("folds")
        if n_folds and len(covered[seed]) < int(n_folds):  # a per-fold run: not the end-to-end figure
            run["partial"] = {"folds_trained": covered[seed], "folds": int(n_folds)}
        runs.append(run)
    _check_one_recipe(recipes)
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"run folders {', '.join(map(str, run_roots))}: seed {seeds} given twice; one run per seed")
    cfg = first["config"]
    metric = "roc_auc" if cfg.get("multilabel") else "accuracy"
    vals = [r[metric] for r in runs]
    entry = {"classifier": _classifier(first), "protocol": "end-to-end", "optimistic": False,
             "runs": runs, "mean": float(np.mean(vals)),
             "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None, "n_runs": len(runs),
             "failed_points": [], "timings": {"total_s": time.perf_counter() - t0}}
    if cfg.get("multilabel"):
        entry["metric"] = metric
    partial = [r["partial"] for r in runs if "partial" in r]
    if partial:  # the report never shows it as the end-to-end figure (report/load.py)
        entry["partial"] = {"note": "trained on fewer folds than the protocol has: not the end-to-end result",
                            "runs": {str(r["seed"]): r["partial"] for r in runs if "partial" in r}}
    if first["arch"] == SAMPLECNN:  # the papers' MagnaTagATune scores of this very setting, with source
        from report.published import SAMPLECNN_PAPERS, samplecnn_published
        entry["published_samplecnn"] = [
            dict(s._asdict(), source=SAMPLECNN_PAPERS[s.paper], dataset="MagnaTagATune top-50",
                 metric="roc_auc")
            for s in samplecnn_published(cfg["block"], cfg["se_ratio"], cfg["multi_level"])]
    n_params = sum(v.numel() for v in first["state_dict"].values() if v.is_floating_point()) + \
        sum(v.numel() for v in first["backend_state_dict"].values() if v.is_floating_point())
    res = {"kind": "randomcnn-results", "version": 1, "dataset": ds.name, "arch": first["arch"],
           "width": cfg["width"], "weights": "trained", "feature_length": None,
           "n_params": n_params, "gflop_per_clip": None, "extract_clips_per_s": None,
           "features": [str(r) for r in run_roots], "entries": [entry]}
    res.update(run_record({"run_roots": [str(r) for r in run_roots], "device": dev.type}))
    # one results file per (recipe, seeds, folds trained): another configuration never replaces it
    res["results_key"] = stable_key({"recipe": sorted(set().union(*recipes.values())), "seeds": sorted(seeds),
                                     "folds": {str(k): v for k, v in sorted(covered.items())}}, 10)
    folder = Path(out) / folder_name(ds.name) / \
        f"{folder_name(first['arch'])}_{cfg['width']}_end-to-end_{res['results_key']}"
    path = atomic_write_json(folder / "results.json", res)
    _write_csv(folder / "results.csv", res)
    return path


def _write_csv(path, res) -> None:
    buf = io.StringIO()
    cols = ["dataset", "arch", "width", "weights", "classifier", "protocol", "seed", "accuracy",
            "roc_auc", "pr_auc", "features"]
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for e in res["entries"]:
        for r in e["runs"]:
            w.writerow({"dataset": res["dataset"], "arch": res["arch"], "width": res["width"],
                        "weights": res["weights"], "classifier": e["classifier"],
                        "protocol": e["protocol"], "seed": r["seed"], "accuracy": r["accuracy"],
                        "roc_auc": r.get("roc_auc"), "pr_auc": r.get("pr_auc"),
                        "features": r["features"]})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


@interruptible
def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m trained.evaluate",
                                formatter_class=HelpFormatter,
                                description="Evaluate trained models on their test clips and write a "
                                            "results file in the classifier grid's format. The last "
                                            "line printed is the results.json path.")
    p.add_argument("run_roots", nargs="+", help="run folders of trained.train (one per seed)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results root")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    a = p.parse_args(argv)
    try:
        path = evaluate(a.run_roots, out=a.out, device=a.device)
    except (ValueError, FileNotFoundError) as e:
        p.exit(2, f"error: {e}\n")
    print(path)


if __name__ == "__main__":
    main()
