"""One training run on in-memory arrays: epochs, validation, early stopping, checkpoints, resume.

``fit`` owns the life-cycle that ``trained.train`` wires to a dataset:

- data order: epoch ``e`` shuffles with ``torch.Generator().manual_seed(seed * 1_000_003 + e)`` and
  dropout draws from the global generator re-seeded to ``seed * 1000 + e``, so a run, and a run
  resumed after an interruption, see the same batches and the same dropout masks;
- CUDA runs in mixed precision (``torch.autocast`` float16 + ``GradScaler``); the CPU in float32;
- after each epoch: validation loss and metric (accuracy, or macro ROC-AUC for multi-label), a row
  of ``history.csv``, ``checkpoint.pt`` (latest, atomic) and ``best.pt`` (lowest validation loss);
- early stopping after ``patience`` epochs without a better validation loss; SampleCNN divides its
  learning rate by 5 on a plateau of ``plateau_patience`` epochs.
"""
from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from trained.checkpoint import save_checkpoint

__all__ = ["Trainer", "fit", "predict_scores", "clip_scores", "val_metric"]


@dataclass
class Trainer:
    """What ``fit`` needs besides the data: model parts, optimizer, and where to write."""
    model: nn.Module              # has logits(x) -> (batch, n_classes)
    frontend: nn.Module           # the part whose state_dict is the checkpoint's "state_dict"
    backend: nn.Module | None     # the part saved as "backend_state_dict" (None for SampleCNN)
    optimizer: torch.optim.Optimizer
    scheduler: object | None      # ReduceLROnPlateau or None
    multilabel: bool
    device: torch.device
    ckpt_base: dict               # arch, dims, fold, dataset, config, classes
    run_dir: object


def _loss_fn(multilabel: bool):
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


def _batches(n: int, batch_size: int, order: torch.Tensor):
    for b in range(0, n, batch_size):
        idx = order[b:b + batch_size]
        if len(idx) < 2 and n >= 2:
            break  # a batch of one cannot be batch-normalised in training mode; its clip returns next epoch
        yield idx


