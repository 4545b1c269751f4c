"""HEAR-API modules, one per front-end: ``hear.randomcnn_<arch>`` (``-`` and ``+`` become ``_``).

Each exposes ``load_model``, ``get_scene_embeddings`` and ``get_timestamp_embeddings`` as the HEAR
benchmark's evaluation kits expect (see ``hear/common.py`` for the choices made)::

    import hear.randomcnn_vgg as m
    model = m.load_model()                       # or load_model("seed=1,width=small") / a checkpoint
    emb = m.get_scene_embeddings(audio, model)   # audio: (n_sounds, n_samples) at model.sample_rate

The modules are made from ``architectures.FRONTENDS`` (one row per front-end) by a small import hook,
so a new front-end gets its HEAR module with no file here. ``MODULES`` maps architecture names to module
names, e.g. for ``python -m features.extract --arch hear:hear.randomcnn_vgg``.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from architectures import FRONTENDS

__all__ = ["MODULES"]

MODULES = {name: f.hear_module for name, f in FRONTENDS.items()}
_ARCH_OF = {module: name for name, module in MODULES.items()}


class _FrontEndModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``hear.randomcnn_<arch>`` on import: three functions bound to ``arch`` (``hear.common``)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _ARCH_OF:
            return importlib.util.spec_from_loader(fullname, self, origin="architectures.FRONTENDS")
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        from hear.common import module_api
        arch = _ARCH_OF[module.__name__]
        module.ARCH = arch
        module.__doc__ = (f"HEAR API module for the {arch} front-end (random weights by default); "
                          "see ``hear`` and ``hear.common``.")
        module.load_model, module.get_scene_embeddings, module.get_timestamp_embeddings = module_api(arch)
        module.__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]


if not any(isinstance(f, _FrontEndModules) for f in sys.meta_path):
    sys.meta_path.append(_FrontEndModules())
