"""What every command line of the toolkit shares (no torch imported here).

``HelpFormatter`` prints each option's default once: argparse's ``ArgumentDefaultsHelpFormatter`` appends
``(default: X)`` to every option, which repeats a default the help text already explains ("default 23 for
samplecnn, else 16") and prints meaningless ``(default: None)`` / ``(default: False)``. Descriptions keep
their line breaks.

The same flag means the same thing, with the same type and choices, in every command:

- ``--dataset`` (choices: the dataset layouts), ``--root``, ``--split-dir``, ``--manifest``: which clips;
- ``--seed N [N ...]``: weight seeds, one run each; ``--fold-seed`` and ``--folds``: the generated folds
  of evaluation (the grid, training), never the weights;
- ``--width {large,small}``, ``--input-seconds``, ``--device``, ``--batch-size``;
- ``--workers``: decoding threads (the Ray engine: Ray workers);
- ``--batchnorm``: extraction's label-leaking study tool (batch statistics); trained batch norm is
  ``--frontend-bn`` / ``--backend-bn {running,none}``;
- ``--out``: where the command writes; ``--cache-dir``: the decoded-audio cache (``none`` disables it).
"""
from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with each default shown once, and descriptions as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS or action.option_strings == []):
            return text
        return super()._get_help_string(action)
