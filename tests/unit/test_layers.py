"""The package layering drawn in docs/architecture.md, checked on the source with ``ast``.

A package may import only packages of an earlier layer (or itself); only ``engine/`` imports
``llama_cpp``; nothing outside ``engine/`` imports the worker process's entry module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import slmnode

SRC = Path(slmnode.__file__).parent
# docs/architecture.md: errors → config → hardware, catalog → planner → engine → chat → server, bench, lab
# → router → supervisor, doctor → cli
LAYERS: list[set[str]] = [
    {"errors", "__init__"},
    {"config", "migrations", "corpus", "plotting"},
    {"hardware", "catalog"},
    {"planner"},
    {"engine"},
    {"chat"},
    {"server", "bench", "lab"},
    {"router"},
    {"supervisor", "doctor"},
    {"cli"},
    {"__main__"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, deferred and TYPE_CHECKING ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)]
            if node.module == "slmnode":
                out += [(node.lineno, f"slmnode.{a.name}") for a in node.names]
    return out


FILES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    assert {_package(p) for p in FILES} <= set(LAYER)


def test_packages_import_only_earlier_layers() -> None:
    wrong = []
    for path in FILES:
        src = _package(path)
        for line, mod in imports(path):
            parts = mod.split(".")
            if parts[0] != "slmnode" or len(parts) < 2 or parts[1] == src or parts[1] == "__version__":
                continue
            if LAYER[parts[1]] >= LAYER[src]:
                wrong.append(f"{path.relative_to(SRC.parent)}:{line} ({src}) imports {mod}")
    assert wrong == []


@pytest.mark.parametrize("forbidden", ["llama_cpp", "slmnode.engine.worker"])
def test_llama_cpp_and_the_worker_module_stay_in_the_engine(forbidden: str) -> None:
    users = [f"{p.relative_to(SRC.parent)}:{line}" for p in FILES for line, mod in imports(p)
             if (mod == forbidden or mod.startswith(forbidden + ".")) and _package(p) != "engine"]
    assert users == []


def test_http_side_of_the_engine_does_not_import_the_worker() -> None:
    for name in ("client.py", "settings.py", "protocol.py", "chat_format.py", "tools.py"):
        mods = {m for _, m in imports(SRC / "engine" / name)}
        assert "slmnode.engine.worker" not in mods and "llama_cpp" not in mods, name
