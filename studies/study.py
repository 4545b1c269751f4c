"""One command for a whole study: a dataset, front-ends (ours and yours), seeds, a width -> report.

``python -m studies --dataset gtzan --root /data/GTZAN --arch vgg my_pkg.mod:Net --seed 0 1 2 --width small``

1. lists the dataset once (every front-end and seed reads the same clips; decoded audio is cached, so
   each file is decoded once);
2. prints an estimate of the extraction time on this machine: each front-end's GFLOP per clip
   (``architectures/cost.py``) x the clips still to extract x seeds, over this machine's conv rate
   measured for about half a second, plus decoding; when it is long it suggests ``--device cuda`` or
   the Ray engine;
3. extracts every (front-end, seed) feature set (``features.extract.extract``), then runs the grids of
   each front-end over its seeds (``classifiers.grid.run_grid``), then writes the report
   (``report.build.render_report``).

Every step is resumable: a finished feature set with the same configuration is kept (an interrupted one
resumes from its chunks), a results file whose feature sets and grid settings are unchanged is kept,
and the report is rewritten only when a results file changed or it is missing. A failure in one part
is reported and the rest goes on; the command ends with a summary and exits non-zero if any part failed.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from classifiers.grid import GridSettings
from features.settings import ExtractSettings, cache_dir_arg
from toolkit.settings import Settings, SettingsError, check_seeds

__all__ = ["Study", "run_study", "estimate", "measure_rate", "LONG_S"]

LONG_S = 600.0  # an estimate above this suggests a GPU or the Ray engine


@dataclass(frozen=True)
class Study(Settings):
    """What a study is made of (``python -m studies --help`` explains each field). Frozen and checked
    when made (``toolkit/settings.py``); each part's settings derive from it: ``extract_settings()``
    (one copy per front-end and seed) and ``grid_settings()`` (one copy per front-end)."""
    dataset: str = "synthetic"
    archs: tuple = ("all",)
    seeds: tuple = (0,)
    width: str = "large"
    root: str | None = None
    split_dir: str | None = None
    manifest: str | None = None
    folds: int = 10
    fold_seed: int = 0
    input_seconds: float | None = None
    custom: dict | None = None
    device: str = "auto"
    precision: str = "float32"
    batch_size: int = 8
    workers: int = 2
    engine: str = "local"
    address: str | None = None
    classifier: str = "all"
    protocol: str = "auto"
    grid: str = "study"
    per_layer: bool = False
    layers: tuple | None = None
    jobs: int = 1
    out: str = "runs"
    cache_dir: str | None = "runs/cache/audio"
    as_published: bool = False  # extraction and grids as the study's code computed them (docs/fidelity.md)

    RECORD_ONLY = ("workers", "engine", "address", "jobs", "out", "cache_dir")

    def validate(self) -> None:
        archs = (self.archs,) if isinstance(self.archs, str) else tuple(self.archs)
        if not archs:
            raise SettingsError("--arch", "(none)", "at least one front-end, or all")
        self._set("archs", archs)
        self._set("seeds", check_seeds("--seed", self.seeds))
        self._set("cache_dir", cache_dir_arg(self.cache_dir))
        if self.layers is not None:
            self._set("layers", tuple(str(x) for x in self.layers))
        self.extract_settings()  # every value extraction and the grid take is checked now, once
        self.grid_settings()

    def extract_settings(self) -> ExtractSettings:
        """The extraction settings of every part (``replace(arch=..., seed=...)`` gives each one)."""
        return ExtractSettings(arch=self.archs[0], dataset=self.dataset, root=self.root, split_dir=self.split_dir,
                               manifest=self.manifest, width=self.width, input_seconds=self.input_seconds,
                               seed=self.seeds[0], custom=self.custom, device=self.device, precision=self.precision,
                               batch_size=self.batch_size, workers=self.workers, engine=self.engine,
                               address=self.address, out=self.feature_dir, cache_dir=self.cache_dir,
                               as_published=self.as_published)

    def grid_settings(self) -> GridSettings:
        """The grid settings of every front-end (``replace(features=...)`` gives each one). The study's
        extraction engine is not the grid's: the grids run in this process."""
        return GridSettings(classifier=self.classifier, protocol=self.protocol, grid=self.grid, jobs=self.jobs,
                            per_layer=self.per_layer, layers=self.layers, folds=self.folds,
                            fold_seed=self.fold_seed, as_published=self.as_published)

    @property
    def feature_dir(self) -> Path:
        return Path(self.out) / "features"

    @property
    def results_dir(self) -> Path:
        return Path(self.out) / "results"

    @property
    def report_dir(self) -> Path:
        return Path(self.out) / "report"

    def expanded_archs(self) -> list:
        import architectures
        out = []
        for a in self.archs:
            out += list(architectures.ARCHITECTURES) if a == "all" else [a]
        return list(dict.fromkeys(out))


