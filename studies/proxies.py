"""Zero-cost proxies: training-free scores of an untrained front-end, beside the random-weight probe.

``python -m studies.proxies --dataset synthetic --arch all --width small --seed 0 1 2`` scores every
front-end (the study's, ``hear:``, your own ``pkg.mod:Net`` / ``file.py:factory``) for each seed on one
fixed batch of the dataset's training clips (``--proxy-batch``, default 64; the same clips for every
front-end and seed) and writes ``OUT/<dataset>/<arch>_<width>_<weights>_<key>/proxies.csv``
(columns ``dataset, arch, width, weights, seed, proxy, value, seconds, note``) with a ``meta.json``
naming what made it. The key covers the front-end's identity, width, seeds, the proxies, the batch's
clips (ids, labels, sizes, mtimes), the input length, the back-end and this module's source; a
folder whose key and ``proxies.csv`` checksum match is kept, anything else is computed again.

The network judged is the one ``trained.train`` would train: the front-end with the study's random
weights of ``seed`` (plain layers, ``fast=False``), followed by the study's back-end
(``architectures.backend.PonsBackend`` without batch norm, He-normal from ``seed``), in eval mode
(no dropout), so a proxy is a function of the weights and the batch only. Every proxy sums over the
FRONT-END's weights (its ``Conv1d`` / ``Conv2d`` / ``Linear`` layers; the reference code's are
``Conv2d`` / ``Linear``, audio front-ends also have 1-D convs): the back-end is the same for every
architecture and only turns the front-end's output into class scores and a loss (cross-entropy).

========== ================================================================= ======================
proxy      what it computes here                                             reference code
========== ================================================================= ======================
params     parameters of the front-end                                       (count)
flops      FLOPs of one clip through the front-end (``architectures.cost``)   (count)
naswot     binary codes c of every ReLU's input in the front-end, per clip;   [N] ``score_networks.py``
           K[i,j] = N_A - Hamming(c_i, c_j); ``log |det K|`` (``slogdet``)   ``scores.py``
synflow    every weight and buffer replaced by its absolute value, float64,    [Z] ``synflow.py``
           an all-ones input of one clip, R = sum of the output;
           ``sum |theta * dR/dtheta|`` over the weights
snip       ``sum |theta * dL/dtheta|`` (= SNIP's |dL/dmask| at mask 1)        [Z] ``snip.py``
grad_norm  ``sum_layers ||dL/dW||_2``                                         [Z] ``grad_norm.py``
fisher     per channel of each layer's output a: ``0.5 * mean_batch(          [Z] ``fisher.py``
           (sum_space a * dL/da)^2)``, summed over channels and layers
jacob_cov  J = dy/dx per clip (``y.backward(ones)``); eigenvalues v of        [Z] ``jacob_cov.py``
           ``corrcoef(J)``; ``-sum(log(v + 1e-5) + 1 / (v + 1e-5))``
zico       per layer ``log sum_w mean|g_w| / std(g_w)`` over the gradients     [C] ``compute_zico.py``
           of ZICO_SPLITS mini-batches of the batch (weights with std 0 are
           left out, as is a layer whose sum is 0); summed over layers
========== ================================================================= ======================

Reference code read (facts only, nothing copied):

- [N] BayesWatch/nas-without-training, commit b74255e1f3c5d9344b68534a5549c354da7b031b,
  ``score_networks.py`` (the ``counting_forward_hook`` on every ``ReLU`` module's input:
  ``K += x x' + (1 - x)(1 - x')`` with ``x = (input > 0)``) and ``scores.py`` (``hooklogdet``:
  ``np.linalg.slogdet(K)[1]``). Mellor et al., ICML 2021.
- [Z] SamsungLabs/zero-cost-nas ``foresight/pruners/measures/``: ``jacob_cov.py`` read at the
  SamsungLabs commit ca6134778619be90d20346aadbe27bdf3c535f9d; ``synflow.py`` at its fork
  debadeepta/zero-cost-nas e14ee81078ed1a2f0e11d4db6e12bddf4b309776 (the index holds no other file of
  the SamsungLabs repository); ``snip.py``, ``grad_norm.py`` and ``fisher.py`` as copied into other
  repositories with their Samsung headers (the find_string index, same functions). Abdelfattah et al.,
  ICLR 2021; synflow: Tanaka et al., NeurIPS 2020.
- [C] SLDGroup/ZiCo, commit bbabe285bf81f9b9a60a2ccf6e296f3bb84b35af, ``ZeroShotProxy/compute_zico.py``
  (``caculate_zico``). Li et al., ICLR 2023. That code calls ``loss.backward()`` per mini-batch without
  zeroing, so its later "gradients" are running sums; here each mini-batch's own gradient is used, as
  the paper defines it.

Deviations, all on purpose: ReLUs are found as *functions* (``torch.relu``, ``F.relu``,
``Tensor.relu_`` ... through a ``TorchFunctionMode``), not only ``nn.ReLU`` modules, because the study's
front-ends call ``F.relu``; ``jacob_cov`` uses ``eigvalsh`` (the matrix is symmetric; ``eig`` returns
the same values with rounding noise in imaginary parts); sums run over the front-end's layers.

Synflow is float64 always (as the reference code, ``net.double()``): float32 is 9.1e-7 (sample-level)
and 1.25e-6 (frame-level) relative off the float64 value at the small width on the full input, which misses
the 1e-6 asked for; float64's range is far from reached (6e9 to 2e20 over the study's front-ends at both widths on 3 s
inputs), so no log-space is needed.

A proxy that cannot apply is reported as such (``value`` empty, ``note`` saying why): every proxy but
``params`` for the MFCC baseline (no network), ``naswot`` for a front-end without a ReLU, the gradient
proxies for a front-end whose input is a whole clip, any proxy whose value is not finite.
"""
from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import inspect
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from toolkit.cli import HelpFormatter, prog
from toolkit.provenance import atomic_write_bytes, atomic_write_json, run_record, sha256_file

