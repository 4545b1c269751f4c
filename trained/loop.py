"""One training run on in-memory arrays: epochs, validation, early stopping, checkpoints, resume.

``fit`` owns the life-cycle that ``trained.train`` wires to a dataset:

- data order: epoch ``e`` shuffles with ``torch.Generator().manual_seed(seed * 1_000_003 + e)`` and
  dropout draws from the global generator re-seeded to ``seed * 1000 + e``, so a run, and a run
  resumed after an interruption, see the same batches and the same dropout masks;
- the arithmetic is ``--precision`` (``toolkit.device.resolve_precision``: ``auto`` is autocast float16
  with a ``GradScaler`` on CUDA, float32 on the CPU; ``bf16`` autocast bfloat16; ``float32`` / ``tf32``);
- a non-finite training or validation loss, or non-finite weights or batch-norm statistics after an
  epoch, stop the run (``NonFinite``, naming the epoch and, for a training batch, its clips): nothing
  non-finite is ever saved as ``best.pt``;
- after each epoch: validation loss and metric (accuracy, or macro ROC-AUC for multi-label), a row
  of ``history.csv``, ``checkpoint.pt`` (latest, atomic) and ``best.pt`` (lowest validation loss);
- early stopping after ``patience`` epochs without a better validation loss (``None``: none);
- SampleCNN trains in learning-rate stages (``StagedLR``): after ``patience`` epochs of a stage without
  a lower validation loss the rate is divided by 5 and training goes on from the best weights so far,
  and after the last stage (4 decreases) training stops, as the SampleCNN papers and their code do;
- patches (Pons et al. 2018): with ``patch`` set, every training row is cropped to ``patch`` samples
  / frames at an offset drawn per epoch (``seed * 2_000_003 + epoch``, so resumed runs see the same
  crops); ``windows`` cuts validation and test inputs into a moving window of patches whose
  predictions ``clip_scores`` averages.
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

from architectures.checkpoint import read_checkpoint
from toolkit.device import autocast
from trained.checkpoint import save_checkpoint

__all__ = ["Trainer", "FitOptions", "NonFinite", "StagedLR", "fit", "predict_scores", "clip_scores", "val_metric",
           "window_starts", "windows", "random_crops", "patch_lengths"]


class NonFinite(FloatingPointError):
    """A loss, weight or batch-norm statistic that is NaN or infinite: the run stops here."""


@dataclass(frozen=True)
class FitOptions:
    """How ``fit`` trains: ``epochs``, ``batch_size``, ``seed`` (data order, dropout, crops), early-stopping
    ``patience`` (None: never), the training ``patch`` (None: whole rows), the ``precision`` (a resolved
    one: float32, tf32, bf16, fp16) and, for messages, the clip id of every training row (``row_ids``)."""
    epochs: int
    batch_size: int
    seed: int
    patience: int | None = 10
    patch: int | None = None
    precision: str = "float32"
    row_ids: tuple | None = None


@dataclass
class Trainer:
    """What ``fit`` needs besides the data: model parts, optimizer, and where to write."""
    model: nn.Module              # has logits(x) -> (batch, n_classes)
    frontend: nn.Module           # the part whose state_dict is the checkpoint's "state_dict"
    backend: nn.Module | None     # the part saved as "backend_state_dict" (None for SampleCNN)
    optimizer: torch.optim.Optimizer
    scheduler: object | None      # StagedLR (SampleCNN) or None
    multilabel: bool
    device: torch.device
    ckpt_base: dict               # arch, dims, fold, dataset, config, classes
    run_dir: object


class StagedLR:
    """Learning-rate stages of the SampleCNN papers (Lee et al. 2017; Kim et al. 2018 / 2019).

    Stage ``s`` trains at ``lr0 * factor ** s``. A stage ends on the ``patience``-th epoch in a row
    whose validation loss is not lower than the stage's best (Keras' count, as the papers' code
    used: ``EarlyStopping(patience)`` per stage). Then, while fewer than ``max_decreases`` decreases
    were made, the next stage starts; after that, training stops. ``fit`` starts each new stage from
    the best weights so far (``best.pt``) with fresh momentum, as the authors' code reloaded the best
    checkpoint and built a new optimizer for every stage.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its ``lr`` values at construction are ``lr0``.
    patience : int
        Epochs without improvement that end a stage (>= 1).
    factor : float
        Multiplier of the rate at each decrease (0.2: divided by 5).
    max_decreases : int
        Decreases before training stops (4: the last stage runs at ``lr0 / 5 ** 4``).
    decay : float
        Keras' SGD ``decay`` (resemul's train.py: 1e-6): update ``k`` of a stage (counted from 0, since
        every stage built a new optimizer) runs at the stage's rate ``/ (1 + decay * k)``; ``fit`` calls
        ``batch_step()`` before every update. 0: a constant rate within the stage.
    """

    def __init__(self, optimizer, patience: int, factor: float = 0.2, max_decreases: int = 4,
                 decay: float = 0.0):
        if int(patience) < 1 or int(max_decreases) < 0 or not 0 < factor < 1 or not decay >= 0:
            raise ValueError(f"StagedLR needs patience >= 1, max_decreases >= 0, 0 < factor < 1 and decay >= 0, "
                             f"found {patience}, {max_decreases}, {factor}, {decay}")
        self.optimizer = optimizer
        self.patience, self.factor, self.max_decreases = int(patience), float(factor), int(max_decreases)
        self.decay = float(decay)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.stage, self.best, self.bad, self.updates = 0, float("inf"), 0, 0

    def batch_step(self) -> None:
        """Set the rate of the coming update (Keras' time-based ``decay``) and count it."""
        if self.decay:
            for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
                g["lr"] = lr * self.factor ** self.stage / (1.0 + self.decay * self.updates)
        self.updates += 1

    def step(self, val_loss: float) -> str:
        """``"continue"``, ``"next"`` (the rate was just divided: restart from the best weights) or
        ``"stop"`` (the last stage ended)."""
        if val_loss < self.best:
            self.best, self.bad = float(val_loss), 0
            return "continue"
        self.bad += 1
        if self.bad < self.patience:
            return "continue"
        if self.stage >= self.max_decreases:
            return "stop"
        self.stage, self.best, self.bad, self.updates = self.stage + 1, float("inf"), 0, 0
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = lr * self.factor ** self.stage
        return "next"

    def state_dict(self) -> dict:
        return {"stage": self.stage, "best": self.best, "bad": self.bad, "base_lrs": self.base_lrs,
                "patience": self.patience, "factor": self.factor, "max_decreases": self.max_decreases,
                "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.stage, self.best, self.bad = int(state["stage"]), float(state["best"]), int(state["bad"])
        self.base_lrs = list(state["base_lrs"])
        self.updates = int(state.get("updates", 0))


def window_starts(length: int, patch: int, hop: int) -> list[int]:
    """Offsets of a moving window of ``patch`` over ``length`` steps, every ``hop``; when the last
    window stops short of the end, one more ends exactly at the end (the whole input is covered).

    ``window_starts(1376, 703, 703) == [0, 673]``: two 15 s patches of a 29 s spectrogram.
    """
    if patch < 1 or hop < 1:
        raise ValueError(f"patch and hop must be >= 1, found {patch}, {hop}")
    if patch >= length:
        return [0]
    starts = list(range(0, length - patch + 1, hop))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def windows(x: np.ndarray, patch: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut every row of ``x`` ``(n, T, ...)`` into its ``window_starts(T, patch, hop)`` windows.

    Returns
    -------
    xw : np.ndarray
        ``(n * k, patch, ...)``, the k windows of row 0 first.
    rows : np.ndarray
        ``(n * k,)``, the row of ``x`` each window comes from (index targets and clips with it).
    """
    starts = window_starts(x.shape[1], patch, hop)
    if x.shape[1] <= patch:
        return x, np.arange(len(x))
    xw = np.stack([x[:, s:s + patch] for s in starts], axis=1)  # (n, k, patch, ...)
    return xw.reshape(-1, *xw.shape[2:]), np.repeat(np.arange(len(x)), len(starts))


def random_crops(x: np.ndarray, rows: np.ndarray, offsets: np.ndarray, patch: int) -> np.ndarray:
    """``x[rows[i], offsets[i]:offsets[i] + patch]`` for every i: ``(len(rows), patch, ...)``."""
    return np.stack([x[r, o:o + patch] for r, o in zip(rows, offsets)])


def patch_lengths(input_kind: str, input_seconds: float | None, patch_seconds: float | None,
                  hop_seconds: float | None = None) -> tuple[int, int] | None:
    """``(patch, hop)`` in the input's steps (samples or spectrogram frames), or ``None`` when the
    model sees its whole input (``patch_seconds`` unset / 0, or at least the input's length).

    ``hop_seconds`` defaults to the patch length: consecutive patches, as Pons et al. 2018 predicted a
    song ("a moving window of 15 s", "consecutive patches of 15 s").
    """
    from audiodata import audio
    if not patch_seconds:
        return None
    full = audio.input_lengths(input_seconds)
    patch = audio.input_lengths(patch_seconds)
    hop = audio.input_lengths(hop_seconds) if hop_seconds else patch
    i = 0 if input_kind == "waveform" else 1
    if patch[i] >= full[i]:
        return None
    return patch[i], hop[i]


def _loss_fn(multilabel: bool):
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


def _batches(n: int, batch_size: int, order: torch.Tensor):
    for b in range(0, n, batch_size):
        idx = order[b:b + batch_size]
        if len(idx) < 2 and n >= 2:
            break  # a batch of one cannot be batch-normalised in training mode; its clip returns next epoch
        yield idx


def default_precision(device: torch.device) -> str:
    """The precision a run without one uses (``toolkit.device.resolve_precision``'s ``auto``)."""
    return "fp16" if device.type == "cuda" else "float32"


@torch.no_grad()
def predict_scores(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 16,
                   multilabel: bool = False, precision: str | None = None) -> np.ndarray:
    """Per-row probabilities ``(n_rows, n_classes)`` (softmax, or sigmoid for multi-label), eval mode."""
    model.eval()
    out = []
    precision = precision or default_precision(device)
    for b in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[b:b + batch_size]).to(device)
        with autocast(device, precision):
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


def _loss_on(model, x, y, device, batch_size, multilabel, precision) -> float:
    model.eval()
    loss_fn, total = _loss_fn(multilabel), 0.0
    with torch.no_grad():
        for b in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[b:b + batch_size]).to(device)
            yb = torch.from_numpy(y[b:b + batch_size]).to(device)
            with autocast(device, precision):
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


def non_finite_state(*modules) -> list[str]:
    """Names of the parameters and buffers (batch-norm running statistics) holding NaN or infinity."""
    bad = []
    for m in modules:
        if m is None:
            continue
        for name, v in list(m.named_parameters()) + list(m.named_buffers()):
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                bad.append(name)
    return bad


def fit(t: Trainer, train: tuple, val: tuple, options: FitOptions, resume_from: dict | None = None,
        progress: bool = True) -> list[dict]:
    """Train ``t.model`` and return the history (one dict per epoch, also in ``history.csv``).

    Parameters
    ----------
    train, val : tuple
        ``(x, y, clip)`` arrays: rows, their targets (class index or 0/1 tags), and their clip
        positions (validation metrics are computed per clip, averaging its rows).
    options : FitOptions
        Epochs, batch size, seed, early-stopping patience (``None`` never stops early), training patch
        (``None``: whole rows), precision.
    resume_from : dict, optional
        A checkpoint dict (``checkpoint.pt``) to continue from.

    Raises :class:`NonFinite` on a NaN or infinite loss, weight or batch-norm statistic.
    """
    epochs, batch_size, seed, patience, patch = (options.epochs, options.batch_size, options.seed,
                                                 options.patience, options.patch)
    precision = options.precision
    xtr, ytr, ctr = train
    xva, yva, cva = val
    if len(xtr) < batch_size:
        raise ValueError(f"the training portion has {len(xtr)} examples, fewer than the batch size "
                         f"{batch_size}; lower --batch-size or use more clips")
    dev, ml = t.device, t.multilabel
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    history, start = [], 0
    st = {"best_val_loss": float("inf"), "best_epoch": None, "bad_epochs": 0, "stopped": False,
          "stop_reason": None}
    if patch is not None and not 1 <= patch <= xtr.shape[1]:
        raise ValueError(f"patch of {patch} steps does not fit rows of {xtr.shape[1]}")
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
        offsets = None
        if patch is not None and patch < xtr.shape[1]:  # this epoch's crop of every training row
            offsets = torch.randint(0, xtr.shape[1] - patch + 1, (len(xtr),), generator=torch.Generator()
                                    .manual_seed(seed * 2_000_003 + epoch)).numpy()
        t.model.train()
        bar = tqdm(list(_batches(len(xtr), batch_size, order)), desc=f"epoch {epoch + 1}/{epochs}",
                   unit="batch", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        total, seen = 0.0, 0
        for idx in bar:
            rows = idx.numpy()
            xb = xtr[rows] if offsets is None else random_crops(xtr, rows, offsets[rows], patch)
            xb = torch.from_numpy(xb).to(dev, non_blocking=True)
            yb = ytr_t[idx].to(dev, non_blocking=True)
            with autocast(dev, precision):
                loss = loss_fn(t.model.logits(xb).float(), yb)
            t.optimizer.zero_grad(set_to_none=True)
            if t.scheduler is not None and hasattr(t.scheduler, "batch_step"):
                t.scheduler.batch_step()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(t.optimizer)
                scaler.update()
            else:
                loss.backward()
                t.optimizer.step()
            loss_value = loss.item()
            if not np.isfinite(loss_value):
                clips = sorted({str(options.row_ids[int(c)]) if options.row_ids is not None else f"#{int(c)}"
                                for c in ctr[rows]})
                raise NonFinite(f"training loss became {loss_value} at epoch {epoch + 1} on a batch of clips "
                                f"{', '.join(clips[:8])}{' ...' if len(clips) > 8 else ''}; lower the "
                                "learning rate or check those inputs (nothing of this epoch is kept)")
            total += loss_value * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bad = non_finite_state(t.frontend, t.backend) if t.backend is not None else non_finite_state(t.model)
        if bad:
            raise NonFinite(f"after epoch {epoch + 1}, {', '.join(bad[:5])} hold NaN or infinite values "
                            "(weights or batch-norm running statistics); the run stops, best.pt keeps the "
                            "last finite epoch")
        val_loss = _loss_on(t.model, xva, yva, dev, batch_size, ml, precision)
        if not np.isfinite(val_loss):
            raise NonFinite(f"validation loss is {val_loss} at epoch {epoch + 1}; the run stops, best.pt keeps "
                            "the last finite epoch (lower the learning rate or check the validation clips)")
        scores = clip_scores(predict_scores(t.model, xva, dev, batch_size, ml, precision), cva,
                             len(yva_clip))
        name, metric = val_metric(yva_clip, scores, ml)
        action = t.scheduler.step(val_loss) if t.scheduler is not None else "continue"
        if action == "next":  # a new learning-rate stage starts from the best weights, fresh momentum
            _restore_best(t, run_dir)
        elif action == "stop":
            st.update(stopped=True, stop_reason=f"learning rate decreased {t.scheduler.stage} times")
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
            if patience is not None and st["bad_epochs"] >= patience and not st["stopped"]:
                st.update(stopped=True, stop_reason=f"{patience} epochs without a lower val loss")
        ckpt = _state(t, history, epoch + 1, st, scaler)
        if improved:
            save_checkpoint(run_dir / "best.pt", ckpt)
        save_checkpoint(run_dir / "checkpoint.pt", ckpt)  # last: a crash before it repeats the epoch
        _write_history(run_dir / "history.csv", history)
    return history


def _restore_best(t: Trainer, run_dir) -> None:
    best = read_checkpoint(run_dir / "best.pt")
    t.frontend.load_state_dict(best["state_dict"])
    if t.backend is not None:
        t.backend.load_state_dict(best["backend_state_dict"])
    t.optimizer.state.clear()  # momentum buffers start again, as a new optimizer would


def _clip_targets(y: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """One target per clip from per-row targets (rows of a clip share their clip's target)."""
    n = int(clip.max()) + 1
    first = np.full(n, -1)
    first[clip[::-1]] = np.arange(len(clip))[::-1]
    return y[first]
