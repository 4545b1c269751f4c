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
from features.progress import TIME_BELOW_S, clips_done, fmt_s, listening, measure_rate, part_seconds  # noqa: F401
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
    pad: str = "repeat"
    crop: str = "start"
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
    verify_audio: str = "stamp"  # how feature sets and the decode cache know a file unchanged (extraction's)
    as_published: bool = False  # extraction and grids as the study's code computed them (docs/fidelity.md)
    judge: object = None  # studies.judge.JudgeOptions: --proxies, --train (None: neither)

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
                               pad=self.pad, crop=self.crop,
                               seed=self.seeds[0], custom=self.custom, device=self.device, precision=self.precision,
                               batch_size=self.batch_size, workers=self.workers, engine=self.engine,
                               address=self.address, out=self.feature_dir, cache_dir=self.cache_dir,
                               verify_audio=self.verify_audio, as_published=self.as_published)

    def grid_settings(self) -> GridSettings:
        """The grid settings of every front-end (``replace(features=...)`` gives each one). The study's
        extraction engine is not the grid's: the grids run in this process."""
        return GridSettings(classifier=self.classifier, protocol=self.protocol, grid=self.grid, jobs=self.jobs,
                            per_layer=self.per_layer, layers=self.layers, folds=self.folds,
                            fold_seed=self.fold_seed, as_published=self.as_published, out=str(self.results_dir))

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
            from studies.judge import expand_arch  # space:FILE -> each member of its SPACE
            out += list(architectures.ARCHITECTURES) if a == "all" else expand_arch(a)
        return list(dict.fromkeys(out))


def estimate(plans: list, rate_gflops: float, decode_s_per_clip: float) -> dict:
    """Seconds the extraction will take: ``sum(GFLOP/clip x clips to do) / rate`` plus decoding of
    the clips no earlier run decoded.

    Parameters
    ----------
    plans : list of dict
        ``{"arch", "seed", "gflop_per_clip", "clips_todo"}`` per feature set, and ``s_per_clip`` where
        the time of a clip was measured instead (the MFCC baseline, modules of unknown cost).
    rate_gflops : float
        Measured GFLOP/s (:func:`measure_rate`).
    decode_s_per_clip : float
        Measured seconds to decode one clip, times the clips not yet in the cache (first plan only).

    Returns
    -------
    dict
        ``network_s``, ``decode_s``, ``total_s``, ``gflop`` and per arch ``{arch: seconds}``.
    """
    per_arch, gflop, network = {}, 0.0, 0.0
    for p in plans:
        g = (p["gflop_per_clip"] or 0.0) * p["clips_todo"]
        gflop += g
        s = p["s_per_clip"] * p["clips_todo"] if p.get("s_per_clip") is not None else g / rate_gflops
        network += s
        per_arch[p["arch"]] = per_arch.get(p["arch"], 0.0) + s
    return {"network_s": network, "decode_s": decode_s_per_clip, "total_s": network + decode_s_per_clip,
            "gflop": gflop, "per_arch": per_arch}


_fmt_s = fmt_s


def seeded(arch: str) -> bool:
    """Whether a front-end's features depend on the weight seed: not the MFCC baseline (no weights), so a
    study extracts and scores it once, whatever ``--seed`` lists."""
    import architectures
    f = architectures.FRONTENDS.get(arch)
    return f is None or f.seeded


