"""The package graph is a chain (``docs/architecture.md``): no package imports one above it, and no
module imports itself back through others.

Every import of every module is read with ``ast``, those inside functions included (an import moved
into a function to dodge a cycle is still a cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("toolkit", "audiodata", "architectures", "features", "classifiers", "report")
TOP = ("trained", "studies", "hear", "randomcnn", "benchmarks", "tools", "tests")  # may import any layer
RANK = {name: i for i, name in enumerate(LAYERS)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in LAYERS + TOP:
        for path in sorted((REPO / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """``(module, line)`` of every project module that ``path`` (module ``name``) imports, anywhere."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import module` imports the module; `from module import name` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` of a non-module attribute: its module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.append((t, node.lineno))
    return found


def _graph():
    mods = _modules()
    known = set(mods)
    return mods, {name: imports_of(path, name, known) for name, path in mods.items()}


def upward_imports(graph) -> list[str]:
    bad = []
    for name, targets in graph.items():
        mine = name.split(".")[0]
        if mine not in RANK:
            continue
        for t, line in targets:
            theirs = t.split(".")[0]
            if theirs in TOP or RANK.get(theirs, -1) > RANK[mine]:
                bad.append(f"{name}:{line} imports {t} (layer {theirs} is above {mine})")
    return bad


def cycles(graph) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from its smallest module)."""
    edges = {n: sorted({t for t, _ in ts}) for n, ts in graph.items()}
    found, state, stack = set(), {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in edges.get(n, ()):
            if state.get(m) == "open":
                cyc = stack[stack.index(m):]
                i = cyc.index(min(cyc))
                found.add(tuple(cyc[i:] + cyc[:i]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return [list(c) for c in sorted(found)]


def test_no_package_imports_a_layer_above_it():
    _, graph = _graph()
    assert upward_imports(graph) == []


def test_no_import_cycles_between_modules():
    _, graph = _graph()
    assert cycles(graph) == []


def test_the_checks_catch_an_upward_import_and_a_cycle_inside_a_function(tmp_path):
    """The checker itself: an import hidden in a function counts, and both faults are reported."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    import features.b\n")
    b.write_text("from toolkit import a\n")
    known = {"toolkit.a", "features.b"}
    graph = {"toolkit.a": imports_of(a, "toolkit.a", known), "features.b": imports_of(b, "features.b", known)}
    assert graph["toolkit.a"] == [("features.b", 2)]
    assert upward_imports(graph) == ["toolkit.a:2 imports features.b (layer features is above toolkit)"]
    assert cycles(graph) == [["features.b", "toolkit.a"]]


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_a_package_that_imports(layer):
    assert (REPO / layer / "__init__.py").is_file()
