"""What the shipped front-ends share: their common constructor arguments, stored once, and ``dims``."""
from __future__ import annotations

from torch import nn

__all__ = ["StudyFrontEnd"]


class StudyFrontEnd(nn.Module):
    """Base of the shipped front-ends.

    Every one takes a size keyword (``SIZE``: ``filters`` or ``n``), ``seed``, ``batchnorm`` (False; True:
    batch statistics, the study's leak experiment; ``"running"``: trained batch norm with running
    statistics, see ``layers.norm_layer``) and ``fast`` (the measured fast path, where one pays), and
    ``dims`` returns them, plus the keywords named in ``EXTRA_DIMS``, so that ``cls(**model.dims)``
    rebuilds the model (checkpoints rely on it).
    """
    SIZE = "filters"
    EXTRA_DIMS: tuple = ()

    def store_common(self, size, seed: int, batchnorm, fast: bool) -> None:
        """Keep the common constructor arguments (call first in ``__init__``, after ``super().__init__()``)."""
        setattr(self, self.SIZE, int(size))
        self.seed, self.fast = seed, bool(fast)
        self.batchnorm = batchnorm if batchnorm in ("running", "running-post") else bool(batchnorm)

    @property
    def dims(self) -> dict:
        extra = {k: list(v) if isinstance(v, tuple) else v for k in self.EXTRA_DIMS for v in [getattr(self, k)]}
        return {self.SIZE: getattr(self, self.SIZE), "seed": self.seed, "batchnorm": self.batchnorm,
                "fast": self.fast, **extra}
