"""Any PyTorch module as a front-end: ``--arch my_pkg.mod:Net`` or ``--arch path/file.py:make``.

A *spec* names a class or a factory: ``package.module:Attr`` (imported from ``sys.path``, which includes
the current folder) or ``path/to/file.py:Attr`` (loaded from that file). It is called with the keyword
options of ``--arch-options`` (JSON ``'{"filters": 64}'`` or ``key=value`` pairs) and, when its signature
accepts them, ``width`` and ``seed``. The result must be an ``nn.Module``.

:class:`CustomFrontend` wraps it behind the front-end interface of ``docs/formats.md``:

- **Input.** ``input_kind`` on the module (``"waveform"`` or ``"spectrogram"``; ``"log-mel"`` is an alias),
  or the ``input`` argument (``--input``). A spectrogram module gets the study's log-mel
  ``(batch, frames, 96)`` at 12 kHz; a waveform module ``(batch, samples)`` at 12 kHz, or at its own
  ``sample_rate`` attribute. The length is ``--input-seconds``, else the module's ``input_seconds``
  attribute, else the study's 29.2 s.
- **Layers.** ``extract_features(x) -> list[Tensor]`` when the module has one (names from its
  ``layers`` attribute when it has one, else ``layer1``, ``layer2``...); otherwise forward hooks on the
  chosen layer types (default ``conv`` and ``pool``). A hooked layer's output is taken *after* the
  norm, dropout and activation modules that are applied directly to it (conv -> BatchNorm -> ReLU gives
  the ReLU's output), so "every conv layer's output after its non-linearity" is what is averaged. The
  same holds for activations, norms and poolings written as functions in ``forward`` (``F.relu``,
  ``torch.tanh``, ``x.relu()``, ``F.max_pool1d``: seen through a ``TorchFunctionMode`` while the module
  runs, which also sees calls behind Python control flow that ``torch.fx`` tracing cannot follow); a
  functional pooling is a ``pool`` layer named by the module calling it. Layers are named by module path (``blocks.0.conv``; a module called twice gets
  ``#2``), in the order they run. Every output is ``(batch, channels, ...)``: its mean over all axes
  after the channels is the layer's feature.
- **Weights.** ``init="study"`` (default): every conv / linear re-drawn from ``seed`` with the study's
  truncated He normal (``architectures/init.py``), so random features compare with ours on equal terms;
  ``init="keep"``: as the module built them, under ``torch.manual_seed(seed)`` (the global RNG is
  restored afterwards); ``weights=FILE``: a state dict (or a dict holding one under ``state_dict``).
- **Identity.** ``identity`` (spec, the source file's sha256, options, init, seed, the state dict's
  sha256, input and layer settings) goes into the extraction's configuration key, so different modules,
  options or inits never share a feature set; ``arch_name`` (file or module stem, attribute and a short
  hash of the identity without the seed) names its folders.

Errors are :class:`CustomArchError` (a ``ValueError``) with one line that says what is wrong.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import sys
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from toolkit.provenance import sha256_file

from .init import init_weights

__all__ = ["CustomArchError", "CustomFrontend", "is_custom_spec", "parse_options", "load_factory",
           "add_arguments", "options_from_args",
           "LAYER_TYPES", "INPUT_KINDS", "INITS", "available_memory"]

INPUT_KINDS = {"waveform": "waveform", "spectrogram": "spectrogram", "log-mel": "spectrogram"}
INITS = ("study", "keep")
N_MELS = 96
SAMPLE_RATE = 12000
# Layer types the hooks can be put on, by short name; any other name matches a module's class name.
LAYER_TYPES = {
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "pool": (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
             nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
             nn.modules.pooling._LPPoolNd),
    "linear": (nn.Linear,),
}
DEFAULT_LAYER_TYPES = ("conv", "pool")
LAYER_READER = 2  # version of how hooked layers are read; in the identity, so older feature sets are redone
# Modules that act on a hooked layer's output in place of it: followed when they take it as input.
_FOLLOWERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.modules.dropout._DropoutNd,
              nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU,
              nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Hardtanh,
              nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink, nn.Threshold)


# Functions (torch.nn.functional, torch.*, Tensor methods) seen while an own module runs, by name: an
# activation, norm or dropout applied to a read layer's output is followed like its module form; a
# functional pooling is a layer of its own (layer type "pool"). Calls made inside a hooked or follower
# module (nn.MaxPool1d.forward calls F.max_pool1d) are left to that module's hook.
FOLLOWER_FUNCTIONS = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "selu_", "celu", "celu_",
    "gelu", "silu", "mish", "softplus", "hardtanh", "hardtanh_", "hardswish", "hardsigmoid", "sigmoid",
    "sigmoid_", "tanh", "tanh_", "prelu", "rrelu", "rrelu_", "logsigmoid", "threshold", "threshold_",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "dropout", "dropout1d", "dropout2d",
    "dropout3d", "alpha_dropout"})
POOL_FUNCTIONS = frozenset({
    f"{kind}_pool{d}d{suffix}" for kind in ("max", "avg", "adaptive_max", "adaptive_avg", "lp")
    for d in (1, 2, 3) for suffix in ("", "_with_indices")})


class _Functional(TorchFunctionMode):
    """Sees every torch function an own module calls in ``forward`` (``F.relu``, ``torch.max_pool1d``,
    ``x.relu()``), on real and on meta tensors, and hands the named ones to ``on_call``."""

    def __init__(self, on_call):
        super().__init__()
        self.on_call = on_call

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if name in FOLLOWER_FUNCTIONS or name in POOL_FUNCTIONS:
            self.on_call(name, args, out)
        return out


class CustomArchError(ValueError):
    """A user's front-end that cannot be used; the message says why in one line."""


