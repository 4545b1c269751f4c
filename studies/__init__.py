"""Orchestration commands above ``features`` and ``classifiers``: ``python -m studies`` runs a whole study
(decode once, extract, grids, report; ``studies/study.py``)."""