__all__ = ["PROXIES", "CSV_FIELDS", "ProxySettings", "Judged", "naswot", "naswot_kernel", "synflow",
           "snip", "grad_norm", "fisher", "jacob_cov", "zico", "score_network", "proxy_batch",
           "run_proxies", "read_proxies", "main", "ZICO_SPLITS", "JACOB_K"]

PROXIES = ("params", "flops", "naswot", "synflow", "snip", "grad_norm", "fisher", "jacob_cov", "zico")
CSV_FIELDS = ["dataset", "arch", "width", "weights", "seed", "proxy", "value", "seconds", "note"]
ZICO_SPLITS = 2  # mini-batches the batch is split into for ZiCo's mean / std (ZiCo's experiments: 2)
JACOB_K = 1e-5  # jacob_cov's regulariser of the eigenvalues (zero-cost-nas)
_SCORED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_RELUS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}
NA_NO_NETWORK = "not applicable: no network (fixed MFCC statistics)"


class Judged(nn.Module):
    """The network a proxy scores: ``backend(frontend(x))``; proxies sum over the front-end's layers."""

    def __init__(self, frontend: nn.Module, backend: nn.Module):
        super().__init__()
        self.frontend, self.backend = frontend, backend

    def forward(self, x):
        from architectures.backend import frontend_output
        return self.backend(frontend_output(self.frontend, x))

    def scored(self) -> list[nn.Module]:
        """The front-end's conv and linear layers, in module order."""
        return [m for m in self.frontend.modules() if isinstance(m, _SCORED)]