def measure_rate(device: torch.device, seconds: float = 0.5) -> float:
    """This machine's conv throughput in GFLOP/s: a 3x3, 32 -> 32 channel conv on a 128 x 96 map,
    repeated for about ``seconds`` (the kind of layer most front-ends spend their time in)."""
    conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(device).eval()
    x = torch.randn(4, 32, 128, 96, device=device)
    flop = 2 * 32 * 9 * 32 * 128 * 96 * 4
    n, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        conv(x)  # warm-up (allocator, kernel choice)
        t0 = time.perf_counter()
        while True:
            conv(x)
            n += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            if time.perf_counter() - t0 >= seconds:
                break
    return n * flop / (time.perf_counter() - t0) / 1e9


def estimate(plans: list, rate_gflops: float, decode_s_per_clip: float) -> dict:
    """Seconds the extraction will take: ``sum(GFLOP/clip x clips to do) / rate`` plus decoding of
    the clips no earlier run decoded.

    Parameters
    ----------
    plans : list of dict
        ``{"arch", "seed", "gflop_per_clip", "clips_todo"}`` per feature set.
    rate_gflops : float
        Measured GFLOP/s (:func:`measure_rate`).
    decode_s_per_clip : float
        Measured seconds to decode one clip, times the clips not yet in the cache (first plan only).

    Returns
    -------
    dict
        ``network_s``, ``decode_s``, ``total_s``, ``gflop`` and per arch ``{arch: seconds}``.
    """
    per_arch, gflop = {}, 0.0
    for p in plans:
        g = (p["gflop_per_clip"] or 0.0) * p["clips_todo"]
        gflop += g
        per_arch[p["arch"]] = per_arch.get(p["arch"], 0.0) + g / rate_gflops
    network = gflop / rate_gflops
    return {"network_s": network, "decode_s": decode_s_per_clip, "total_s": network + decode_s_per_clip,
            "gflop": gflop, "per_arch": per_arch}


