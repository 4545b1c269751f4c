"""``randomcnn SUBCOMMAND [options]``: every stage of the pipeline behind one console command.

Each subcommand runs the ``main`` of its ``python -m`` form with the same options (``randomcnn extract
--arch vgg`` is ``python -m features.extract --arch vgg``); ``--help`` and usage errors name the
``randomcnn`` form. The ``python -m`` forms stay: they are the interface the documentation and the
study's card use.

Why a console command: ``python -m features.extract`` puts the working folder first on ``sys.path``,
so inside a project of one's own with a ``features/`` or ``report/`` folder, that folder is imported
instead of this package's (``No module named features.extract``). An installed console script puts
its own ``bin/`` folder there instead, so ``randomcnn extract`` works whatever the working folder holds.

SUBCOMMANDS is the one place a new subcommand is added (its module is imported only when it runs).
"""
from __future__ import annotations

import importlib
import sys

from toolkit.cli import as_command, interruptible

__all__ = ["SUBCOMMANDS", "main"]

# name -> (the module whose main(argv) it runs, its `python -m` form, one line for the overview).
SUBCOMMANDS = {
    "extract": ("features.extract", "features.extract",
                "audio -> front-end -> per-layer mean features (a feature set)"),
    "grid": ("classifiers.grid", "classifiers.grid", "the study's SVM / ELM grids on feature sets"),
    "train": ("trained.train", "trained.train", "train a front-end (or SampleCNN), write checkpoints"),
    "report": ("report.build", "report", "the comparison report of results files"),
    "study": ("studies.__main__", "studies", "a whole study: estimate, extract, grids, report"),
    "proxies": ("studies.proxies", "studies.proxies", "zero-cost proxies of front-ends, before any training"),
    "batchnorm": ("studies.batchnorm", "studies.batchnorm", "the study's batch-norm experiment"),
}

PROG = "randomcnn"


def _overview() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text} (python -m {form})"
                     for name, (_, form, text) in SUBCOMMANDS.items())
    return (f"usage: {PROG} SUBCOMMAND [options]   ({PROG} SUBCOMMAND --help for its options)\n\n"
            f"Random-weight audio CNN front-ends, judged by the study's classifiers.\n\n"
            f"subcommands:\n{rows}\n")


@interruptible
def main(argv=None) -> int:
    """Run ``randomcnn SUBCOMMAND ARGS``; returns the exit status of the subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview(), end="")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"{PROG}: unknown subcommand {name!r}; expected one of {', '.join(SUBCOMMANDS)}",
              file=sys.stderr)
        return 2
    run = importlib.import_module(SUBCOMMANDS[name][0]).main
    with as_command(f"{PROG} {name}"):
        try:
            status = run(rest)
        except SystemExit as e:  # argparse's usage errors and --help, and mains that exit themselves
            status = e.code
    if status is None:
        return 0
    if isinstance(status, int):
        return status
    print(status, file=sys.stderr)  # sys.exit("message")
    return 1


if __name__ == "__main__":
    sys.exit(main())