class _ReluCodes(TorchFunctionMode):
    """Collects NASWOT's kernel from the input of every ReLU function called while it is active."""

    def __init__(self, batch: int):
        super().__init__()
        self.G = torch.zeros(batch, batch, dtype=torch.float64)  # sum of c c'
        self.ones = torch.zeros(batch, dtype=torch.float64)  # per clip: number of active units
        self.n_units = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], torch.Tensor):
            x = args[0].detach()
            flat = x.reshape(x.shape[0], -1)
            step = max(1, 2 ** 22 // max(1, flat.shape[0]))  # a few MB of codes at a time
            for s in range(0, flat.shape[1], step):
                c = (flat[:, s:s + step] > 0).to(torch.float64)
                self.G += c @ c.T
                self.ones += c.sum(dim=1)
            self.n_units += flat.shape[1]
        return func(*args, **kwargs)


def naswot_kernel(frontend: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, int]:
    """NASWOT's ``K`` (batch, batch) over the ReLUs run by ``frontend(x)``, and the number of units N_A.

    ``K[i,j] = N_A - Hamming(c_i, c_j) = c_i.c_j + (1 - c_i).(1 - c_j)``, computed as
    ``N_A - n_i - n_j + 2 c_i.c_j`` (``n_i``: active units of clip i) in float64.
    """
    mode = _ReluCodes(x.shape[0])
    with torch.no_grad(), mode:
        frontend(x)
    n, ones = mode.n_units, mode.ones
    K = n - ones[:, None] - ones[None, :] + 2.0 * mode.G
    return K.numpy(), n


def naswot(net: Judged, x: torch.Tensor) -> tuple[float | None, str]:
    """``log |det K|`` of :func:`naswot_kernel` (BayesWatch ``hooklogdet``)."""
    K, n = naswot_kernel(net.frontend, x)
    if n == 0:
        return None, "not applicable: the front-end runs no ReLU"
    return float(np.linalg.slogdet(K)[1]), ""


def synflow(net: Judged, x: torch.Tensor) -> tuple[float | None, str]:
    """Synflow in float64 on a copy: ``|theta|`` everywhere, an all-ones input of one clip, R = sum of
    the output, ``sum |W * dR/dW|`` over the front-end's layers (weights, not biases: zero-cost-nas)."""
    shadow = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for t in shadow.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    for p in shadow.parameters():
        p.requires_grad_(True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    shadow.zero_grad(set_to_none=True)
    shadow(ones).sum().backward()
    total = 0.0
    for m in shadow.scored():
        if m.weight.grad is not None:
            total += float((m.weight.detach() * m.weight.grad).abs().sum())
    return total, ""


def _loss_backward(net: Judged, x, y) -> None:
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()


def snip(net: Judged, x, y) -> tuple[float | None, str]:
    """``sum |W * dL/dW|`` over the front-end's layers (zero-cost-nas snip: the gradient of a weight mask
    of ones, which equals ``W * dL/dW``)."""
    _loss_backward(net, x, y)
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in net.scored()
                     if m.weight.grad is not None)), ""


def grad_norm(net: Judged, x, y) -> tuple[float | None, str]:
    """``sum_layers ||dL/dW||_2`` over the front-end's layers (zero-cost-nas grad_norm)."""
    _loss_backward(net, x, y)
    return float(sum(m.weight.grad.norm() for m in net.scored() if m.weight.grad is not None)), ""


def fisher(net: Judged, x, y) -> tuple[float | None, str]:
    """zero-cost-nas fisher: each layer's output ``a`` (batch, channels, ...) and ``g = dL/da``;
    per channel ``0.5 * mean over clips of (sum over the other axes of a * g)^2``; summed over channels
    and layers. A layer called twice contributes once per call. A linear layer's channels are its last axis."""
    total = [0.0]
    handles = []

    def capture(module, _inp, out):
        if not out.requires_grad:
            return
        act = out.detach()

        def on_grad(g):
            a, gg = act, g.detach()
            if isinstance(module, nn.Linear) and a.dim() > 2:
                a, gg = a.movedim(-1, 1), gg.movedim(-1, 1)
            prod = a * gg
            g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            total[0] += float((0.5 * g_nk.double().pow(2).mean(dim=0)).sum())
        out.register_hook(on_grad)

    for m in net.scored():
        handles.append(m.register_forward_hook(capture))
    try:
        _loss_backward(net, x, y)
    finally:
        for h in handles:
            h.remove()
    return total[0], ""


def jacob_cov(net: Judged, x, y=None) -> tuple[float | None, str]:
    """zero-cost-nas jacob_cov: per-clip input Jacobians J (``y.backward(ones)``), eigenvalues v of
    ``np.corrcoef(J)``, ``-sum(log(v + k) + 1 / (v + k))`` with ``k = 1e-5``."""
    x = x.detach().clone().requires_grad_(True)
    net.zero_grad(set_to_none=True)
    out = net(x)
    out.backward(torch.ones_like(out))
    J = x.grad.detach().reshape(x.shape[0], -1).double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(J)
    if not np.isfinite(corr).all():
        return None, "not finite: a clip's input Jacobian is constant (its correlation is undefined)"
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + JACOB_K) + 1.0 / (v + JACOB_K))), ""


