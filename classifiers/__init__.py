"""Classifier grids on feature sets: SVM and ELM under split / cv-best / nested-cv (no torch here)."""
from toolkit import cli as _cli  # noqa: F401  first: Ctrl-C while importing is one line (toolkit/cli.py)
from .elm import ELMClassifier
from .grids import ELM_GRID, SMALL_ELM_GRID, SMALL_SVM_GRID, SVM_GRID

__all__ = ["ELMClassifier", "SVM_GRID", "ELM_GRID", "SMALL_SVM_GRID", "SMALL_ELM_GRID"]