def _plan_all(st: Study, ds, jobs, log, rate=None):
    """``features.extract.plan`` of every job: the clips still to do and the model's GFLOP per clip (or,
    where that is no measure of its time, one clip timed). A front-end that cannot be built is logged
    once with every seed it fails for, not once per seed."""
    from architectures import cost
    from audiodata import audio
    from features import store
    from features.extract import ExtractionError, plan, resolve_run_device
    base = st.extract_settings()
    dev = resolve_run_device(base.device, base.engine, base.address)  # the one rule, as extraction's
    plans, failed = [], []
    timed = {}  # arch -> seconds per clip, where a clip was timed (the same for every seed)
    for arch, seed in jobs:
        try:
            run = plan(base.replace(arch=arch, seed=seed), dev, ds=ds)
        except (ExtractionError, ValueError, RuntimeError) as e:
            failed.append((arch, seed, str(e)))
            continue
        if store.verified(run.folder, run.key):  # done, and its bytes check out
            plans.append({"arch": arch, "seed": seed, "gflop_per_clip": 0.0, "clips_todo": 0, "done": True})
            continue
        spec = run.spec
        shape = (spec.length,) if spec.kind == "waveform" else (spec.length, audio.N_MELS)
        try:
            g = None if getattr(run.model, "opaque_cost", False) else cost.flops_per_clip(run.model, shape) / 1e9
        except Exception:  # a module that cannot run on the meta device: cost unknown
            g = None
        todo = len(run.ds.clips)  # at most: finished chunks of an interrupted run are read only under its lock
        per = None
        if rate is not None and st.engine == "local" and (g is None or g == 0 or spec.kind == "clip"
                                                          or g / rate < TIME_BELOW_S):
            if arch not in timed:
                def one(run=run):
                    from audiodata.decode import prepare
                    return prepare(0, run.ds.clips[0].path, run.spec, st.cache_dir).x
                try:
                    timed[arch] = part_seconds(run, rate, one)[0]
                except Exception:  # it fails in extraction too, with its message there
                    timed[arch] = None
            per = timed[arch]
        plans.append({"arch": arch, "seed": seed, "gflop_per_clip": g, "clips_todo": todo, "done": False,
                      "name": run.arch, "s_per_clip": per,
                      "run": run})  # handed to extraction: each model is built once per study
        del run
    for arch in dict.fromkeys(a for a, _, _ in failed):
        whys = {e for a, _, e in failed if a == arch}
        seeds = [s for a, s, _ in failed if a == arch]
        for why in whys:
            log(f"  {arch} (seed {', '.join(map(str, seeds))}): cannot be built: {why}")
    return plans, failed, dev


def _decode_rate(ds, st: Study, n: int = 3) -> tuple[float, int, int]:
    """Seconds per clip to decode (measured on up to ``n`` clips not yet cached), the clips not cached
    before the study, and how many of them this measurement decoded (they are cached now)."""
    from audiodata import decode
    if st.cache_dir is None:
        return 0.05, len(ds.clips), 0
    todo = [c for c in ds.clips if not (Path(st.cache_dir) / (k := decode.cache_key(c.path))[:2] /
                                        f"{k}.npy").exists()]
    if not todo:
        return 0.0, 0, 0
    n_undecoded = len(todo)
    try:  # the first decode pays for imports and the resampler's set-up: not timed
        decode.decode_cached(todo[0].path, st.cache_dir)
    except Exception:
        pass
    t0, done = time.perf_counter(), 0
    for c in todo[1:1 + n]:
        try:
            decode.decode_cached(c.path, st.cache_dir)
        except Exception:
            pass
        done += 1
    return (time.perf_counter() - t0) / max(done, 1), n_undecoded, done + 1


class _Overall:
    """The study's one overall line: the estimated work done so far (each clip of a part counts its
    estimated seconds), feature sets and grids done, and the time left at the rate measured so far."""

    def __init__(self, total_s: float, n_sets: int, n_grids: int, enabled: bool):
        from tqdm import tqdm
        self.sets, self.n_sets, self.grids, self.n_grids = 0, n_sets, 0, n_grids
        self.per_clip = 0.0
        self.bar = tqdm(total=max(total_s, 1e-6), file=sys.stderr, disable=not enabled, position=0,
                        dynamic_ncols=True, leave=True, mininterval=0.5,
                        bar_format="study |{bar:20}| {percentage:3.0f}% of the estimated extraction, "
                                   "{desc} [{elapsed} elapsed, about {remaining} left]")
        self._desc()

    def _desc(self):
        self.bar.set_description_str(f"feature sets {self.sets}/{self.n_sets}, grids {self.grids}/{self.n_grids}",
                                     refresh=True)

    def clips(self, n: int):
        self.bar.update(min(self.per_clip * n, self.bar.total - self.bar.n))

    def set_done(self, left_s: float = 0.0):
        self.sets += 1
        if left_s > 0:
            self.bar.update(min(left_s, self.bar.total - self.bar.n))
        self._desc()

    def grid_done(self):
        self.grids += 1
        self._desc()

    def close(self):
        self.bar.close()