def zico(net: Judged, x, y, splits: int = ZICO_SPLITS) -> tuple[float | None, str]:
    """ZiCo: the gradient of each of ``splits`` consecutive mini-batches of the batch; per layer
    ``log(sum over weights of mean|g| / std(g))`` (population std, as ``np.std``; weights whose std is
    0 left out, a layer whose sum is 0 skipped), summed over the front-end's layers."""
    if x.shape[0] < splits:
        return None, f"not applicable: ZiCo needs at least {splits} clips in the batch, found {x.shape[0]}"
    layers = net.scored()
    grads = [[] for _ in layers]
    n = x.shape[0]
    for s in range(splits):
        lo, hi = s * n // splits, (s + 1) * n // splits
        _loss_backward(net, x[lo:hi], y[lo:hi])
        for i, m in enumerate(layers):
            if m.weight.grad is not None:
                grads[i].append(m.weight.grad.detach().reshape(-1).double().clone())
    total, used = 0.0, 0
    for g in grads:
        if len(g) < splits:
            continue
        G = torch.stack(g)
        std = G.std(dim=0, unbiased=False)
        keep = std != 0
        s = float((G.abs().mean(dim=0)[keep] / std[keep]).sum())
        if s != 0:
            total += math.log(s)
            used += 1
    if used == 0:
        return None, "not finite: every layer's gradients are identical across the mini-batches"
    return total, ""


_GRADIENT = {"snip": snip, "grad_norm": grad_norm, "fisher": fisher, "jacob_cov": jacob_cov, "zico": zico}


def _finite(value, note):
    if value is not None and not math.isfinite(value):
        return None, f"not finite ({value}): {note}".rstrip(": ")
    return value, note


def score_network(frontend: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None, n_classes: int,
                  seed: int, proxies=PROXIES, input_shape=None) -> list[dict]:
    """Every proxy of ``proxies`` for one front-end: ``[{"proxy", "value", "seconds", "note"}]``.

    ``x`` is the batch ``(batch, *input)`` (float32), ``y`` its class indices; the back-end is a
    ``PonsBackend(batchnorm=False)`` drawn from ``seed``. A front-end without weights (the MFCC baseline)
    gets ``params`` 0 and every other proxy "not applicable". A proxy that raises is recorded as failed
    with its reason; the others go on.
    """
    from architectures import cost
    from architectures.backend import PonsBackend, init_he_normal
    out = []
    frontend = copy.deepcopy(frontend).float()
    if hasattr(frontend, "fast"):
        frontend.fast = False  # the plain layers: every conv is a module, autograd runs through all
    for p in frontend.parameters():
        p.requires_grad_(True)
    has_net = any(isinstance(m, _SCORED) for m in frontend.modules())
    kind = getattr(frontend, "input_kind", None)
    net = None
    if has_net and kind in ("waveform", "spectrogram") and x is not None:
        from architectures.backend import frontend_output
        with torch.no_grad():
            channels = frontend_output(frontend.eval(), x[:1]).shape[1]
        backend = init_he_normal(PonsBackend(channels, n_classes, batchnorm=False), seed)
        net = Judged(frontend, backend).eval()
    for name in proxies:
        t0 = time.perf_counter()
        try:
            if name == "params":
                value, note = float(cost.count_params(frontend)), ""
            elif not has_net:
                value, note = None, NA_NO_NETWORK
            elif name == "flops":
                shape = input_shape or tuple(x.shape[1:])
                value, note = float(cost.flops_per_clip(frontend, shape)), ""
            elif net is None:
                value, note = None, f"not applicable: input kind {kind!r} (a whole clip, not a fixed-size batch)"
            elif name == "naswot":
                value, note = naswot(net, x)
            elif name == "synflow":
                value, note = synflow(net, x)
            else:
                value, note = _GRADIENT[name](net, x, y)
            value, note = _finite(value, note)
        except Exception as e:  # one proxy failing never stops the others
            value, note = None, f"failed: {type(e).__name__}: {e}"
        finally:
            if net is not None:
                net.zero_grad(set_to_none=True)
        out.append({"proxy": name, "value": value, "seconds": time.perf_counter() - t0, "note": note})
    return out


