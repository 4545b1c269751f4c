"""The results comparison report: tables beside the published figures, charts, tests.

``python -m report`` (``report/build.py``) reads every ``results.json`` (``report/load.py``), computes the
statistics (``report/stats.py``), draws the figures (``report/figures.py``) and puts the published numbers
(``report/published.py``) beside ours. It imports no torch.
"""