def is_custom_spec(arch: str) -> bool:
    """``True`` for ``module.path:Attr`` and ``file.py:Attr`` specs (not ``hear:MODULE``)."""
    return ":" in arch and not arch.startswith("hear:")


def parse_options(items) -> dict:
    """Keyword options from a JSON object string or ``key=value`` strings (values parsed as JSON when
    they are, else kept as strings: ``filters=64`` -> 64, ``act=relu`` -> ``"relu"``)."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    if isinstance(items, str):
        items = [items]
    items = list(items)
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        try:
            value = json.loads(items[0])
        except json.JSONDecodeError as e:
            raise CustomArchError(f"--arch-options {items[0]!r} is not valid JSON ({e})") from e
        if not isinstance(value, dict):
            raise CustomArchError(f"--arch-options must be a JSON object, found {items[0]!r}")
        return value
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise CustomArchError(f"--arch-options: expected key=value or a JSON object, found {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def load_factory(spec: str):
    """The class or function ``spec`` names, and the path of the file it comes from.

    Raises :class:`CustomArchError` when the module cannot be imported (with the import's own reason),
    the file does not exist or the attribute is missing or not callable.
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise CustomArchError(f"--arch {spec!r}: expected module.path:Name or path/to/file.py:Name")
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise CustomArchError(f"--arch {spec!r}: file {path} does not exist")
        name = "randomcnn_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        try:
            mspec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mspec)
            sys.modules[name] = module  # dataclasses and pickling look classes up here
            mspec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise CustomArchError(f"--arch {spec!r}: cannot import {path}: {type(e).__name__}: {e}") from e
        source = path
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise CustomArchError(f"--arch {spec!r}: cannot import module {where!r}: {type(e).__name__}: "
                                  f"{e} (is it installed or under the current folder?)") from e
        source = getattr(module, "__file__", None)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CustomArchError(f"--arch {spec!r}: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CustomArchError(f"--arch {spec!r}: {attr} is a {type(obj).__name__}, not a class or function")
    return obj, source


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of ``/proc/meminfo``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]  # e.g. an RNN's (output, state)
    return None


def _held_bytes(outs, largest: int = 0) -> int:
    """Memory of one forward pass: the read-out layers' outputs (held until averaged) plus twice the
    largest output of any module (its input and output live together)."""
    sizes = [o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor)]
    return int(sum(sizes) + 2 * max([largest, *sizes]))


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.0f} MiB"


