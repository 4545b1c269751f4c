"""Same bytes before and after a change that should not move a number (a refactoring, a fast path).

Computes, on this machine, the feature bytes of every shipped front-end at a fixed seed on fixed
generated clips (both widths, through the public ``features.extract.embed``), and the study grid's picks
and accuracies on a fixed synthetic feature set (through ``classifiers.grid.run_grid``), and either writes
their SHA-256 digests to a JSON file or compares them with one written earlier::

    python benchmarks/check_identity.py --write runs/identity/before.json   # on the old code
    python benchmarks/check_identity.py --check runs/identity/before.json   # on the new code

Exit status 0 when every digest matches, 1 otherwise (each mismatch named). Float results depend on the
machine and library versions: compare digests taken on the same machine, same environment.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from architectures import FRONTENDS, build  # noqa: E402
from features.extract import embed  # noqa: E402

SR = 12000


def _clips(n: int = 4) -> list[np.ndarray]:
    """Fixed clips: a chord, noise, a click train and a sweep (different lengths, all repeat-padded)."""
    rng = np.random.default_rng(20261121)
    t = np.arange(int(SR * 3.5)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    noise = rng.standard_normal(int(SR * 4.0)) * 0.1
    clicks = np.zeros(int(SR * 3.2))
    clicks[::SR // 8] = 1.0
    sweep = np.sin(2 * np.pi * (100 + 900 * t[: int(SR * 2.0)]) * t[: int(SR * 2.0)])
    return [c.astype(np.float32) for c in (chord, noise, clicks, sweep)][:n]


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def feature_digests(widths=("small", "large"), seed: int = 0) -> dict:
    """``{"features/<arch>/<width>": sha256}`` of ``embed`` on the fixed clips."""
    waves = _clips()
    out = {}
    for name in FRONTENDS:
        for width in widths:
            model = build(name, width=width, seed=seed)
            X = embed(model, waves, sr=SR, device="cpu", batch_size=2)  # the study's input length
            out[f"features/{name}/{width}"] = _digest(X)
            print(f"  {name:17s} {width:5s} {X.shape} {out[f'features/{name}/{width}'][:12]}", flush=True)
    return out


def grid_digests() -> dict:
    """``{"grid/<classifier>/<protocol>": sha256}`` of each entry's picks, accuracies and predictions."""
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    from classifiers.grid import run_grid
    out = {}
    for kind, extra in (("split", {}), ("folds", {"n_folds": 5})):
        with tempfile.TemporaryDirectory() as tmp:
            d = synthetic_feature_set(n_clips=90, n_features=24, separation=1.0, seed=0, **extra)
            fs = write_feature_set(Path(tmp) / "fs" / "synthetic" / "vgg_small_random_seed0", **d,
                                   meta={"arch": "vgg", "n_params": 1, "gflop_per_clip": 0.1})
            res = json.loads(Path(run_grid([fs], classifier="all", progress=False,
                                           out=Path(tmp) / "results")).read_text())
        for e in res["entries"]:
            keep = [{k: r.get(k) for k in ("accuracy", "selected", "fold_accuracies", "predictions")}
                    for r in e["runs"]]
            text = json.dumps(keep, sort_keys=True, default=str)
            name = f"grid/{kind}/{e['classifier']}/{e['protocol']}"
            out[name] = hashlib.sha256(text.encode()).hexdigest()
            print(f"  {name:28s} {e['runs'][0]['accuracy']:.4f}", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="JSON", help="write the digests of this code to JSON")
    g.add_argument("--check", metavar="JSON", help="compare this code's digests with JSON")
    p.add_argument("--widths", nargs="+", default=["small", "large"], choices=["small", "large"])
    a = p.parse_args(argv)
    print("features (embed, seed 0, 4 fixed clips, the study's input length):")
    digests = feature_digests(a.widths)
    print("grid (study grid, synthetic 90 x 24 feature sets: a split, 5 folds):")
    digests.update(grid_digests())
    if a.write:
        Path(a.write).parent.mkdir(parents=True, exist_ok=True)
        Path(a.write).write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
        print(f"wrote {len(digests)} digests to {a.write}")
        return 0
    try:
        ref = json.loads(Path(a.check).read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read reference digests {a.check}: {e}", file=sys.stderr)
        return 2
    bad = sorted(k for k in ref if digests.get(k) != ref[k])
    missing = sorted(set(digests) - set(ref))
    for k in bad:
        print(f"DIFFERS: {k}")
    print(f"{len(ref) - len(bad)} of {len(ref)} digests identical"
          + (f"; {len(missing)} new items not in the reference" if missing else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
