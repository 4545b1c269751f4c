"""Studies: orchestration commands that sit above ``features`` and ``classifiers``.

``python -m studies.batchnorm`` runs the batch-norm experiment of the study (thesis section 4.4, Fig. 4.5).
"""