def run_study(st: Study, estimate_only: bool = False, log=None) -> int:
    """Run (or resume) a study; returns the exit status (0: every part succeeded)."""
    from classifiers.grid import run_grid
    from report.build import render_report, report_is_current
    from audiodata import datasets
    from features.extract import extract
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    archs = st.expanded_archs()
    log(f"study: listing {st.dataset} clips ...")
    ds = datasets.load_dataset(st.dataset, root=st.root, split_dir=st.split_dir, manifest=st.manifest,
                               folds=None, verify_audio=st.verify_audio)  # no folds: the grids make them
    once = [a for a in archs if not seeded(a)]
    jobs = [(a, s) for a in archs for s in (st.seeds if seeded(a) else st.seeds[:1])]
    log(f"study: {ds.name}, {len(ds.clips)} clips, {len(archs)} front-end(s) x {len(st.seeds)} seed(s), "
        f"width {st.width}; output under {st.out}/"
        + (f"; {', '.join(once)} has no weights: extracted and scored once" if once and len(st.seeds) > 1
           else ""))
    from features.extract import resolve_device
    rate = measure_rate(torch.device("cpu") if st.engine == "ray" else resolve_device(st.device))
    dec_per_clip, undecoded, decoded_now = _decode_rate(ds, st)  # first: planning may decode a clip to time it
    plans, failed_build, dev = _plan_all(st, ds, jobs, log, rate)
    est = estimate(plans, rate, dec_per_clip * max(undecoded - decoded_now, 0) / max(st.workers, 1))
    done = sum(p["done"] for p in plans)
    unknown = sorted({p["arch"] for p in plans if p["gflop_per_clip"] is None and p.get("s_per_clip") is None
                      and not p["done"]})
    timed = sorted({p["arch"] for p in plans if p.get("s_per_clip") is not None and not p["done"]})
    log(f"estimate: {_fmt_s(est['total_s'])} of extraction on {dev.type} ({est['gflop']:.3g} GFLOP at "
        f"{rate:.0f} GFLOP/s measured here"
        + (f"; {', '.join(timed)} timed on one clip" if timed else "")
        + f"; decoding {undecoded} clips at {dec_per_clip:.2f} s each over {max(st.workers, 1)} worker(s)); "
        f"{done} of {len(jobs)} feature sets already done; grids and report come on top"
        + (f"; cost unknown for {', '.join(unknown)}" if unknown else ""))
    for arch, s in sorted(est["per_arch"].items(), key=lambda kv: -kv[1])[:5]:
        if s > 1:
            log(f"  {arch}: about {_fmt_s(s)}")
    from studies import judge  # --proxies, --train (studies/judge.py)
    if (line := judge.train_estimate(st, archs, rate, ds, _fmt_s)) is not None:
        log(line)
    if est["total_s"] > LONG_S:
        hint = "--device cuda (a GPU is visible)" if torch.cuda.is_available() and dev.type == "cpu" else \
            "--device cuda on a machine with a GPU"
        log(f"this is long: consider {hint}, or --engine ray --workers N on a Ray cluster (docs/scaling.md)")
    if estimate_only:
        return 0

    # 1. features, under one overall line
    failed = [(f"extract {a}", s, e) for a, s, e in failed_build]  # (part, seed or None, why)
    bad = {(a, s) for a, s, _ in failed_build}
    base = st.extract_settings()
    sets: dict = {}
    by_job = {(p["arch"], p["seed"]): p for p in plans}
    overall = _Overall(est["network_s"], len(jobs), len({a for a, _ in jobs}), enabled=True)
    t_extract = time.perf_counter()
    try:
        with listening(overall.clips):
            for arch, seed in jobs:
                if (arch, seed) in bad:
                    continue
                p = by_job.get((arch, seed), {})
                part_s = (p.get("s_per_clip") if p.get("s_per_clip") is not None else
                          (p.get("gflop_per_clip") or 0.0) / rate) if p else 0.0
                overall.per_clip = part_s
                before = overall.bar.n
                try:
                    path = extract(base.replace(arch=arch, seed=seed), ds=ds, planned=p.pop("run", None))
                except Exception as e:  # one front-end failing never stops the others
                    if not any(f[0] == f"extract {arch}" and f[2] == str(e) for f in failed):
                        overall.bar.write(f"{arch} seed {seed} failed: {e}", file=sys.stderr)  # once per error
                    failed.append((f"extract {arch}", seed, str(e)))
                    continue
                finally:  # the part's share of the estimate is done, however many clips it computed
                    overall.set_done(part_s * p.get("clips_todo", 0) - (overall.bar.n - before))
                sets.setdefault(arch, []).append(path)
        extract_s = time.perf_counter() - t_extract

        # 2. grids
        changed, results = False, []
        for arch, paths in sets.items():
            label = json.loads((paths[0] / "meta.json").read_text())["arch"]
            t_grid = time.time()
            try:  # the folder is named by the results key: a current one is kept, other settings go elsewhere
                path = Path(run_grid(st.grid_settings().replace(features=[str(p) for p in paths]),
                                     reuse=True, progress=False, log=lambda m: None))
            except Exception as e:
                failed.append((f"grid {label}", None, str(e)))
                overall.bar.write(f"grid {label} failed: {e}", file=sys.stderr)
                continue
            finally:
                overall.grid_done()
            results.append(path)
            if path.stat().st_mtime < t_grid:
                if path.with_name("results.csv").stat().st_mtime >= t_grid:
                    overall.bar.write(f"{label}: results.csv did not match results.json: derived from it again",
                                      file=sys.stderr)
                overall.bar.write(f"{label}: results current, kept ({path})", file=sys.stderr)
                continue
            changed = True
            overall.bar.write(f"{label}: grids done ({path})", file=sys.stderr)
    finally:
        overall.close()

    judge_failed, judge_changed = judge.run_judge_steps(st, ds, archs, log)
    failed = failed + [(f.partition(": ")[0], None, f.partition(": ")[2]) for f in judge_failed]
    changed = changed or judge_changed

    # 3. report: rendered again whenever the results it would read (paths, bytes) differ from the ones
    # it records having read (a run killed before its report, a results file edited or added since)
    report = st.report_dir / "report.html"
    report_state = "missing"
    sources = [str(st.results_dir / ds.name)] + judge.report_paths(st, ds)
    if results and (changed or not report_is_current(sources, st.report_dir)):
        try:
            render_report(sources, out=st.report_dir, log=lambda m: None)
            report_state = "written"
        except Exception as e:
            failed.append(("report", None, str(e)))
    elif results:
        report_state = "current, kept"

    ok_sets = sum(len(v) for v in sets.values())
    todo_sets = len(jobs) - done
    log(f"time: extraction estimated {_fmt_s(est['total_s'])}, took {_fmt_s(extract_s)}"
        + (f" (x{extract_s / est['total_s']:.2f} the estimate)" if est["total_s"] > 0 and todo_sets else
           " (nothing was left to extract)" if not todo_sets else ""))
    log(f"summary: {ok_sets} of {len(jobs)} feature sets, {len(results)} of {len(archs)} results files, "
        f"report {report_state} ({report}); "
        f"{time.perf_counter() - t0:.0f} s")
    for part, why in dict.fromkeys((part, why) for part, _, why in failed):  # one line per distinct error
        seeds = [str(s) for p, s, w in failed if p == part and w == why and s is not None]
        log(f"  failed: {part}" + (f" (seed {', '.join(seeds)})" if seeds else "") + f": {why}")
    if report.exists():
        print(st.report_dir)
    return 1 if failed else 0
