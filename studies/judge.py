"""The study's "judge the judge" steps: ``python -m studies --proxies`` and ``--train``, and search spaces.

- ``--proxies``: after extraction, the zero-cost proxies of every front-end of the study for each seed
  (``studies/proxies.py``) into ``OUT/proxies/<dataset>/``;
- ``--train``: after the grids, every trainable front-end of the study is trained for each seed with the
  study's recipe (``trained.train``: Pons et al. 2018's back-end; the study's own front-ends with
  running batch norm, your own modules with their own layers) into ``OUT/trained/``, and its test clips
  predicted into ``OUT/results/<dataset>/<arch>_<width>_end-to-end/`` (one results file with a run per
  seed). The MFCC baseline and HEAR modules are not trained (listed as skipped).
- ``--arch space:path/to/space.py``: every member of a search space, ``path/to/space.py:<name>`` for
  each name of the module's ``SPACE`` (``examples/space.py``).

The report then holds the correlation section (``report/judge.py``). Training time is estimated before
anything runs: 3 x the forward GFLOP per clip (forward and backward) x training clips x epochs x seeds
over the measured rate, a lower bound (the back-end and data loading come on top).
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JudgeOptions", "SPACE_PREFIX", "expand_arch", "add_arguments", "options_from_args",
           "train_estimate", "run_judge_steps", "report_paths"]

SPACE_PREFIX = "space:"


@dataclass(frozen=True)
class JudgeOptions:
    """What the judge steps do (``python -m studies --help``)."""
    proxies: bool = False
    proxy_list: tuple = ()
    proxy_batch: int = 64
    train: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None

    def __post_init__(self):
        from studies.proxies import PROXIES
        if int(self.proxy_batch) < 2:
            raise ValueError(f"--proxy-batch must be at least 2, found {self.proxy_batch}")
        for name, v in (("--train-epochs", self.epochs), ("--train-batch-size", self.batch_size),
                        ("--train-patience", self.patience)):
            if v is not None and int(v) < 1:
                raise ValueError(f"{name} must be at least 1, found {v}")
        bad = [p for p in self.proxy_list if p not in PROXIES]
        if bad:
            raise ValueError(f"unknown proxy {bad[0]!r}; available: {', '.join(PROXIES)}")


def expand_arch(arch: str) -> list[str]:
    """``space:FILE`` -> ``FILE:<name>`` for each name of FILE's ``SPACE``; anything else as it is."""
    if not arch.startswith(SPACE_PREFIX):
        return [arch]
    path = Path(arch[len(SPACE_PREFIX):])
    if not path.is_file():
        raise ValueError(f"--arch {arch}: {path} is not a file (expected space:path/to/space.py)")
    spec = importlib.util.spec_from_file_location(f"_randomcnn_space_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(f"--arch {arch}: importing {path} failed: {type(e).__name__}: {e}") from e
    names = list(getattr(module, "SPACE", None) or [])
    if not names:
        raise ValueError(f"--arch {arch}: {path} defines no SPACE (a dict or list of the names of its factories)")
    missing = [n for n in names if not callable(getattr(module, n, None))]
    if missing:
        raise ValueError(f"--arch {arch}: SPACE names {missing[:3]} but {path} defines no such factory")
    return [f"{path}:{n}" for n in names]


def add_arguments(p) -> None:
    """The study's ``--proxies``, ``--proxy-batch``, ``--proxy-list``, ``--train`` and ``--train-*`` flags."""
    from studies.proxies import PROXIES
    p.add_argument("--proxies", action="store_true",
                   help="also compute the zero-cost proxies of every front-end and seed (studies.proxies) "
                        "into OUT/proxies/")
    p.add_argument("--proxy-batch", type=int, default=64, help="--proxies: training clips in their one batch")
    p.add_argument("--proxy-list", nargs="+", default=list(PROXIES), choices=list(PROXIES), metavar="PROXY",
                   help=f"--proxies: which ({', '.join(PROXIES)})")
    p.add_argument("--train", action="store_true",
                   help="also train every front-end for each seed with the study's recipe (trained.train, "
                        "the Pons et al. 2018 back-end) and score it: the report then says how well each "
                        "judgement predicts trained accuracy")
    p.add_argument("--train-epochs", type=int, default=None, help="--train: maximum epochs (trained.train's default: 30)")
    p.add_argument("--train-batch-size", type=int, default=None, help="--train: batch size (default 16)")
    p.add_argument("--train-patience", type=int, default=None, help="--train: early-stopping patience (default 10)")


def options_from_args(a) -> JudgeOptions | None:
    if not (a.proxies or a.train):
        return None
    return JudgeOptions(proxies=a.proxies, proxy_list=tuple(a.proxy_list), proxy_batch=a.proxy_batch,
                        train=a.train, epochs=a.train_epochs, batch_size=a.train_batch_size,
                        patience=a.train_patience)


def _trainable(arch: str) -> str | None:
    """Why ``arch`` is not trained, or None."""
    from architectures.custom import is_custom_spec
    from features.extract import HEAR_PREFIX
    if arch.startswith(HEAR_PREFIX):
        return "a HEAR module brings its own weights"
    if arch == "mfcc":
        return "the MFCC baseline has no weights"
    if not is_custom_spec(arch):
        import architectures
        if arch not in architectures.FRONTENDS:
            return "unknown"
    return None


def report_paths(st, ds) -> list[str]:
    """Besides the results: the study's proxies folder of this dataset, when there is one."""
    folder = Path(st.out) / "proxies" / ds.name
    return [str(folder)] if folder.is_dir() else []


def _train_gflop(arch: str, st, n_classes: int) -> float | None:
    """Forward GFLOP of one training clip through ``arch`` and the study's back-end (convs and dense
    layers; shapes from a copy on PyTorch's meta device), or None when it cannot be measured."""
    import copy
    import math

    import torch
    from architectures import cost
    from features.extract import build_frontend, input_spec
    from trained.loop import patch_lengths
    try:
        model = build_frontend(arch, width=st.width, seed=0, custom=st.custom)
        spec = input_spec(model, st.input_seconds)
        patch = patch_lengths(model.input_kind, st.input_seconds, 15.0)  # trained.train's default patches
        length = patch[0] if patch else spec.length
        shape = (length,) if model.input_kind == "waveform" else (length, 96)
        front = cost.flops_per_clip(model, shape)
        shadow = copy.deepcopy(model).to("meta")
        if hasattr(shadow, "fast"):
            shadow.fast = False
        from architectures.backend import frontend_output
        with torch.no_grad():
            _, c, t = frontend_output(shadow, torch.zeros((1, *shape), device="meta")).shape
    except Exception:  # a module that cannot run on the meta device: unknown
        return None
    f = 512  # PonsBackend: three 7-tap convs of 512 filters (the second and third 512 -> 512), two dense
    back = 2 * 7 * (t * c * f + t * f * f + math.ceil(t / 2) * f * f) + 2 * (2 * f * 500 + 500 * n_classes)
    return (front + back) / 1e9


def train_estimate(st, archs: list, rate_gflops: float, ds, fmt=lambda s: f"{s:.0f} s") -> str | None:
    """One line: the training time, a lower bound (see the module docstring); ``fmt`` formats seconds
    (the study's ``_fmt_s``)."""
    j = st.judge
    if j is None or not j.train:
        return None
    epochs, n_train = j.epochs or 30, _n_train(ds)
    todo = [a for a in archs if _trainable(a) is None]
    costs = {a: _train_gflop(a, st, len(ds.classes)) for a in todo}
    known = [g for g in costs.values() if g is not None]
    unknown = [a for a, g in costs.items() if g is None]
    gflop = 3 * sum(known) * n_train * epochs * len(st.seeds)
    return (f"training estimate: at least {fmt(gflop / rate_gflops)} ({len(todo)} front-end(s) x "
            f"{len(st.seeds)} seed(s) x {epochs} epoch(s) x {n_train} training clips, 3 x the forward GFLOP of "
            "front-end and back-end at the measured rate; validation and data loading come on top, early "
            "stopping may end sooner)" + (f"; cost unknown for {', '.join(unknown)}" if unknown else ""))


def _n_train(ds) -> int:
    if any(c.split is not None for c in ds.clips):
        return sum(c.split == "train" for c in ds.clips)
    return len(ds.clips)


def _current_eval(path: Path, roots: list) -> bool:
    """Whether ``path`` scores exactly these run folders and is newer than each of their ``best.pt``."""
    import json
    try:
        data = json.loads(path.read_text())
        best = [q.stat().st_mtime for r in roots for q in Path(r).glob("*/best.pt")]
        return data.get("features") == [str(r) for r in roots] and bool(best) and \
            path.stat().st_mtime >= max(best)
    except (OSError, ValueError):
        return False


def run_judge_steps(st, ds, archs: list, log) -> tuple[list, bool]:
    """The proxies and the training runs of the study; returns ``(failures, anything_written)``."""
    j = st.judge
    failed, changed = [], False
    if j is None:
        return failed, changed
    if j.proxies:
        from studies.proxies import ProxySettings, run_proxies
        ps = ProxySettings(dataset=st.dataset, root=st.root, split_dir=st.split_dir, manifest=st.manifest,
                           width=st.width, seeds=tuple(st.seeds), proxies=j.proxy_list or ProxySettings.proxies,
                           batch=j.proxy_batch, input_seconds=st.input_seconds, folds=st.folds,
                           fold_seed=st.fold_seed, custom=st.custom, workers=st.workers, cache_dir=st.cache_dir,
                           out=str(Path(st.out) / "proxies"))
        for arch in archs:
            t0 = time.time()
            try:
                path = run_proxies(arch, ps, ds=ds, log=lambda m: None)
            except Exception as e:  # one front-end failing never stops the others
                failed.append(f"proxies {arch}: {type(e).__name__}: {e}")
                log(f"proxies {arch} failed: {e}")
                continue
            new = path.stat().st_mtime >= t0
            changed |= new
            log(f"{arch}: proxies {'done' if new else 'current, kept'} ({path})")
    if j.train:
        from architectures.custom import is_custom_spec
        from trained.evaluate import evaluate
        from trained.train import train
        for arch in archs:
            why = _trainable(arch)
            if why:
                log(f"{arch}: not trained ({why})")
                continue
            roots, t0 = [], time.time()
            for seed in st.seeds:
                try:
                    roots.append(train(arch, dataset=st.dataset, root=st.root, split_dir=st.split_dir,
                                       manifest=st.manifest, folds=st.folds, fold_seed=st.fold_seed,
                                       width=st.width, seed=seed, epochs=j.epochs, batch_size=j.batch_size,
                                       patience=j.patience, input_seconds=st.input_seconds,
                                       frontend_bn="none" if is_custom_spec(arch) else "running",
                                       device=st.device, workers=st.workers, cache_dir=st.cache_dir,
                                       out=Path(st.out) / "trained", evaluate=False, progress=False,
                                       custom=st.custom if is_custom_spec(arch) else None))
                except Exception as e:
                    failed.append(f"train {arch} seed {seed}: {type(e).__name__}: {e}")
                    log(f"train {arch} seed {seed} failed: {e}")
            if not roots:
                continue
            done = Path(st.results_dir) / ds.name / f"{Path(roots[0]).name.rsplit('_seed', 1)[0]}_end-to-end" / "results.json"
            if _current_eval(done, roots):
                log(f"{arch}: trained results current, kept ({done})")
                continue
            try:
                path = evaluate(roots, out=st.results_dir, device=st.device, progress=False)
            except Exception as e:
                failed.append(f"evaluate trained {arch}: {type(e).__name__}: {e}")
                log(f"evaluate trained {arch} failed: {e}")
                continue
            changed = True
            log(f"{arch}: trained and scored, {len(roots)} seed(s), {time.time() - t0:.0f} s ({path})")
    return failed, changed