# ----------------------------------------------------------------------------- the batch and the files

@dataclass(frozen=True)
class ProxySettings:
    """What a proxies run is made of (``python -m studies.proxies --help`` explains each field)."""
    dataset: str = "synthetic"
    root: str | None = None
    split_dir: str | None = None
    manifest: str | None = None
    width: str = "large"
    seeds: tuple = (0,)
    proxies: tuple = PROXIES
    batch: int = 64
    input_seconds: float | None = None
    folds: int = 10
    fold_seed: int = 0
    custom: dict | None = None
    workers: int = 2
    cache_dir: str | None = "runs/cache/audio"
    out: str = "runs/proxies"

    def __post_init__(self):
        bad = [p for p in self.proxies if p not in PROXIES]
        if bad:
            raise ValueError(f"unknown proxy {bad[0]!r}; available: {', '.join(PROXIES)}")
        if int(self.batch) < 2:
            raise ValueError(f"--proxy-batch must be at least 2 (NASWOT's kernel and ZiCo's std need "
                             f"two clips), found {self.batch}")
        if not self.seeds:
            raise ValueError("no --seed given")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"--out {self.out} is an existing file; expected a folder (the root of the proxy "
                             "tables, each in a folder named by its key)")


def proxy_batch(ds, n: int, folds: int = 10, fold_seed: int = 0) -> list:
    """The fixed batch: ``n`` training clips drawn (``default_rng(0)``, clips in id order) from the
    dataset's ``train`` split, or from every fold but fold 1 (its own folds, else
    ``stratified_folds(folds, fold_seed)``, the grid's); the same clips for every front-end and seed."""
    from audiodata.datasets import stratified_folds
    clips = sorted(ds.clips, key=lambda c: c.id)
    if any(c.split is not None for c in clips):
        pool = [c for c in clips if c.split == "train"]
    elif any(c.fold is not None for c in clips):
        pool = [c for c in clips if c.fold != 1]
    else:
        fold = stratified_folds([c.id for c in clips], [c.label for c in clips], folds, fold_seed)
        pool = [c for c, f in zip(clips, fold) if f != 1]
    if len(pool) < 2:
        raise ValueError(f"{ds.name}: {len(pool)} training clip(s); the proxies need at least 2")
    pick = np.sort(np.random.default_rng(0).permutation(len(pool))[:n])
    return [pool[i] for i in pick]


def _inputs(clips, spec, cache_dir, workers):
    from audiodata.decode import iter_prepared
    xs, kept, skipped = [], [], []
    for p in iter_prepared([c.path for c in clips], spec, cache_dir, workers=workers):
        if p.x is None:
            skipped.append({"id": clips[p.index].id, "reason": p.error})
        else:
            xs.append(p.x)
            kept.append(clips[p.index])
    return xs, kept, skipped


def _code_version() -> str:
    return hashlib.sha256(inspect.getsource(sys.modules[__name__]).encode()).hexdigest()


def _rows_csv(rows) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "value": "" if r["value"] is None else repr(float(r["value"])),
                    "seconds": f"{r['seconds']:.4f}"})
    return buf.getvalue().encode()


def _current(folder: Path, key: str) -> bool:
    meta, table = folder / "meta.json", folder / "proxies.csv"
    try:
        m = json.loads(meta.read_text())
        return m.get("key") == key and table.is_file() and sha256_file(table) == m.get("proxies_csv_sha256")
    except (OSError, ValueError):
        return False


