"""The runtime's modules import one another one way only: each from the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "treadle" / "runtime"

# Top first. A module may import the runtime modules of the layers below its own, not those
# of its own layer or above: the facade, then one round, then the parts that own state.
LAYERS: list[set[str]] = [
    {"__init__", "loading"},
    {"worker"},
    {"registration", "owners"},
    {"dispatcher"},
    {"starts"},
    {"engine"},
    {"claims"},
    {"commits", "observe", "outcomes"},
    {"prepare"},
    {"detours"},
    {"pending"},
    {
        "cache",
        "inflight",
        "wakeups",
        "remote",
        "activities",
        "registry",
        "options",
        "dapr_options",
        "apps",
        "metrics",
        "logs",
        "chores",
        "watchdog",
        "poison",
        "queue_limits",
        "threads",
    },
    {"codeless_turns"},
    {"turns", "remote_history", "remote_workers", "tracing"},
    {"tracing_spans"},
    {"span_status"},
]


def _layer_of(module: str) -> int:
    for depth, layer in enumerate(LAYERS):
        if module in layer:
            return depth
    raise AssertionError(f"treadle/runtime/{module}.py is in no layer of LAYERS: add it there")


def runtime_imports(source: str) -> set[str]:
    """The ``treadle.runtime`` modules that ``source`` imports, by their short names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [node.module]
            if node.module == "treadle.runtime":
                names += [f"treadle.runtime.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["treadle", "runtime"] and len(parts) > 2:
                found.add(parts[2])
    return found


MODULES = sorted(RUNTIME.glob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        _layer_of(path.stem)


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_module_imports_only_lower_layers(path: Path) -> None:
    depth = _layer_of(path.stem)
    wrong = sorted(m for m in runtime_imports(path.read_text()) if _layer_of(m) <= depth)
    assert wrong == [], (
        f"treadle/runtime/{path.name} imports {wrong}, which are not below it in LAYERS"
    )


def test_the_check_sees_imports_of_the_same_or_a_higher_layer() -> None:
    source = "from treadle.runtime.engine import Engine\nimport treadle.runtime.cache\n"
    assert runtime_imports(source) == {"engine", "cache"}
    assert runtime_imports("from treadle.runtime import worker") == {"worker"}
    assert _layer_of("engine") < _layer_of("cache")
