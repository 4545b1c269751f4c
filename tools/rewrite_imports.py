"""Move modules to their new packages and rewrite every import of them (issue 10's restructure).

Re-runnable: run it after merging a branch written against the old layout, and it moves any file still
at an old path (``git mv``, so history follows) and rewrites the imports, ``python -m`` commands and
dotted or slashed module paths of every tracked ``.py``, ``.md``, ``.toml``, ``Makefile`` and ``.ci``
file. A file already rewritten is left as it is, so a second run changes nothing::

    python tools/rewrite_imports.py            # move + rewrite, print what changed
    python tools/rewrite_imports.py --check    # exit 1 if anything would change (nothing written)

``MODULES`` maps an old module to its new one; ``NAMES`` maps single names of a module that was split
(``trained.checkpoint``'s reading side went to ``architectures.checkpoint``, the Ray connection helpers
to ``toolkit.ray``, ``RateSpec`` to ``audiodata.decode``).
"""
from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MODULES = {
    "features.provenance": "toolkit.provenance",
    "features.device": "toolkit.device",
    "features.audio": "audiodata.audio",
    "features.datasets": "audiodata.datasets",
    "features.synthetic": "audiodata.synthetic",
    "features.decode": "audiodata.decode",
    "trained.samplecnn": "architectures.samplecnn",
    "trained.backend": "architectures.backend",
    "classifiers.report": "report.build",
    "classifiers.report_load": "report.load",
    "classifiers.report_stats": "report.stats",
    "classifiers.report_figures": "report.figures",
    "classifiers.report_rank": "report.rank",
    "classifiers.published": "report.published",
}

# module -> {name: module that now holds it}; names not listed stay where they were
NAMES = {
    "trained.checkpoint": {n: "architectures.checkpoint" for n in (
        "KEYS", "IDENTITY_KEYS", "SAMPLECNN", "CheckpointError", "read_checkpoint", "build_frontend_from",
        "load_frontend", "load_model", "checkpoint_paths", "_load_state")},
    "features.ray_engine": {n: "toolkit.ray" for n in (
        "INSTALL_HINT", "RayUnavailable", "import_ray", "connect", "joblib_backend", "_check_reachable")},
    "features.hear_adapter": {"RateSpec": "audiodata.decode"},
    "features.extract": {"SAMPLECNN": "architectures.checkpoint", "DEFAULT_CACHE": "audiodata.decode"},
    "trained.train": {"resolve_device": "toolkit.device", "DEFAULT_CACHE": "audiodata.decode"},
}

# renamed functions: (module, old name) -> new name
RENAMES = {("architectures.backend", "init_weights"): "init_he_normal"}

TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".txt", ".yml", ".yaml"}
SKIP = {"tools/rewrite_imports.py", "tests/test_rewrite_imports.py"}  # they spell the old paths on purpose


def module_path(module: str) -> Path:
    return Path(*module.split(".")).with_suffix(".py")