def run_proxies(arch: str, st: ProxySettings, ds=None, log=None) -> Path:
    """Score ``arch`` for every seed of ``st`` and return the ``proxies.csv`` path (kept when current)."""
    from audiodata import datasets
    from features import store
    from features.extract import build_frontend, input_spec
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if ds is None:
        ds = datasets.load_dataset(st.dataset, root=st.root, split_dir=st.split_dir, manifest=st.manifest,
                                   folds=None)
    batch = proxy_batch(ds, int(st.batch), st.folds, st.fold_seed)
    classes = sorted({c.label for c in ds.clips})
    models = {s: build_frontend(arch, width=st.width, seed=s, custom=st.custom) for s in st.seeds}
    first = models[st.seeds[0]]
    name = getattr(first, "arch_name", None) or arch
    weights = getattr(first, "weights_name", None) or "random"
    kind = getattr(first, "input_kind", None)
    spec = input_spec(first, st.input_seconds, name=name) if kind in ("waveform", "spectrogram", "clip") else None
    settings = {"arch": name, "identity": getattr(first, "identity", None), "width": st.width,
                "weights": weights, "seeds": list(st.seeds), "proxies": list(st.proxies),
                "batch": store.clip_stamps(batch), "input": None if spec is None else spec.__dict__,
                "backend": "PonsBackend(batchnorm=False), init_he_normal(seed), eval mode",
                "classes": classes, "zico_splits": ZICO_SPLITS, "torch": torch.__version__,
                "code_version": _code_version()}
    key = store.settings_key(settings)[:16]
    folder = Path(st.out) / store.safe_name(ds.name) / \
        f"{store.safe_name(name)}_{store.safe_name(st.width)}_{weights}_{key}"
    if _current(folder, key):
        log(f"{name}: proxies current, kept ({folder / 'proxies.csv'})")
        return folder / "proxies.csv"
    t0 = time.perf_counter()
    x = y = None
    skipped = []
    if kind in ("waveform", "spectrogram"):
        xs, kept, skipped = _inputs(batch, spec, st.cache_dir, st.workers)
        if len(xs) < 2:
            raise ValueError(f"{name}: only {len(xs)} of the {len(batch)} batch clips could be read: "
                             + "; ".join(f"{s['id']}: {s['reason']}" for s in skipped[:3]))
        x = torch.from_numpy(np.stack(xs))
        y = torch.tensor([classes.index(c.label) for c in kept])
    rows = []
    shape = None if spec is None or kind == "clip" else \
        ((spec.length,) if kind == "waveform" else (spec.length, 96))
    for s, model in models.items():
        for r in score_network(model, x, y, len(classes), s, st.proxies, shape):
            rows.append({"dataset": ds.name, "arch": name, "width": st.width, "weights": weights, "seed": s,
                         **r})
            shown = "-" if r["value"] is None else f"{r['value']:.6g}"
            log(f"  {name} seed {s} {r['proxy']}: {shown} ({r['seconds']:.2f} s){'; ' + r['note'] if r['note'] else ''}")
    folder.mkdir(parents=True, exist_ok=True)
    data = _rows_csv(rows)
    atomic_write_bytes(folder / "proxies.csv", data)
    meta = run_record({**settings, "batch_size": int(st.batch), "workers": st.workers})
    meta.update(kind="randomcnn-proxies", key=key, dataset=ds.name, arch=name, width=st.width, weights=weights,
                seeds=list(st.seeds), batch_ids=[c.id for c in batch], skipped=skipped,
                proxies_csv_sha256=hashlib.sha256(data).hexdigest(), seconds=time.perf_counter() - t0)
    atomic_write_json(folder / "meta.json", meta)  # last: its key and checksum make the folder current
    if skipped:  # too short for the front-end, unreadable: in meta.json's skipped, and said (issue 19)
        log(f"{name}: scored on {len(xs)} of {len(batch)} batch clips; skipped (in meta.json): "
            + "; ".join(f"{s_['id']}: {s_['reason']}" for s_ in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return folder / "proxies.csv"


def read_proxies(root) -> list[dict]:
    """Every row of every current ``proxies.csv`` under ``root`` (``report.judge.read_proxies``, the one
    reader: a table whose checksum differs from its ``meta.json`` is skipped)."""
    from report.judge import read_proxies as read
    return read([root])


# ----------------------------------------------------------------------------- command line

def add_arguments(p) -> None:
    """``--proxy-batch`` and ``--proxies``, shared with ``python -m studies``."""
    p.add_argument("--proxy-batch", type=int, default=64,
                   help="training clips in the one fixed batch every proxy is computed on")
    p.add_argument("--proxies", nargs="+", default=list(PROXIES), choices=list(PROXIES), metavar="PROXY",
                   help=f"proxies to compute: {', '.join(PROXIES)}")


def parse_args(argv=None):
    import architectures
    from architectures.custom import add_arguments as add_custom_arguments
    from architectures.custom import is_custom_spec
    from architectures.custom import options_from_args as custom_options_from_args
    from audiodata import datasets
    from features.extract import HEAR_PREFIX
    names = list(architectures.FRONTENDS)
    p = argparse.ArgumentParser(
        prog=prog("python -m studies.proxies"), formatter_class=HelpFormatter,
        description="Zero-cost proxies (params, flops, naswot, synflow, snip, grad_norm, fisher, jacob_cov, "
                    "zico) of untrained front-ends on one fixed batch of training clips, for each seed: "
                    "OUT/<dataset>/<arch>_<width>_<weights>_<key>/proxies.csv. The references and "
                    "what each computes: the module docstring (studies/proxies.py). Exits 1 if any "
                    "front-end failed.")
    p.add_argument("--dataset", default="synthetic", choices=list(datasets.DATASETS), help="dataset layout")
    p.add_argument("--root", default=None, help="dataset folder (synthetic: generated here if absent)")
    p.add_argument("--split-dir", default=None, help="gtzan: the fault-filtered split lists")
    p.add_argument("--manifest", default=None, help="csv dataset: the manifest file")
    p.add_argument("--arch", nargs="+", default=["all"], metavar="NAME",
                   help=f"front-ends: {', '.join(names)}, all, hear:MODULE, pkg.module:Class or "
                        "path/to/file.py:factory")
    p.add_argument("--width", default="large", choices=["large", "small"], help="the study's widths")
    p.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2], help="random-weight seeds")
    add_custom_arguments(p)
    add_arguments(p)
    p.add_argument("--input-seconds", type=float, default=None, help="input length; default the study's ~29 s")
    p.add_argument("--folds", type=int, default=10, help="folds (for datasets without a split): fold 1 is left out")
    p.add_argument("--fold-seed", type=int, default=0, help="shuffling seed of those folds")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--out", default="runs/proxies", help="root of the proxy tables: each goes to "
                   "OUT/<dataset>/<arch>_<width>_<weights>_<key>/proxies.csv (as every tool's --out)")
    p.add_argument("--cache-dir", default="runs/cache/audio", help="decoded-audio cache ('none' disables)")
    a = p.parse_args(argv)
    bad = [x for x in a.arch if x not in names and x != "all" and not x.startswith(HEAR_PREFIX)
           and not is_custom_spec(x)]
    if bad:
        p.error(f"unknown architecture {bad[0]!r}; available: {', '.join(names)}, all, hear:MODULE, "
                "pkg.module:Class or path/to/file.py:factory")
    if a.input_seconds is not None and not (math.isfinite(a.input_seconds) and a.input_seconds > 0):
        p.error(f"--input-seconds must be a positive number of seconds, found {a.input_seconds}")
    a.custom = custom_options_from_args(p, a)
    a.archs = [n for x in a.arch for n in (names if x == "all" else [x])]
    return p, a


