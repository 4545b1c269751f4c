"""Model summary: each layer's output shape and parameter count, without training.

``python -m trained.train --arch NAME --dry-run`` prints it. Every leaf module that runs (conv, batch
norm, pool, dense, ...) is one row, in execution order, so batch-norm parameters sit on their own lines
and the conv rows show "weights + bias" exactly as Table 1 of Lee et al. 2017 counts them. Shapes are
printed without the batch axis and with channels last (``19683 x 128``), as in the papers' tables.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Row", "summarize", "format_summary"]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


@dataclass
class Row:
    """One executed leaf module: qualified ``name``, class ``kind``, ``shape`` (no batch axis, channels
    last) and its own ``params``."""
    name: str
    kind: str
    shape: tuple
    params: int


def _channels_last(shape: torch.Size) -> tuple:
    s = tuple(int(v) for v in shape[1:])
    return s[1:] + s[:1] if len(s) >= 2 else s


@torch.no_grad()
def summarize(model: nn.Module, x: torch.Tensor, call: str = "logits") -> list[Row]:
    """Run ``model.<call>(x)`` once in eval mode and record every leaf module that ran.

    Parameters
    ----------
    model : nn.Module
    x : Tensor
        An example input batch, e.g. ``(1, 59049)`` for SampleCNN.
    call : str
        Method to run (``logits`` for a classifier, ``forward`` for a bare front-end).

    Returns
    -------
    list of Row
        In execution order; a module called twice appears twice with its parameters counted once.
    """
    rows, seen, hooks = [], set(), []
    names = {m: n for n, m in model.named_modules()}

    def hook(mod, _inp, out):
        if isinstance(out, (tuple, list)):
            out = out[0]
        params = 0 if mod in seen else sum(p.numel() for p in mod.parameters(recurse=False))
        seen.add(mod)
        rows.append(Row(names[mod], type(mod).__name__, _channels_last(out.shape), params))

    for m in model.modules():
        if not list(m.children()) and not isinstance(m, nn.Identity):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        getattr(model, call)(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_summary(rows: list[Row], model: nn.Module, title: str = "") -> str:
    """A fixed-width table of ``rows`` followed by the totals.

    The totals give all parameters, the batch-norm ones, and the rest ("conv / dense weights and
    biases", the figure of Table 1 of Lee et al. 2017).
    """
    total = sum(p.numel() for p in model.parameters())
    norm = sum(p.numel() for m in model.modules() if isinstance(m, _NORMS)
               for p in m.parameters(recurse=False))
    w = max([len(r.name) for r in rows] + [5])
    lines = [title] if title else []
    lines.append(f"{'layer':<{w}}  {'type':<12}  {'output (time x ch)':>20}  {'params':>11}")
    lines.append("-" * len(lines[-1]))
    for r in rows:
        shape = " x ".join(str(v) for v in r.shape)
        lines.append(f"{r.name:<{w}}  {r.kind:<12}  {shape:>20}  {r.params:>11,}")
    lines.append("-" * len(lines[-2 if title else 0]))
    lines.append(f"total parameters: {total:,} (conv / dense weights and biases {total - norm:,}, "
                 f"batch norm {norm:,}); trainable: "
                 f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}")
    return "\n".join(lines)
