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

Every command's ``main`` is wrapped in :func:`interruptible`: Ctrl-C (SIGINT) prints one line,
``interrupted: rerun the same command to resume``, and exits with status 130 (128 + SIGINT, what a shell
reports for a command killed by Ctrl-C), never a traceback. Every command resumes (finished chunks,
results and figures are kept; nothing half-written replaces a finished output).
"""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import functools
import signal
import sys

__all__ = ["HelpFormatter", "prog", "as_command", "interruptible", "INTERRUPTED", "EXIT_INTERRUPTED"]

INTERRUPTED = "interrupted: rerun the same command to resume"
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what shells report for a command stopped by Ctrl-C

_PROG = contextvars.ContextVar("randomcnn_prog", default=None)


def prog(module_form: str) -> str:
    """The name a command's ``--help`` and usage errors show: ``module_form`` (``python -m X``), or the
    ``randomcnn SUBCOMMAND`` form while the console command runs it (see :func:`as_command`)."""
    return _PROG.get() or module_form


@contextlib.contextmanager
def as_command(name: str):
    """Within the block, parsers built with :func:`prog` are named ``name`` (``randomcnn extract``)."""
    token = _PROG.set(name)
    try:
        yield
    finally:
        _PROG.reset(token)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with each default shown once, and descriptions as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS or action.option_strings == []):
            return text
        return super()._get_help_string(action)


def interruptible(main):
    """Wrap a command's ``main``: Ctrl-C gives one line on stderr and ``SystemExit(130)``, no traceback.

    The ``KeyboardInterrupt`` unwinds the command first, so its ``finally`` blocks run (progress bars
    closed, decoding threads cancelled, locks released); a second Ctrl-C while the message is printed
    is ignored rather than turned into a traceback.
    """
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            except ValueError:  # not the main thread: nothing to ignore there
                pass
            try:
                sys.stderr.write(INTERRUPTED + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # stderr closed or gone: the exit status still says it
                pass
            raise SystemExit(EXIT_INTERRUPTED) from None
    return wrapper