def main(argv=None) -> int:
    from features.settings import cache_dir_arg
    p, a = parse_args(argv)
    try:
        st = ProxySettings(dataset=a.dataset, root=a.root, split_dir=a.split_dir, manifest=a.manifest,
                           width=a.width, seeds=tuple(a.seed), proxies=tuple(a.proxies), batch=a.proxy_batch,
                           input_seconds=a.input_seconds, folds=a.folds, fold_seed=a.fold_seed,
                           custom=a.custom, workers=a.workers,
                           cache_dir=cache_dir_arg(a.cache_dir), out=a.out)
    except ValueError as e:
        p.error(str(e))
    from audiodata import datasets
    try:
        ds = datasets.load_dataset(st.dataset, root=st.root, split_dir=st.split_dir, manifest=st.manifest,
                                   folds=None)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    failed, paths = [], []
    for arch in dict.fromkeys(a.archs):
        try:
            paths.append(run_proxies(arch, st, ds=ds))
            print(paths[-1], flush=True)
        except Exception as e:  # one front-end failing never stops the others
            failed.append(f"{arch}: {type(e).__name__}: {e}")
            print(f"{arch} failed: {e}", file=sys.stderr)
    print(f"summary: proxies of {len(paths)} of {len(paths) + len(failed)} front-end(s)", file=sys.stderr)
    for f in failed:
        print(f"  failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