def _fmt_s(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _plan_all(st: Study, ds, jobs, log):
    """``features.extract.plan`` of every job: the clips still to do and the model's GFLOP per clip."""
    from architectures import cost
    from audiodata import audio
    from features import store
    from features.extract import ExtractionError, plan
    from features.extract import resolve_run_device
    base = st.extract_settings()
    dev = resolve_run_device(base.device, base.engine, base.address)  # the one rule, as extraction's
    plans, failed = [], []
    for arch, seed in jobs:
        try:
            run = plan(base.replace(arch=arch, seed=seed), dev, ds=ds)
        except (ExtractionError, ValueError, RuntimeError) as e:
            failed.append((arch, seed, str(e)))
            log(f"  {arch} seed {seed}: cannot be built: {e}")
            continue
        if store.verified(run.folder, run.key, progress=False):  # done, and its bytes check out
            plans.append({"arch": arch, "seed": seed, "gflop_per_clip": 0.0, "clips_todo": 0, "done": True})
            continue
        spec = run.spec
        shape = (spec.length,) if spec.kind == "waveform" else (spec.length, audio.N_MELS)
        try:
            g = None if getattr(run.model, "opaque_cost", False) else cost.flops_per_clip(run.model, shape) / 1e9
        except Exception:  # a module that cannot run on the meta device: cost unknown
            g = None
        todo = len(run.ds.clips)  # at most: finished chunks of an interrupted run are read only under its lock
        plans.append({"arch": arch, "seed": seed, "gflop_per_clip": g, "clips_todo": todo, "done": False,
                      "name": run.arch})
        del run
    return plans, failed, dev


def _decode_rate(ds, st: Study, n: int = 3) -> tuple[float, int]:
    """Seconds per clip to decode (measured on up to ``n`` clips not yet cached) and the clips not cached."""
    from audiodata import decode
    if st.cache_dir is None:
        return 0.05, len(ds.clips)
    todo = [c for c in ds.clips if not (Path(st.cache_dir) / (k := decode.cache_key(c.path))[:2] /
                                        f"{k}.npy").exists()]
    if not todo:
        return 0.0, 0
    try:  # the first decode pays for imports and the resampler's set-up: not timed
        decode.decode_cached(todo[0].path, st.cache_dir)
    except Exception:
        pass
    todo = todo[1:]
    if not todo:
        return 0.0, 0
    t0, done = time.perf_counter(), 0
    for c in todo[:n]:
        try:
            decode.decode_cached(c.path, st.cache_dir)
        except Exception:
            pass
        done += 1
    return (time.perf_counter() - t0) / max(done, 1), len(todo) - done


def run_study(st: Study, estimate_only: bool = False, log=None) -> int:
    """Run (or resume) a study; returns the exit status (0: every part succeeded)."""
    from classifiers.grid import run_grid
    from report.build import render_report, report_is_current
    from audiodata import datasets
    from features.extract import extract
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    archs = st.expanded_archs()
    ds = datasets.load_dataset(st.dataset, root=st.root, split_dir=st.split_dir, manifest=st.manifest,
                               folds=None)  # features never depend on folds: the grids make them
    jobs = [(a, s) for a in archs for s in st.seeds]
    log(f"study: {ds.name}, {len(ds.clips)} clips, {len(archs)} front-end(s) x {len(st.seeds)} seed(s), "
        f"width {st.width}; output under {st.out}/")

    plans, failed_build, dev = _plan_all(st, ds, jobs, log)
    dec_per_clip, undecoded = _decode_rate(ds, st)
    rate = measure_rate(dev)
    est = estimate(plans, rate, dec_per_clip * undecoded / max(st.workers, 1))
    done = sum(p["done"] for p in plans)
    unknown = sorted({p["arch"] for p in plans if p["gflop_per_clip"] is None and not p["done"]})
    log(f"estimate: {_fmt_s(est['total_s'])} of extraction on {dev.type} ({est['gflop']:.3g} GFLOP at a "
        f"measured {rate:.0f} GFLOP/s, decoding {undecoded} clips at {dec_per_clip:.2f} s each over "
        f"{max(st.workers, 1)} worker(s)); {done} of {len(jobs)} feature sets already done; grids and report "
        "come on top" + (f"; cost unknown for {', '.join(unknown)}" if unknown else ""))
    for arch, s in sorted(est["per_arch"].items(), key=lambda kv: -kv[1])[:5]:
        if s > 1:
            log(f"  {arch}: about {_fmt_s(s)}")
    if est["total_s"] > LONG_S:
        hint = "--device cuda (a GPU is visible)" if torch.cuda.is_available() and dev.type == "cpu" else \
            "--device cuda on a machine with a GPU"
        log(f"this is long: consider {hint}, or --engine ray --workers N on a Ray cluster (docs/scaling.md)")
    if estimate_only:
        return 0

    # 1. features
    failed = [f"extract {a} seed {s}: {e}" for a, s, e in failed_build]
    bad = {(a, s) for a, s, _ in failed_build}
    base = st.extract_settings()
    sets: dict = {}
    for arch, seed in jobs:
        if (arch, seed) in bad:
            continue
        try:
            path = extract(base.replace(arch=arch, seed=seed), ds=ds)
        except Exception as e:  # one front-end failing never stops the others
            failed.append(f"extract {arch} seed {seed}: {e}")
            log(f"{arch} seed {seed} failed: {e}")
            continue
        sets.setdefault(arch, []).append(path)

    # 2. grids
    changed, results = False, []
    for arch, paths in sets.items():
        label = json.loads((paths[0] / "meta.json").read_text())["arch"]
        t_grid = time.time()
        try:  # the folder is named by the results key: a current one is kept, other settings go elsewhere
            path = Path(run_grid(st.grid_settings().replace(features=[str(p) for p in paths]),
                                 results_root=st.results_dir, reuse=True, progress=False, log=lambda m: None))
        except Exception as e:
            failed.append(f"grid {label}: {e}")
            log(f"grid {label} failed: {e}")
            continue
        if path.stat().st_mtime < t_grid:
            if path.with_name("results.csv").stat().st_mtime >= t_grid:
                log(f"{label}: results.csv did not match results.json: derived from it again")
            log(f"{label}: results current, kept ({path})")
            results.append(path)
            continue
        changed = True
        results.append(path)
        log(f"{label}: grids done ({path})")

    # 3. report: rendered again whenever the results it would read (paths, bytes) differ from the ones
    # it records having read (a run killed before its report, a results file edited or added since)
    report = st.report_dir / "report.html"
    sources = [str(st.results_dir / ds.name)]
    if results and (changed or not report_is_current(sources, st.report_dir)):
        try:
            render_report(sources, out=st.report_dir, log=lambda m: None)
        except Exception as e:
            failed.append(f"report: {e}")
    elif results:
        log("report current, kept")

    ok_sets = sum(len(v) for v in sets.values())
    written = report.exists() and not any(f.startswith("report") for f in failed)
    log(f"summary: {ok_sets} of {len(jobs)} feature sets, {len(results)} of {len(archs)} results files, "
        f"report {'written' if written else 'missing'} ({report}); {time.perf_counter() - t0:.0f} s")
    for f in failed:
        log(f"  failed: {f}")
    if report.exists():
        print(st.report_dir)
    return 1 if failed else 0
