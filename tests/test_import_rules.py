"""The tree's rooms import only what their opening docstrings allow, and no module is part of an
import cycle (imports inside functions count: a lazy import is a dependency all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("activities", "api", "devhost", "forecast_job", "orchestrators", "restyle", "scoring_job", "tools")
# room -> module prefixes it must never import (activities/__init__.py states the rules)
FORBIDDEN = {
    "activities.media": ("activities.compute", "activities.many_models"),
    "activities.compute": ("activities.media", "activities.many_models"),
    "activities.many_models": ("activities.media",),
    # uploaded alone as Azure ML job code: they see nothing of the app
    "scoring_job": ("activities", "api", "devhost", "forecast_job", "orchestrators", "restyle", "tools"),
    "forecast_job": ("activities", "api", "devhost", "orchestrators", "restyle", "scoring_job", "tools"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules `path` imports, anywhere in it, resolved to the deepest module that exists."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {_module_name(path) for path in files}
    return {_module_name(path): _imports(path, modules) for path in files}


def test_rooms_import_only_what_they_may(graph):
    broken = [f"{module} imports {target}" for module, targets in graph.items() for target in targets
              for room, forbidden in FORBIDDEN.items()
              if (module == room or module.startswith(room + ".")) and target.startswith(forbidden)]
    assert broken == []


def test_no_module_is_part_of_an_import_cycle(graph):
    """Tarjan's strongly connected components over the module graph: every component is one module.
    A package's __init__ is not counted as importing its own submodules (Python loads it first)."""
    edges = {module: {t for t in targets if not module.startswith(t + ".") and not t.startswith(module + ".")}
             for module, targets in graph.items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert cycles == []


def test_every_room_says_what_it_holds_and_may_import():
    for room in ("activities", "activities/media", "activities/compute", "activities/many_models"):
        doc = ast.get_docstring(ast.parse((ROOT / room / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc.lower(), room
