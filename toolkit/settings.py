"""The settings objects' shared part: the command-line vocabulary, value checks, identity and records.

Every stage (extraction, grid, training, study, batch-norm study, report) has one frozen dataclass of
its settings, next to the stage (``features/settings.py``, ``classifiers/settings.py``,
``trained/settings.py``, ``studies/settings.py``, ``report/settings.py``), in the manner of whisper's
``DecodingOptions`` and scikit-learn's parameter constraints. Each one

- builds its own command-line section (``add_arguments(parser)``) from the tables below, so a flag has
  the same name, type, choices and meaning in every tool, and is made from the parsed namespace
  (``from_args``);
- validates itself when made (``__post_init__``): a bad value raises :class:`SettingsError`, one message
  naming the flag, the value and what is allowed; the CLIs print it as a usage error (exit 2);
- is the library function's single settings argument; a variant is a copy with fields changed
  (``settings.replace(seed=1)``, ``dataclasses.replace``), never a re-listed set of arguments;
- gives its identity (the fields that change numbers; ``RECORD_ONLY`` lists those that do not) and is
  written verbatim as the run record (``record()``).

No torch is imported here (``classifiers/`` builds on this module).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import numbers
import re
from typing import ClassVar

__all__ = ["WIDTHS", "ENGINES", "PRECISIONS", "TRAIN_PRECISIONS", "PADS", "DEVICE_HELP", "MAX_SEED", "SettingsError", "Settings",
           "check_int", "check_float", "check_choice", "check_seed", "check_seeds", "seeds_arg", "folder_name",
           "add_seed_argument", "add_width_argument", "add_device_arguments", "add_engine_arguments",
           "stable_key", "positive_int_arg"]

# ----------------------------------------------------------------------------- the vocabulary

WIDTHS = ("large", "small")           # the study's ~3584 features / ~120
ENGINES = ("local", "ray")            # where the work runs: this process, or Ray workers (--engine)
PRECISIONS = ("float32", "tf32", "bf16")  # toolkit/device.py says what each means
TRAIN_PRECISIONS = (*PRECISIONS, "fp16")  # training: bf16 / fp16 are autocast mixed precision
PADS = ("repeat", "zero")             # how clips shorter than the input are filled
DEVICE_HELP = "auto (CUDA when torch sees a GPU, else the CPU), cpu or cuda[:N]"
MAX_SEED = 2**32 - 1                  # every seed goes to numpy and torch generators (and seed * 2e6 + epoch)
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class SettingsError(ValueError):
    """A setting with a value it cannot have: ``flag``, ``value`` and what is ``allowed``."""

    def __init__(self, flag: str, value, allowed: str):
        self.flag, self.value, self.allowed = flag, value, allowed
        super().__init__(f"{flag} {_show(value)}: expected {allowed}")


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------- value checks

def check_int(flag: str, value, low: int | None = None, high: int | None = None, optional: bool = False):
    """``value`` as an int within ``[low, high]`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    what = "an integer" + (f" >= {low}" if low is not None and high is None else "") + \
        (f" from {low} to {high}" if low is not None and high is not None else "") + \
        (" (or unset)" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingsError(flag, value, what)
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise SettingsError(flag, value, what)
    return v


def check_float(flag: str, value, low: float | None = None, above: float | None = None,
                optional: bool = False):
    """``value`` as a finite float, ``>= low`` or ``> above`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    what = "a finite number" + (f" >= {low:g}" if low is not None else "") + \
        (f" > {above:g}" if above is not None else "") + (" (or unset)" if optional else "")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SettingsError(flag, value, what) from None
    if isinstance(value, bool) or not math.isfinite(v) or (low is not None and v < low) or \
            (above is not None and v <= above):
        raise SettingsError(flag, value, what)
    return v


def check_choice(flag: str, value, choices, optional: bool = False):
    """``value`` if it is one of ``choices``."""
    if value is None and optional:
        return None
    if value not in tuple(choices):
        raise SettingsError(flag, value, "one of " + ", ".join(map(str, choices)))
    return value


def check_seed(flag: str, value) -> int:
    return check_int(flag, value, 0, MAX_SEED)


def check_seeds(flag: str, values) -> tuple:
    """A non-empty tuple of distinct seeds (a seed given twice would be the same run twice)."""
    values = tuple(values if isinstance(values, (list, tuple)) else [values])
    if not values:
        raise SettingsError(flag, "(none)", "at least one seed")
    out = tuple(check_seed(flag, v) for v in values)
    twice = sorted({s for s in out if out.count(s) > 1})
    if twice:
        raise SettingsError(flag, list(values), f"distinct seeds (seed {twice[0]} is given twice: one run each)")
    return out


