"""The package follows its data flow: imports go downward only (search.LAYERS), with no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import search

PACKAGE = Path(search.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``search.…`` module a file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("search."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("search"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")).exists()
                         or (PACKAGE.parent / (f"{node.module}.{alias.name}".replace(".", "/") + ".py")).exists())
    return found


def layer_of(module: str) -> int | None:
    """The layer of ``search.<top>…`` (None for ``search`` itself: the version and the layer list)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return next(index for index, names in enumerate(search.LAYERS) if parts[1] in names)


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_package_has_a_layer():
    tops = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.rglob("*.py")}
    assert tops - {"__init__"} <= set().union(*search.LAYERS)


def test_imports_go_downward_only():
    upward = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
              if layer_of(module) is not None and layer_of(target) is not None and layer_of(target) > layer_of(module)]
    assert upward == []


def test_no_import_cycles():
    imports = graph()
    edges = {module: {target for target in targets if target in imports} for module, targets in imports.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
