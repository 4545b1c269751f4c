"""Classifier grids on feature sets: SVM and ELM under split / cv-best / nested-cv (no torch here)."""
from .elm import ELMClassifier
from .grids import ELM_GRID, SMALL_ELM_GRID, SMALL_SVM_GRID, SVM_GRID

__all__ = ["ELMClassifier", "SVM_GRID", "ELM_GRID", "SMALL_SVM_GRID", "SMALL_ELM_GRID"]
