"""Orchestration commands that sit above ``features`` and ``classifiers``.

- ``python -m studies`` runs a whole study: decode once, extract, grids, report (``studies/study.py``).
- ``python -m studies.batchnorm`` runs the study's batch-norm experiment (thesis section 4.4, Fig. 4.5).
"""
