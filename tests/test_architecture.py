"""The package's imports go one way (docs/architecture.rst): faces -> middle -> leaves, no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import supervisor_littleboss

PACKAGE = Path(supervisor_littleboss.__file__).parent
LEAVES = {"__init__", "program", "serve", "config", "sockets", "notify", "ticker", "state", "validate", "orphans",
          "check", "contract", "faults", "events", "outcome", "glue", "handover", "preflight", "metrics",
          "connections", "child", "wakeup", "readpoll"}
MIDDLE = {"binaries", "lifecycle", "restart", "process", "group", "upgrade"}
FACES = {"plugin", "rpcinterface", "controller", "web", "exporter"}
# the RPC interface's factory installs the plugin and serves the page: the one face that knows others
FACE_TO_FACE = {("rpcinterface", "plugin"), ("rpcinterface", "web"), ("rpcinterface", "exporter")}


def imports(module: str) -> set[str]:
    """The package's modules ``module`` imports (at the top or inside a function)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module] if node.module else  # `from . import x`: a module, or a name of __init__
                         [a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("supervisor_littleboss."):
            found.add(node.module.split(".")[1])
    return {name.split(".")[0] for name in found} - {"example"}


GRAPH = {path.stem: imports(path.stem) for path in PACKAGE.glob("*.py")}


def test_every_module_has_a_layer():
    assert set(GRAPH) == LEAVES | MIDDLE | FACES


def test_no_module_imports_one_above_it():
    wrong = [(module, imported) for module, imported_all in GRAPH.items() for imported in imported_all
             if (module in LEAVES and imported not in LEAVES)
             or (module in MIDDLE and imported in FACES)
             or (module in FACES and imported in FACES and (module, imported) not in FACE_TO_FACE)]
    assert wrong == []


def test_there_is_no_import_cycle():
    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        for imported in GRAPH[module]:
            visit(imported, (*path, module))

    for module in GRAPH:
        visit(module, ())
