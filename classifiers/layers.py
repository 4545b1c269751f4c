"""Where the information lives: choose a feature set's layers, and score each layer alone and cumulatively.

A feature set's ``meta.json`` lists its layers with the columns of ``X`` each occupies (``docs/formats.md``).

- ``python -m classifiers.grid --layers pool3 pool4`` (names) or ``--layers 3-5`` (1-based positions,
  ranges inclusive, mixable: ``1,3-4 conv5``) keeps those layers' columns, in the feature set's order
  (the study's ``selected_features_list``). The results say which (``layers``) and carry the selection
  in their ``arch`` label (``vgg[3-5]``), so they never replace the full feature set's results.
- ``--per-layer`` adds, per classifier and protocol, the accuracy of each layer alone and of layers
  1..k together, k = 1..K (``per_layer`` in the results): "which layers to keep" and "does depth help",
  the report's accuracy-vs-depth curve. Each point is a full grid on those columns, exactly as the
  whole feature set is scored, so the cumulative curve ends at the full set's accuracy (the full set's
  own results; layers 1..1 is layer 1 alone: neither is scored twice). The SVM's Grams of layers 1..k
  are sums of per-layer Grams, computed once (``kernels.LayerGrams``); the libsvm fits and the ELM's
  solves, most of a grid's time, are made per subset (docs/performance-grid.md, "--per-layer").
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .featureset import FeatureSet, write_feature_set
from .kernels import LayerGrams, layer_grams

__all__ = ["LayerSelectionError", "layer_table", "parse_layers", "select_layers", "per_layer_scores"]


class LayerSelectionError(ValueError):
    """A ``--layers`` selection that does not name layers of the feature set."""


def layer_table(fs: FeatureSet) -> list[dict]:
    """The feature set's layers ``[{name, channels, start, stop}, ...]``, checked against ``X``.

    A feature set without ``layers`` in its metadata counts as one layer, ``all``.
    """
    layers = fs.meta.get("layers") or [{"name": "all", "channels": fs.X.shape[1], "start": 0,
                                        "stop": fs.X.shape[1]}]
    stop = 0
    for layer in layers:
        if not {"name", "start", "stop"} <= set(layer) or layer["start"] != stop or layer["stop"] <= stop:
            raise LayerSelectionError(f"{fs.path}/meta.json: layers must tile the columns of X in order; "
                                      f"found {layer}")
        stop = layer["stop"]
    if stop != fs.X.shape[1]:
        raise LayerSelectionError(f"{fs.path}/meta.json: layers cover {stop} columns but X has {fs.X.shape[1]}")
    return layers


def parse_layers(tokens, layers: list[dict]) -> list[int]:
    """Positions (0-based, sorted, unique) of the layers ``tokens`` name.

    Parameters
    ----------
    tokens : str or sequence of str
        Layer names, 1-based positions or inclusive ranges ``a-b``, separated by spaces or commas.
    layers : list of dict
        :func:`layer_table`'s rows.

    Raises
    ------
    LayerSelectionError
        Naming the token that matches no layer and listing the layers there are.
    """
    if isinstance(tokens, str):
        tokens = [tokens]
    names = [str(layer["name"]) for layer in layers]
    chosen = set()
    for token in (t.strip() for item in tokens for t in str(item).split(",")):
        if not token:
            continue
        if token in names:
            chosen.add(names.index(token))
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if m:
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if not 1 <= a <= b <= len(layers):
                raise LayerSelectionError(f"--layers {token}: positions run 1..{len(layers)} (and a <= b)")
            chosen.update(range(a - 1, b))
            continue
        listed = ", ".join(f"{i + 1}:{n}" for i, n in enumerate(names))
        raise LayerSelectionError(f"--layers {token!r} is neither a layer name nor a position; the feature "
                                  f"set's layers are {listed}")
    if not chosen:
        raise LayerSelectionError("--layers selects nothing")
    return sorted(chosen)


def _label(positions: list[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"1-3,5"``."""
    parts, start = [], None
    for i, p in enumerate(positions):
        if start is None:
            start = p
        if i + 1 == len(positions) or positions[i + 1] != p + 1:
            parts.append(str(start + 1) if start == p else f"{start + 1}-{p + 1}")
            start = None
    return ",".join(parts)


def _subset(fs: FeatureSet, layers: list[dict], positions: list[int]) -> FeatureSet:
    cols = np.concatenate([np.arange(layers[i]["start"], layers[i]["stop"]) for i in positions])
    kept, start = [], 0
    for i in positions:
        n = layers[i]["stop"] - layers[i]["start"]
        kept.append(dict(layers[i], start=start, stop=start + n))
        start += n
    meta = dict(fs.meta, layers=kept, feature_length=int(cols.size))
    return replace(fs, X=np.ascontiguousarray(fs.X[:, cols]), meta=meta)


