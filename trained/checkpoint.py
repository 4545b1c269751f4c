"""Writing training checkpoints (``docs/formats.md`` "Checkpoints").

Reading one back into a model is ``architectures/checkpoint.py`` (a checkpoint is an architecture with
weights); the format's keys (``KEYS``, ``IDENTITY_KEYS``) are defined there.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from architectures.checkpoint import KEYS
from toolkit.provenance import atomic_write_bytes

__all__ = ["save_checkpoint"]


def save_checkpoint(path, ckpt: dict) -> Path:
    """Write ``ckpt`` atomically (temporary file then ``os.replace``): an interruption never leaves
    a half-written checkpoint behind."""
    missing = [k for k in KEYS if k not in ckpt]
    assert not missing, f"checkpoint dict lacks {missing}"
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return atomic_write_bytes(path, buf.getvalue())
