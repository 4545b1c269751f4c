"""``python -m studies``: a whole study in one command (see ``studies/study.py`` and ``--help``)."""
from __future__ import annotations

import argparse
import sys

from toolkit.cli import HelpFormatter, interruptible, prog

from studies import judge
from studies.study import LONG_S, Study, run_study


def parse_args(argv=None):
    import architectures
    from classifiers.grids import GRIDS
    from features.extract import HEAR_PREFIX
    from audiodata.decode import CROPS
    from features.settings import add_dataset_arguments
    from toolkit.settings import PADS
    from toolkit.settings import add_device_arguments, add_engine_arguments, add_seed_argument, add_width_argument
    from architectures.custom import add_arguments as add_custom_arguments
    from architectures.custom import is_custom_spec
    from architectures.custom import options_from_args as custom_options_from_args
    from classifiers.grid import CLASSIFIERS, PROTOCOL_CHOICES
    from classifiers.kernels import available_cpus
    names = list(architectures.ARCHITECTURES)
    p = argparse.ArgumentParser(
        prog=prog("python -m studies"),
        description="A whole study in one command: list the dataset once, print an estimate of the time on "
                    "this machine, extract every front-end x seed (decoding each file once), run the SVM/ELM "
                    "grids of each front-end over its seeds, write the report. Rerunning does only what is "
                    "missing. Exits non-zero, with a summary, if any part failed. Writes "
                    "OUT/features, OUT/results, OUT/report; the last line printed is the report folder.",
        formatter_class=HelpFormatter)
    add_dataset_arguments(p)
    p.add_argument("--arch", nargs="+", default=["all"], metavar="NAME",
                   help=f"front-ends: {', '.join(names)}, all, hear:MODULE, your own pkg.module:Class / "
                        "path/to/file.py:factory (docs/own-architecture.md), or space:path/to/space.py "
                        "(every member of its SPACE; examples/space.py)")
    add_seed_argument(p, default=(0, 1, 2), help="random-weight seeds (one run each)")
    add_width_argument(p, "the study's widths: large (~3584 features) or small (~120)")
    add_custom_arguments(p)
    judge.add_arguments(p)  # --proxies, --train (studies/judge.py)
    p.add_argument("--input-seconds", type=float, default=None, help="input length; default the study's ~29 s")
    p.add_argument("--pad", default="repeat", choices=list(PADS), help="how clips shorter than the input are "
                   "filled (as features.extract)")
    p.add_argument("--crop", default="start", choices=list(CROPS),
                   help="how clips longer than the input are read (as features.extract): start (the study's), "
                        "center, or windows (every input-length window, features averaged)")
    p.add_argument("--folds", type=int, default=10, help="folds for datasets without predefined splits")
    p.add_argument("--fold-seed", type=int, default=0, help="shuffling seed of those folds")
    add_device_arguments(p, "arithmetic of the networks (as features.extract): float32 is the study's")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (local) or Ray workers (ray)")
    add_engine_arguments(p, "extraction")
    p.add_argument("--classifier", default="all", choices=[*CLASSIFIERS, "all"], help="grids to run")
    p.add_argument("--protocol", default="auto", choices=list(PROTOCOL_CHOICES),
                   help="auto: split for train/val/test sets, cv-best and nested-cv for folds")
    p.add_argument("--grid", default="study", choices=sorted(GRIDS),
                   help="study: the published grids; small: a few points for smoke tests")
    p.add_argument("--per-layer", action="store_true",
                   help="also score each layer alone and layers 1..k (the report's accuracy-vs-depth curves)")
    p.add_argument("--layers", nargs="+", default=None, help="score only these layers (names or positions)")
    p.add_argument("--jobs", type=int, default=available_cpus(),
                   help=f"threads for the SVM fits and the ELM tasks; default: the {available_cpus()} CPUs this "
                        "process may use")
    p.add_argument("--out", default="runs", help="root of features/, results/ and report/")
    p.add_argument("--cache-dir", default="runs/cache/audio", help="decoded-audio cache ('none' disables)")
    p.add_argument("--verify-audio", default="stamp", choices=["stamp", "content"],
                   help="how a file is known unchanged since its feature sets or decode-cache entry were made "
                        "(features.extract --verify-audio): stamp = size + mtime; content = also its SHA-256")
    p.add_argument("--as-published", action="store_true",
                   help="extract and score as the study's code did where it departs from its text "
                        "(features.extract and classifiers.grid --as-published); the report labels those "
                        "rows 'as published', beside the thesis-text rows of earlier runs")
    p.add_argument("--estimate-only", action="store_true",
                   help=f"print the time estimate and stop (above {LONG_S / 60:.0f} min it suggests a GPU "
                        "or Ray)")
    a = p.parse_args(argv)
    try:  # space:FILE -> every member of its search space
        a.arch = [m for x in a.arch for m in judge.expand_arch(x)]
        a.judge = judge.options_from_args(a)
    except ValueError as e:
        p.error(str(e))
    bad = [x for x in a.arch if x not in names and x != "all" and not x.startswith(HEAR_PREFIX)
           and not is_custom_spec(x)]
    if bad:
        p.error(f"unknown architecture {bad[0]!r}; available: {', '.join(names)}, all, hear:MODULE, "
                "pkg.module:Class or path/to/file.py:factory")
    a.custom = custom_options_from_args(p, a)
    a.settings = Study.parse(p, a, archs=a.arch, seeds=a.seed)
    return a


@interruptible
def main(argv=None) -> int:
    a = parse_args(argv)
    st = a.settings
    try:
        return run_study(st, estimate_only=a.estimate_only)
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # the dataset itself cannot be listed
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