class CustomFrontend(nn.Module):
    """A user's ``nn.Module`` as a front-end; see the module docstring.

    Parameters
    ----------
    spec : str
        ``module.path:Attr`` or ``path/to/file.py:Attr``.
    options : dict or str or list of str, optional
        Keyword arguments of the factory (see :func:`parse_options`).
    seed : int
        Seed of the study's init (``init="study"``) or of the global RNG while building (``"keep"``).
    width : str
        The study width this front-end is compared at; passed to the factory when it takes ``width``.
    input : {"waveform", "spectrogram", "log-mel"} or None
        Input kind when the module does not declare ``input_kind``.
    init : {"study", "keep"}
        How random weights are made (ignored with ``weights``).
    weights : str or Path or None
        A state-dict file to load instead of random weights.
    layer_types : sequence of str or None
        Hook these layer types (``conv``, ``pool``, ``linear`` or class names) even when the module has
        ``extract_features``; None: ``extract_features`` when present, else ``conv`` and ``pool``.
    """

    def __init__(self, spec: str, options=None, seed: int = 0, width: str = "large", input=None,
                 init: str = "study", weights=None, layer_types=None):
        super().__init__()
        if init not in INITS:
            raise CustomArchError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
        self.spec, self.options, self.seed, self.width = spec, parse_options(options), int(seed), width
        self.init = "state-dict" if weights is not None else init
        self.weights_file = None if weights is None else str(weights)
        factory, source = load_factory(spec)
        kwargs = dict(self.options)
        for name, value in (("width", width), ("seed", self.seed)):
            if name not in kwargs and _accepts(factory, name):
                kwargs[name] = value
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                net = factory(**kwargs)
            except Exception as e:
                raise CustomArchError(f"--arch {spec}: building it with {kwargs} failed: "
                                      f"{type(e).__name__}: {e}") from e
        if not isinstance(net, nn.Module):
            raise CustomArchError(f"--arch {spec}: returned a {type(net).__name__}, expected a torch.nn.Module")
        self.net = net
        state_sha = None
        if weights is not None:
            state_sha = self._load_state(weights)
        elif init == "study":
            init_weights(self.net, self.seed)
        self.net.eval()

        declared = getattr(net, "input_kind", None)
        kind = declared if declared is not None else input
        if kind is None:
            raise CustomArchError(f"--arch {spec}: the module declares no input_kind; pass --input waveform "
                                  "or --input log-mel (or give the module input_kind = 'waveform' / "
                                  "'spectrogram')")
        if kind not in INPUT_KINDS:
            raise CustomArchError(f"--arch {spec}: input kind {kind!r} unknown; expected "
                                  f"{', '.join(INPUT_KINDS)}")
        self.input_kind = INPUT_KINDS[kind]
        self.sample_rate = int(getattr(net, "sample_rate", SAMPLE_RATE))
        if self.input_kind == "spectrogram" and self.sample_rate != SAMPLE_RATE:
            raise CustomArchError(f"--arch {spec}: a log-mel module takes the study's {SAMPLE_RATE} Hz "
                                  f"spectrogram; its sample_rate {self.sample_rate} applies to waveforms only")
        self.default_seconds = getattr(net, "input_seconds", None)
        if layer_types is not None:
            layer_types = [t.strip() for t in (layer_types.split(",") if isinstance(layer_types, str)
                                               else layer_types) if t.strip()]
        self.use_hooks = layer_types is not None or not callable(getattr(net, "extract_features", None))
        self.layer_types = tuple(layer_types or DEFAULT_LAYER_TYPES) if self.use_hooks else None
        self._probe_cache = {}

        source_sha = sha256_file(source) if source and Path(source).is_file() else None
        base = {"spec": spec, "source": str(source) if source else None, "source_sha256": source_sha,
                "options": self.options, "init": self.init, "state_dict_sha256": state_sha,
                "input_kind": self.input_kind, "sample_rate": self.sample_rate,
                "layer_types": list(self.layer_types) if self.layer_types else "extract_features",
                # 2: functional activations, norms and poolings in forward are seen (version 1 missed them)
                "layer_reader": LAYER_READER if self.use_hooks else None}
        short = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:8]
        stem = Path(source).stem if source else spec.rpartition(":")[0].rpartition(".")[2]
        attr = spec.rpartition(":")[2]
        self.arch_name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{stem}.{attr}") + f"-{short}"
        self.identity = dict(base, seed=self.seed, width=width)
        self.weights_name = "trained" if weights is not None else "random"

        shape = self._input_shape(self._length(None))
        names, channels = self._probe(shape)
        self.layers = list(zip(names, channels))
        self.feature_length = int(sum(channels))
        self.dims = {"identity": self.identity}

    # --------------------------------------------------------------------- building

    def _load_state(self, weights) -> str:
        path = Path(weights)
        if not path.is_file():
            raise CustomArchError(f"--weights {path}: no such file")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CustomArchError(f"--weights {path}: cannot be read as a state dict "
                                  f"({type(e).__name__}: {e})") from e
        state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict):
            raise CustomArchError(f"--weights {path}: expected a state dict (or a dict with 'state_dict'), "
                                  f"found {type(obj).__name__}")
        try:
            self.net.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise CustomArchError(f"--weights {path} does not fit {self.spec}: "
                                  f"{' '.join(s.strip() for s in first[:3])}") from e
        return sha256_file(path)

    def __deepcopy__(self, memo):
        # a plain copy of every attribute (``__reduce__`` below is for pickling only)
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def __reduce__(self):
        # rebuilt from its spec where it is unpickled (Ray workers): a class loaded from a file path
        # cannot be pickled by reference
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        keep = {k: getattr(self, k) for k in ("identity", "dims", "arch_name", "weights_name", "init",
                                               "weights_file")}
        return (_rebuild, (self.spec, self.options, self.seed, self.width, self.input_kind,
                           list(self.layer_types) if self.layer_types else None, state, keep))

    # --------------------------------------------------------------------- input

    def _length(self, input_seconds):
        seconds = input_seconds if input_seconds is not None else self.default_seconds
        if self.input_kind == "spectrogram":
            from audiodata import audio
            return audio.input_lengths(seconds)[1]
        if seconds is None:
            seconds = 350000 / SAMPLE_RATE
        return int(round(float(seconds) * self.sample_rate))

    def _input_shape(self, length):
        return (length, N_MELS) if self.input_kind == "spectrogram" else (length,)

    def input_spec(self, input_seconds=None, pad="repeat"):
        """What ``features.extract`` feeds this front-end (``InputSpec``, or ``RateSpec`` at a custom rate)."""
        from audiodata.decode import InputSpec
        from audiodata.decode import RateSpec
        length = self._length(input_seconds)
        if self.input_kind == "waveform" and self.sample_rate != SAMPLE_RATE:
            return RateSpec("waveform", length, pad, self.sample_rate)
        return InputSpec(self.input_kind, length, pad)

    # --------------------------------------------------------------------- layers

    def _hooked(self, module: nn.Module) -> bool:
        for t in self.layer_types:
            if t in LAYER_TYPES:
                if isinstance(module, LAYER_TYPES[t]):
                    return True
            elif type(module).__name__ == t:
                return True
        return False

    def _run_hooks(self, x, net=None):
        """``(names, outputs, bytes)``: the hooked layers' outputs (after their followers) and the memory
        they need (see :func:`_held_bytes`). Followers and poolings written as functions in ``forward``
        are seen too (:class:`_Functional`): ``F.relu(conv(x))`` is read after the ReLU, and
        ``F.max_pool1d`` is a pool layer named after the module that calls it (``max_pool1d`` at the top)."""
        net = self.net if net is None else net
        names = {m: n for n, m in net.named_modules()}
        slots, where, calls = [], {}, {}  # slots: [name, tensor]; where: id(tensor) -> slot index
        largest = [0]
        stack = []  # the modules running now, outermost first
        pools = "pool" in self.layer_types

        def read(key, name, out):
            calls[key] = calls.get(key, 0) + 1
            slots.append([name + ("" if calls[key] == 1 else f"#{calls[key]}"), out])
            where[id(out)] = len(slots) - 1

        def follow(inp, out):
            i = where.get(id(inp))
            if i is not None and slots[i][1] is inp:
                slots[i][1] = out
                where[id(out)] = i

        def pre(module, inputs):
            stack.append(module)

        def hook(module, inputs, output):
            if stack and stack[-1] is module:
                stack.pop()
            out = _first_tensor(output)
            if out is None:
                return
            largest[0] = max(largest[0], out.numel() * out.element_size())
            if self._hooked(module):
                read(module, names[module], out)
            elif isinstance(module, _FOLLOWERS) and inputs and isinstance(inputs[0], torch.Tensor):
                follow(inputs[0], out)

        def functional(name, args, output):
            if any(self._hooked(m) or isinstance(m, _FOLLOWERS) for m in stack):
                return  # inside nn.MaxPool1d, nn.ReLU ...: their own hooks see it
            out = _first_tensor(output)
            inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if out is None or inp is None:
                return
            if name in POOL_FUNCTIONS:
                if pools:
                    owner = names[stack[-1]] if stack else ""
                    label = name.replace("_with_indices", "")
                    read((owner, label), f"{owner}.{label}" if owner else label, out)
                    largest[0] = max(largest[0], out.numel() * out.element_size())
            else:
                follow(inp, out)

        handles = [m.register_forward_pre_hook(pre) for m in net.modules() if m is not net]
        handles += [m.register_forward_hook(hook) for m in net.modules() if m is not net]
        try:
            with _Functional(functional):
                net(x)
        finally:
            for h in handles:
                h.remove()
        outs = [s[1] for s in slots]
        return [s[0] for s in slots], outs, _held_bytes(outs, largest[0])

    def _outputs(self, x, net=None):
        net = self.net if net is None else net
        if self.use_hooks:
            names, outs, _ = self._run_hooks(x, net)
            return names, outs
        outs = net.extract_features(x)
        if isinstance(outs, torch.Tensor) or not isinstance(outs, (list, tuple)):
            raise CustomArchError(f"--arch {self.spec}: extract_features returned a {type(outs).__name__}; "
                                  "expected a list of tensors, one per layer, each (batch, channels, ...)")
        declared = getattr(net, "layers", None)
        if declared is not None and len(declared) == len(outs):
            names = [str(d[0]) if isinstance(d, (tuple, list)) else str(d) for d in declared]
        else:
            names = [f"layer{i + 1}" for i in range(len(outs))]
        return names, list(outs)

    def _check(self, names, outs, batch):
        if not outs:
            what = (f"no {' or '.join(self.layer_types)} layer ran (hooks found none; choose others with "
                    "--layer-types, or give the module extract_features)") if self.use_hooks \
                else "extract_features returned an empty list"
            raise CustomArchError(f"--arch {self.spec}: no layers to read: {what}")
        for name, o in zip(names, outs):
            if not isinstance(o, torch.Tensor) or o.dim() < 2 or o.shape[0] != batch:
                shape = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
                raise CustomArchError(f"--arch {self.spec}: layer {name!r} gave shape {shape} for a batch of "
                                      f"{batch}; expected (batch={batch}, channels, ...) with the batch first")

    def _probe(self, shape):
        """Layer names and channel counts from one clip of ``shape`` on the meta device (no arithmetic);
        on a real CPU clip when the module cannot run on meta tensors."""
        if shape in self._probe_cache:
            return self._probe_cache[shape][:2]
        x_meta = torch.zeros((1, *shape), device="meta")
        try:
            shadow = copy.deepcopy(self.net).to("meta")
            with torch.inference_mode():
                if self.use_hooks:
                    names, outs, leaf = self._run_hooks(x_meta, shadow)
                else:
                    names, outs = self._outputs(x_meta, shadow)
                    leaf = _held_bytes(outs)
        except CustomArchError:
            raise
        except Exception:
            x = torch.zeros((1, *shape))
            try:
                with torch.inference_mode():
                    if self.use_hooks:
                        names, outs, leaf = self._run_hooks(x)
                    else:
                        names, outs = self._outputs(x)
                        leaf = _held_bytes(outs)
            except CustomArchError:
                raise
            except Exception as e:
                raise CustomArchError(f"--arch {self.spec}: one clip of shape {(1, *shape)} "
                                      f"({self.input_kind}) fails: {type(e).__name__}: "
                                      f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
        self._check(names, outs, 1)
        channels = [int(o.shape[1]) for o in outs]
        self._probe_cache[shape] = (names, channels, leaf)
        return names, channels

    def clip_bytes(self, shape) -> int:
        """Bytes of layer outputs one clip of ``shape`` needs at once (see :func:`_held_bytes`)."""
        self._probe(shape)
        return int(self._probe_cache[shape][2])

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' outputs, each ``(batch, channels, ...)``, for ``x`` ``(batch, samples)`` or
        ``(batch, frames, 96)``."""
        expected = 2 if self.input_kind == "waveform" else 3
        if x.dim() != expected or (expected == 3 and x.shape[2] != N_MELS):
            raise CustomArchError(f"--arch {self.spec}: expected input "
                                  f"{'(batch, samples)' if expected == 2 else '(batch, frames, 96)'}, "
                                  f"found {tuple(x.shape)}")
        if x.device.type != "meta":
            need = x.shape[0] * self.clip_bytes(tuple(x.shape[1:]))
            free = available_memory() if x.device.type == "cpu" else None
            if free is not None and need > free:
                raise CustomArchError(self._too_big(need, free, x.shape[0]))
        try:
            names, outs = self._outputs(x)
        except RuntimeError as e:
            if "out of memory" in str(e).lower() or "can't allocate" in str(e).lower():
                need = x.shape[0] * self.clip_bytes(tuple(x.shape[1:]))
                raise CustomArchError(self._too_big(need, None, x.shape[0])) from e
            raise
        self._check(names, outs, x.shape[0])
        got = [(n, int(o.shape[1])) for n, o in zip(names, outs)]
        if got != self.layers:
            raise CustomArchError(f"--arch {self.spec}: layers {got[:4]}... differ from those of the probe "
                                  f"{self.layers[:4]}...; the layers must not depend on the input length")
        return outs

    def _too_big(self, need, free, batch):
        avail = f" but {_gb(free)} is available" if free is not None else " and the device ran out of memory"
        return (f"--arch {self.spec}: too big for memory: a batch of {batch} clips needs about {_gb(need)} of "
                f"layer outputs ({_gb(need / batch)} per clip){avail}; use --batch-size 1 or a shorter "
                "--input-seconds")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last read-out layer as ``(batch, channels, time)`` (what a back-end, or the HEAR timestamp
        embedding, consumes): axes after the first non-channel one are folded into the channels, a
        ``(batch, channels)`` output gets a time axis of 1."""
        h = self.extract_features(x)[-1]
        if h.dim() == 2:
            return h[:, :, None]
        if h.dim() > 3:  # (batch, C, T, F...) -> (batch, C * F..., T)
            h = h.movedim(2, -1)
            h = h.reshape(h.shape[0], -1, h.shape[-1])
        return h


    def backend_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the study's back-end consumes when this module is trained (``trained.train``): the module's
        own ``forward(x)`` where it gives ``(batch, channels, time)`` (as the front-ends of
        ``docs/adding.md`` do), else :meth:`forward` (the last read-out layer)."""
        try:
            out = self.net(x)
        except (NotImplementedError, TypeError):
            out = None
        if isinstance(out, torch.Tensor) and out.dim() == 3 and out.shape[0] == x.shape[0]:
            return out
        return self.forward(x)


def _rebuild(spec, options, seed, width, input_kind, layer_types, state, keep):
    """Unpickle a :class:`CustomFrontend`: build the module again and put its weights back."""
    m = CustomFrontend(spec, options=options, seed=seed, width=width, input=input_kind, init="keep",
                       layer_types=layer_types)
    m.net.load_state_dict(state)
    for k, v in keep.items():
        setattr(m, k, v)
    return m


# ---------------------------------------------------------------------------------------------
# the command-line flags of an own front-end, shared by `features.extract` and `python -m studies`

def add_arguments(p) -> None:
    """Add ``--arch-options``, ``--input``, ``--keep-init`` and ``--layer-types`` to argparse parser ``p``."""
    p.add_argument("--arch-options", nargs="+", default=None, metavar="OPT",
                   help="your own --arch: keyword options of its class or factory, as JSON "
                        "('{\"filters\": 64}') or key=value pairs")
    p.add_argument("--input", default=None, choices=["waveform", "log-mel"],
                   help="your own --arch, when the module declares no input_kind: 12 kHz waveform "
                        "(batch, samples) or the study's log-mel (batch, frames, 96)")
    p.add_argument("--keep-init", action="store_true",
                   help="your own --arch: keep the weights as the module builds them (under "
                        "torch.manual_seed(--seed)) instead of the study's init from --seed")
    p.add_argument("--layer-types", default=None, metavar="TYPES",
                   help="your own --arch: read these layers by forward hooks, comma-separated: conv, "
                        "pool, linear or class names (default: the module's extract_features when it "
                        "has one, else conv,pool)")


def options_from_args(p, a) -> dict | None:
    """The ``custom`` keywords of ``features.extract.build_frontend`` from parsed flags ``a``; None when no
    ``--arch`` is the user's own. Flags given without an own front-end, or options that do not parse, are
    a usage error of parser ``p`` (never silently ignored)."""
    given = [f for f, v in (("--arch-options", a.arch_options), ("--input", a.input),
                            ("--keep-init", a.keep_init), ("--layer-types", a.layer_types)) if v]
    if not any(is_custom_spec(x) for x in a.arch):
        if given:
            p.error(f"{', '.join(given)} apply to your own front-end (--arch pkg.module:Class or "
                    "path/to/file.py:factory); none of the --arch given is one")
        return None
    try:
        parse_options(a.arch_options)
    except CustomArchError as e:
        p.error(str(e))
    return {"options": a.arch_options, "input": a.input, "init": "keep" if a.keep_init else "study",
            "layer_types": a.layer_types}
