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
reports for a command killed by Ctrl-C), never a traceback. Ctrl-C while such a command is still
importing (torch, scikit-learn: seconds) gives the same line and status: importing this module from a
command's ``__main__`` (``python -m features.extract`` ...; each command imports it before its heavy
modules) installs a SIGINT handler for the import phase, which ``interruptible`` removes when ``main``
starts (from there the ``KeyboardInterrupt`` unwinds the command). Every command resumes (finished chunks,
results and figures are kept; nothing half-written replaces a finished output).
"""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import functools
import os
import signal
import sys
import threading

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


# the ``python -m`` modules whose ``main`` is wrapped in :func:`interruptible`
COMMANDS = frozenset({"features.extract", "classifiers.grid", "trained.train", "trained.evaluate",
                      "studies", "studies.__main__", "studies.batchnorm", "report.build", "randomcnn",
                      "randomcnn.__main__", "randomcnn.cli"})


def _interrupted_while_importing(signum, frame):
    """SIGINT before the command's ``main`` runs: nothing was written yet; one line, status 130."""
    try:
        sys.stderr.write(INTERRUPTED + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(EXIT_INTERRUPTED)  # no unwinding through half-imported modules (a traceback, or worse)


def _dash_m_module(argv) -> str | None:
    """The module of ``python [options] -m MODULE ...`` (``sys.orig_argv``), or None."""
    args = iter(list(argv)[1:])
    for a in args:
        if a == "-m":
            return next(args, None)
        if a.startswith("-m"):
            return a[2:]
        if a in ("-X", "-W"):  # options with a value
            next(args, None)
        elif a == "-c" or a == "-" or not a.startswith("-"):
            return None
    return None


def _guard_imports() -> None:
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    # while runpy imports the command's package (classifiers/__init__.py ...), __main__ has no spec yet
    name = name or _dash_m_module(getattr(sys, "orig_argv", ()))
    if name not in COMMANDS or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not someone else's handler
        signal.signal(signal.SIGINT, _interrupted_while_importing)


def _imports_done() -> None:
    """The command's ``main`` starts: Ctrl-C raises ``KeyboardInterrupt`` again (the commands' own
    ``finally`` blocks run; :func:`interruptible` turns it into the line)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is _interrupted_while_importing:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_guard_imports()


def interruptible(main):
    """Wrap a command's ``main``: Ctrl-C gives one line on stderr and ``SystemExit(130)``, no traceback.

    The ``KeyboardInterrupt`` unwinds the command first, so its ``finally`` blocks run (progress bars
    closed, decoding threads cancelled, locks released); a second Ctrl-C while the message is printed
    is ignored rather than turned into a traceback.
    """
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        _imports_done()
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