@torch.no_grad()
def predict_scores(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 16,
                   multilabel: bool = False) -> np.ndarray:
    """Per-row probabilities ``(n_rows, n_classes)`` (softmax, or sigmoid for multi-label), eval mode."""
    model.eval()
    out = []
    for b in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[b:b + batch_size]).to(device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
            z = model.logits(xb).float()
        out.append((torch.sigmoid(z) if multilabel else torch.softmax(z, dim=1)).cpu().numpy())
    return np.concatenate(out)


def clip_scores(scores: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of the rows (segments) of each clip: ``(n_clips, n_classes)`` (Lee et al. 2017)."""
    sums = np.zeros((n_clips, scores.shape[1]), np.float64)
    np.add.at(sums, clip, scores)
    counts = np.bincount(clip, minlength=n_clips)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} clips have no rows to average")
    return (sums / counts[:, None]).astype(np.float32)


def val_metric(y: np.ndarray, scores: np.ndarray, multilabel: bool) -> tuple[str, float]:
    """``("accuracy", acc)`` or ``("roc_auc", macro ROC-AUC over tags present in both classes)``."""
    if not multilabel:
        return "accuracy", float((scores.argmax(1) == y).mean())
    from sklearn.metrics import roc_auc_score
    keep = (y.min(0) == 0) & (y.max(0) == 1)  # a tag without positives (or negatives) has no AUC
    if not keep.any():
        return "roc_auc", float("nan")
    return "roc_auc", float(roc_auc_score(y[:, keep], scores[:, keep], average="macro"))


def _loss_on(model, x, y, device, batch_size, multilabel) -> float:
    model.eval()
    loss_fn, total = _loss_fn(multilabel), 0.0
    with torch.no_grad():
        for b in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[b:b + batch_size]).to(device)
            yb = torch.from_numpy(y[b:b + batch_size]).to(device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                z = model.logits(xb).float()
            total += float(loss_fn(z, yb)) * len(xb)
    return total / len(x)


def _write_history(path, history: list[dict]) -> None:
    cols = list(history[0].keys())
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def _state(t: Trainer, history, epoch, trainer_state, scaler) -> dict:
    ckpt = dict(t.ckpt_base)
    ckpt.update(state_dict=t.frontend.state_dict(),
                backend_state_dict=t.backend.state_dict() if t.backend is not None else {},
                history=list(history), epoch=epoch, optimizer_state_dict=t.optimizer.state_dict())
    ckpt["trainer_state"] = dict(trainer_state,
                                 scheduler=t.scheduler.state_dict() if t.scheduler else None,
                                 scaler=scaler.state_dict() if scaler is not None else None)
    return ckpt


def fit(t: Trainer, train: tuple, val: tuple, epochs: int, batch_size: int, seed: int,
        patience: int = 10, resume_from: dict | None = None, progress: bool = True) -> list[dict]:
    """Train ``t.model`` and return the history (one dict per epoch, also in ``history.csv``).

    Parameters
    ----------
    train, val : tuple
        ``(x, y, clip)`` arrays: rows, their targets (class index or 0/1 tags), and their clip
        positions (validation metrics are computed per clip, averaging its rows).
    resume_from : dict, optional
        A checkpoint dict (``checkpoint.pt``) to continue from.
    """
    xtr, ytr, _ = train
    xva, yva, cva = val
    if len(xtr) < batch_size:
        raise ValueError(f"the training portion has {len(xtr)} examples, fewer than the batch size "
                         f"{batch_size}; lower --batch-size or use more clips")
    dev, ml = t.device, t.multilabel
    scaler = torch.amp.GradScaler("cuda") if dev.type == "cuda" else None
    history, start = [], 0
    st = {"best_val_loss": float("inf"), "best_epoch": None, "bad_epochs": 0, "stopped": False}
    if resume_from is not None:
        t.frontend.load_state_dict(resume_from["state_dict"])
        if t.backend is not None:
            t.backend.load_state_dict(resume_from["backend_state_dict"])
        t.optimizer.load_state_dict(resume_from["optimizer_state_dict"])
        ts = resume_from.get("trainer_state") or {}
        if t.scheduler is not None and ts.get("scheduler"):
            t.scheduler.load_state_dict(ts["scheduler"])
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        st.update({k: ts[k] for k in st if k in ts})
        history, start = list(resume_from["history"]), int(resume_from["epoch"])
    loss_fn = _loss_fn(ml)
    ytr_t = torch.from_numpy(ytr)
    run_dir = t.run_dir
    yva_clip = _clip_targets(yva, cva)
    for epoch in range(start, epochs):
        if st["stopped"]:
            break
        t0 = time.perf_counter()
        torch.manual_seed(seed * 1000 + epoch)  # dropout masks: same for a resumed run
        order = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(
            seed * 1_000_003 + epoch))
        t.model.train()
        bar = tqdm(list(_batches(len(xtr), batch_size, order)), desc=f"epoch {epoch + 1}/{epochs}",
                   unit="batch", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        total, seen = 0.0, 0
        for idx in bar:
            xb = torch.from_numpy(xtr[idx.numpy()]).to(dev, non_blocking=True)
            yb = ytr_t[idx].to(dev, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda"):
                loss = loss_fn(t.model.logits(xb).float(), yb)
            t.optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(t.optimizer)
                scaler.update()
            else:
                loss.backward()
                t.optimizer.step()
            loss_value = loss.item()
            if not np.isfinite(loss_value):
                raise FloatingPointError(f"training loss became {loss_value} at epoch {epoch + 1}; "
                                         "lower the learning rate or check the inputs")
            total += loss_value * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        val_loss = _loss_on(t.model, xva, yva, dev, batch_size, ml)
        scores = clip_scores(predict_scores(t.model, xva, dev, batch_size, ml), cva,
                             len(yva_clip))
        name, metric = val_metric(yva_clip, scores, ml)
        if t.scheduler is not None:
            t.scheduler.step(val_loss)
        row = {"epoch": epoch + 1, "train_loss": total / max(seen, 1), "val_loss": val_loss,
               f"val_{name}": metric, "lr": t.optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_loss=f"{val_loss:.4f}",
                        **{f"val_{name}": f"{metric:.4f}"})
        bar.close()
        if progress:
            print(f"epoch {epoch + 1}: train_loss {row['train_loss']:.4f}  val_loss {val_loss:.4f}  "
                  f"val_{name} {metric:.4f}  {row['seconds']:.1f} s", file=sys.stderr)
        improved = val_loss < st["best_val_loss"]
        if improved:
            st.update(best_val_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
        else:
            st["bad_epochs"] += 1
            st["stopped"] = st["bad_epochs"] >= patience
        ckpt = _state(t, history, epoch + 1, st, scaler)
        if improved:
            save_checkpoint(run_dir / "best.pt", ckpt)
        save_checkpoint(run_dir / "checkpoint.pt", ckpt)  # last: a crash before it repeats the epoch
        _write_history(run_dir / "history.csv", history)
    return history


def _clip_targets(y: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """One target per clip from per-row targets (rows of a clip share their clip's target)."""
    n = int(clip.max()) + 1
    first = np.full(n, -1)
    first[clip[::-1]] = np.arange(len(clip))[::-1]
    return y[first]