def check_device(flag: str, value) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise SettingsError(flag, value, DEVICE_HELP)
    return value


# ----------------------------------------------------------------------------- the command-line pieces

def seeds_arg(text: str) -> list:
    """argparse ``type`` of one ``--seed`` word: ``0``, ``0,1,2`` (with ``nargs="+"``: ``0 1 2`` too)."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an integer seed") from None
        if not 0 <= v <= MAX_SEED:
            raise argparse.ArgumentTypeError(f"seed {v} is outside 0..{MAX_SEED} (2**32 - 1)")
        out.append(v)
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} holds no seed")
    return out


class _Seeds(argparse.Action):
    """``--seed 0 1``, ``--seed 0,1`` and ``--seed 0,1 2`` all give ``[0, 1, 2]``."""

    def __call__(self, parser, namespace, values, option_string=None):
        flat = [v for group in values for v in group]
        twice = sorted({s for s in flat if flat.count(s) > 1})
        if twice:
            parser.error(f"argument {option_string}: seed {twice[0]} is given twice (one run per seed)")
        setattr(namespace, self.dest, flat)


def positive_int_arg(text: str) -> int:
    """argparse ``type``: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v}: expected an integer >= 1")
    return v


def add_seed_argument(p, default=(0,), help="random-weight seed(s), one run each"):
    p.add_argument("--seed", nargs="+", type=seeds_arg, action=_Seeds, default=list(default), metavar="N",
                   help=f"{help}; '0 1 2' or '0,1,2' (integers 0..2**32-1)")


def add_width_argument(p, help="large: the study's ~3584 features; small: ~120"):
    p.add_argument("--width", default="large", choices=list(WIDTHS), help=help)


def add_device_arguments(p, precision_help=None):
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    if precision_help is not None:
        p.add_argument("--precision", default="float32", choices=list(PRECISIONS), help=precision_help)


def add_engine_arguments(p, what="the work"):
    p.add_argument("--engine", default="local", choices=list(ENGINES),
                   help=f"local: {what} in this process; ray: on Ray workers (pip install '.[ray]')")
    p.add_argument("--address", default=None,
                   help="--engine ray: an existing Ray cluster (host:port, ray://host:10001 or auto); "
                        "default: a local Ray instance")


# ----------------------------------------------------------------------------- names and keys

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def folder_name(name, empty: str = "unnamed") -> str:
    """A name made safe for a folder: runs of anything but letters, digits and ``._+=-`` become ``-``, no
    leading dot (``timbral+temporal`` stays as it is; ``my_pkg.mod:Net`` becomes ``my_pkg.mod-Net``). The
    one sanitiser of feature-set, results and training folders."""
    return _UNSAFE.sub("-", str(name)).lstrip(".-").rstrip("-") or empty


def stable_key(obj, length: int | None = None) -> str:
    """SHA-256 hex digest of ``obj`` as sorted-key JSON (the one way a settings dict becomes a key)."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return digest[:length] if length else digest


# ----------------------------------------------------------------------------- the base

class Settings:
    """Mix-in of the frozen settings dataclasses (see the module docstring).

    Subclasses are ``@dataclass(frozen=True)``, define ``validate()`` (checks, and normalised values
    set with ``self._set``), and list in ``RECORD_ONLY`` the fields that change no number.
    """
    RECORD_ONLY: ClassVar[tuple] = ()

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:  # pragma: no cover - every stage defines its own
        pass

    def _set(self, name, value) -> None:
        object.__setattr__(self, name, value)

    def replace(self, **changes):
        """A copy with ``changes`` (validated like any new settings)."""
        return dataclasses.replace(self, **changes)

    def record(self) -> dict:
        """Every field, as JSON types: the run record's ``config``."""
        from toolkit.provenance import to_jsonable
        return to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def identity(self) -> dict:
        """The fields that change numbers."""
        return {k: v for k, v in self.record().items() if k not in self.RECORD_ONLY}

    def key(self, length: int | None = 16) -> str:
        return stable_key(self.identity(), length)

    @classmethod
    def from_args(cls, args, **extra):
        """Settings from an argparse namespace (fields of the same name) plus ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in vars(args).items() if k in names}
        values.update(extra)
        return cls(**values)

    @classmethod
    def parse(cls, parser, args, **extra):
        """``from_args``, with a bad value reported as the parser's usage error (exit 2, no traceback)."""
        try:
            return cls.from_args(args, **extra)
        except SettingsError as e:
            parser.error(str(e))