def select_layers(sets: list[FeatureSet], tokens) -> tuple[list[FeatureSet], dict | None]:
    """Keep the layers ``tokens`` name in every feature set (all runs share their layers).

    Returns
    -------
    sets : list of FeatureSet
        The same sets with ``X`` restricted to the chosen columns (unchanged when ``tokens`` is None).
    selection : dict or None
        ``{"spec", "label", "positions" (1-based), "names", "n_features"}`` for the results.
    """
    if not tokens:
        return sets, None
    tables = [layer_table(fs) for fs in sets]
    names = [[layer["name"] for layer in t] for t in tables]
    if any(n != names[0] for n in names[1:]):
        raise LayerSelectionError("--layers: the feature sets have different layers; select per front-end")
    positions = parse_layers(tokens, tables[0])
    out = [_subset(fs, t, positions) for fs, t in zip(sets, tables)]
    return out, {"spec": " ".join(tokens) if not isinstance(tokens, str) else tokens,
                 "label": _label(positions), "positions": [p + 1 for p in positions],
                 "names": [names[0][p] for p in positions], "n_features": int(out[0].X.shape[1])}


def per_layer_scores(sets: list[FeatureSet], score, progress: bool = False, full: dict | None = None) -> dict:
    """Accuracy of each layer alone and of layers 1..k together, per classifier and protocol.

    Parameters
    ----------
    sets : list of FeatureSet
        The runs of one front-end (after any ``--layers`` selection).
    score : callable(list of feature-set folders, out folder) -> results dict
        Scores feature sets exactly as the whole set is scored (``classifiers.grid.run_grid`` with the
        same settings); each point's feature sets are written to a temporary folder for it.
    progress : bool
        Print one line per point.
    full : dict, optional
        The results of ``sets`` themselves under the same settings: they are layers 1..K, so that point
        is not scored again (nor layers 1..1, which is layer 1 alone).

    Returns
    -------
    dict
        ``{"layers": [{name, channels}], "curves": [{"classifier", "protocol", "mode": "alone" or
        "cumulative", "points": [{"k", "layers", "n_features", "mean", "std", "accuracies"}]}]}``;
        ``k`` counts layers from the first (cumulative) or is the layer's position (alone).

    The subsets are scored in the order layer 1 alone, (1..1 = layer 1), layer 2 alone, layers 1..2,
    ... so that the SVM's Gram of layers 1..k is the kept Gram of layers 1..k-1 plus layer k's, kept
    from scoring it alone (``kernels.LayerGrams``); the results do not depend on the order.
    """
    table = layer_table(sets[0])
    widths = [t["stop"] - t["start"] for t in table]
    n_layers = len(table)
    done: dict = {}  # (mode, k) -> results
    grams = LayerGrams()
    with tempfile.TemporaryDirectory(prefix="per_layer_") as tmp:
        for k in range(1, n_layers + 1):
            for mode in ("alone", "cumulative"):
                if mode == "alone" and n_layers == 1:
                    continue
                positions = [k - 1] if mode == "alone" else list(range(k))
                if mode == "cumulative" and k == n_layers and full is not None:
                    done[mode, k] = full  # every layer: the feature sets' own results
                    continue
                if mode == "cumulative" and k == 1 and n_layers > 1:
                    done[mode, k] = done["alone", 1]  # the same columns, the same settings
                    continue
                folders = []
                for r, fs in enumerate(sets):
                    sub = _subset(fs, table, positions)
                    arrays = {"split": sub.split} if sub.split is not None else {"fold": sub.fold}
                    folders.append(write_feature_set(Path(tmp) / f"{mode}{k}_{r}", sub.X, sub.y, sub.ids,
                                                     meta=sub.meta, **arrays))
                with layer_grams(grams, [widths[p] for p in positions]):
                    done[mode, k] = results = score(folders, Path(tmp) / f"{mode}{k}_results")
                if progress:
                    what = (table[k - 1]["name"] if mode == "alone" else
                            table[0]["name"] if k == 1 else f"{table[0]['name']}..{table[k - 1]['name']}")
                    print(f"per-layer {'layer' if mode == 'alone' else 'layers'} {what} "
                          f"({'alone' if mode == 'alone' else f'1..{k}'} of {n_layers}): " + ", ".join(
                        f"{e['classifier']} {e['protocol']} {100 * e['mean']:.1f}%" for e in results["entries"]
                        if e["mean"] is not None), flush=True)
    curves: dict = {}
    for mode in ("alone", "cumulative"):
        for k in range(1, n_layers + 1):
            if (mode, k) not in done:
                continue
            positions = [k - 1] if mode == "alone" else list(range(k))
            for e in done[mode, k]["entries"]:
                curve = curves.setdefault((e["classifier"], e["protocol"], mode), [])
                curve.append({"k": k, "layers": [table[p]["name"] for p in positions],
                              "n_features": int(sum(widths[p] for p in positions)),
                              "mean": e["mean"], "std": e["std"],
                              "accuracies": [run["accuracy"] for run in e["runs"]]})
    return {"layers": [{"name": t["name"], "channels": w} for t, w in zip(table, widths)],
            "curves": [{"classifier": c, "protocol": p, "mode": m, "points": pts}
                       for (c, p, m), pts in curves.items()]}
