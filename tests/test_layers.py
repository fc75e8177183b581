"""The floors of DESIGN.md hold: imports run one way, no cycles, no plotting below figures.

``errors``/``_util`` (and the small ROI type, ``rois``) <- ``catalog``, ``analyses``
(siblings: neither imports the other) <- ``accessors`` <- ``figures`` <-
``workflows``, ``live`` (siblings too) <- ``apps``, ``cli``; ``catalog``,
``analyses`` and ``live`` import no plotting (nor figures or pages) at module
level. Read from the source with `ast` (every import, also those inside
functions, which are dependencies all the same), so a violation is caught
whether or not a test happens to import it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import beamcat

ROOT = Path(beamcat.__file__).parent
#: first name under beamcat -> floor; a higher floor may import a lower one, never the reverse
FLOORS = {
    "errors": 0,
    "_util": 0,
    "rois": 0,
    "catalog": 1,
    "analyses": 1,
    "accessors": 2,
    "figures": 3,
    "workflows": 4,
    "live": 4,
    "apps": 5,
    "cli": 5,
}
#: floor-mates that must not import each other (DESIGN.md: "siblings: neither imports the other")
SIBLINGS = ({"catalog", "analyses"}, {"workflows", "live"})
#: what no module of these packages imports at module level (directly or through another)
PLOTTING = ("matplotlib", "panel", "bokeh", "holoviews")
NO_PLOTTING = ("catalog", "analyses", "live")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(path: Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every import in a file (or only the module-level ones)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in _walk(tree, top_level_only):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            # `from beamcat.figures import radiography`: the submodule is what is imported
            found += [
                (f"{node.module}.{a.name}", node.lineno)
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            ]
    return found


def _walk(node: ast.AST, top_level_only: bool):
    """All nodes under `node`; with `top_level_only`, not those inside functions."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not (top_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)):
            yield from _walk(child, top_level_only)


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if parts[0] == "beamcat" and len(parts) > 1 else None


def test_every_module_has_a_floor():
    unknown = [m for m in MODULES if m != "beamcat" and _floor(m) is None]
    assert not unknown, f"modules outside DESIGN.md's floors: {unknown}"


def test_imports_run_down_the_floors():
    wrong = []
    for name, path in MODULES.items():
        mine = _floor(name)
        if mine is None:  # beamcat/__init__.py: the package's front door
            continue
        package = name.split(".")[1]
        for target, line in _imports(path):
            if target == "beamcat":
                wrong.append(f"{name}:{line} imports the beamcat package itself")
                continue
            theirs = _floor(target)
            if theirs is None:
                continue
            other = target.split(".")[1]
            if theirs > mine or {package, other} in SIBLINGS:
                wrong.append(f"{name}:{line} (floor {mine}) imports {target} (floor {theirs})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    # module-level imports between beamcat modules: a cycle makes import order matter
    graph = {
        name: {
            t
            for t, _ in _imports(path, top_level_only=True)
            if t in MODULES and t != name and not name.startswith(f"{t}.")
        }
        for name, path in MODULES.items()
    }
    cycles = _cycles(graph)
    assert not cycles, cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("package", NO_PLOTTING)
def test_no_plotting_imported_at_module_level(package):
    wrong = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        if name.startswith(f"beamcat.{package}")
        for target, line in _imports(path, top_level_only=True)
        if target.split(".")[0] in PLOTTING
        or target.split(".")[:2] in (["beamcat", "figures"], ["beamcat", "apps"])
    ]
    assert not wrong, "\n".join(wrong)


def test_importing_the_lower_floors_loads_no_plotting():
    # what the static test cannot see: a dependency that pulls plotting in on import
    modules = [m for m in MODULES if m.split(".")[1:2] and m.split(".")[1] in NO_PLOTTING]
    modules = [m for m in modules if "dranspose" not in m]  # the optional extra: test_dranspose
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(PLOTTING)!r}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