def module_of(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [Path(p) for p in out.splitlines()]


def move_files(dry: bool) -> list[str]:
    """``git mv`` every file still at an old module path (and create the new packages' ``__init__``)."""
    done = []
    for old, new in MODULES.items():
        src, dst = REPO / module_path(old), REPO / module_path(new)
        if not src.exists() or dst.exists():
            continue
        done.append(f"git mv {module_path(old)} {module_path(new)}")
        if dry:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        init = dst.parent / "__init__.py"
        if not init.exists():
            init.write_text(f'"""The ``{dst.parent.name}`` package."""\n')
            subprocess.run(["git", "add", str(init)], cwd=REPO, check=True)
        subprocess.run(["git", "mv", str(src), str(dst)], cwd=REPO, check=True)
    return done


def _new_home(module: str, name: str | None) -> str:
    """Where ``module`` (or its attribute ``name``) lives now."""
    if name is not None and name in NAMES.get(module, {}):
        return NAMES[module][name]
    return MODULES.get(module, module)


def _resolve(node: ast.ImportFrom, old_self: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = old_self.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _alias(name: str, asname: str | None) -> str:
    return f"{name} as {asname}" if asname and asname != name else name


def _format(module: str, names: list[str], indent: str, width: int = 110) -> str:
    """``from module import a, b`` at ``indent``, wrapped in parentheses past ``width`` characters."""
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= width:
        return line
    head = f"{indent}from {module} import ("
    rows, cur = [], head
    for i, n in enumerate(names):
        piece = n + (", " if i < len(names) - 1 else ")")
        if len(cur) + len(piece.rstrip()) > width and cur.strip() not in ("", head.strip()):
            rows.append(cur.rstrip())
            cur = " " * len(head)
        cur += piece
    rows.append(cur)
    return "\n".join(rows)


def rewrite_imports(text: str, rel: Path) -> str:
    """Rewrite the ``import`` statements of one Python file (``rel`` relative to the repository)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    self_mod = module_of(rel)
    inverse = {v: k for k, v in MODULES.items()}
    old_self = inverse.get(self_mod, self_mod)
    moved_self = old_self != self_mod
    is_pkg = rel.name == "__init__.py"
    lines = text.splitlines(keepends=True)
    edits = []  # (first line index, last line index, new text)
    for node in ast.walk(tree):
        indent = " " * node.col_offset if isinstance(node, (ast.Import, ast.ImportFrom)) else ""
        if isinstance(node, ast.ImportFrom):
            src = _resolve(node, old_self, is_pkg)
            groups: dict[str, list[str]] = {}
            changed = moved_self and node.level > 0
            for a in node.names:
                full = f"{src}.{a.name}"
                if full in MODULES or full in inverse:  # `from pkg import module`
                    new = MODULES.get(full, full)
                    pkg, _, leaf = new.rpartition(".")
                    groups.setdefault(pkg, []).append(_alias(leaf, a.asname or a.name))
                    changed |= new != full
                    continue
                home = _new_home(src, a.name)
                name = RENAMES.get((home, a.name), a.name)
                groups.setdefault(home, []).append(_alias(name, a.asname or (a.name if name != a.name
                                                                               else None)))
                changed |= home != src or name != a.name
            if not changed:
                continue
            if all(m == src for m in groups) and not moved_self and node.level:
                continue
            new = "\n".join(_format(m, ns, indent if i == 0 else " " * node.col_offset)
                            for i, (m, ns) in enumerate(groups.items()))
            edits.append((node.lineno - 1, node.end_lineno - 1, node.col_offset, new,
                          node.end_col_offset))
        elif isinstance(node, ast.Import):
            parts, changed = [], False
            for a in node.names:
                new = a.name
                for old in sorted(MODULES, key=len, reverse=True):
                    if a.name == old or a.name.startswith(old + "."):
                        new = MODULES[old] + a.name[len(old):]
                        break
                changed |= new != a.name
                parts.append(_alias(new, a.asname or (a.name if new != a.name and "." not in a.name
                                                      else a.asname)))
            if changed:
                edits.append((node.lineno - 1, node.end_lineno - 1, node.col_offset,
                              f"{' ' * node.col_offset}import {', '.join(parts)}", node.end_col_offset))
    for first, last, col, new, end_col in sorted(edits, reverse=True):
        head = lines[first][:col]
        tail = lines[last]
        end = tail[len(tail.rstrip("\n")):] or "\n"
        rest = tail[end_col:].rstrip("\n")  # a trailing comment (`# noqa`, a reason) stays on the last line
        if head.strip() or rest.strip()[:1] not in ("", "#"):  # `if x: import y`: left for a person
            continue
        lines[first:last + 1] = [new.replace(" " * col, head, 1) + rest + end]
    return "".join(lines)


def rewrite_paths(text: str) -> str:
    """Dotted (``features.audio``) and slashed (``features/audio.py``) old module paths -> new ones."""
    text = re.sub(r"-m classifiers\.report(?![\w.])", "-m report", text)
    for old in sorted(MODULES, key=len, reverse=True):
        new = MODULES[old]
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w])", new, text)
        text = re.sub(rf"(?<![\w/]){re.escape(str(module_path(old)))}", str(module_path(new)), text)
    return text


def rewrite_file(rel: Path) -> str | None:
    path = REPO / rel
    text = path.read_text()
    new = text
    if rel.suffix == ".py":
        new = rewrite_imports(new, rel)
    new = rewrite_paths(new)
    return None if new == text else new


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only say whether anything would change")
    args = p.parse_args(argv)
    moves = move_files(dry=args.check)
    for m in moves:
        print(m)
    changed = []
    for rel in tracked_files():
        if str(rel) in SKIP or not (REPO / rel).is_file():
            continue
        if rel.suffix in TEXT_SUFFIXES or rel.name == "Makefile" or rel.parts[0] == ".ci":
            new = rewrite_file(rel)
            if new is not None:
                changed.append(str(rel))
                if not args.check:
                    (REPO / rel).write_text(new)
    for c in changed:
        print(f"rewrote {c}")
    if args.check:
        return 1 if (moves or changed) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
