"""Imports point one way, through the layers of the treadle package, with no loops.

The layers, highest first. A module may import modules of its own layer and of the layers
its layer lists as below it, and never one above, not even lazily inside a function or for
annotations only (every import statement counts):

    facade    treadle/__init__.py, treadle/__main__.py: the public API, may import anything
    cli       treadle/cli: argument parsing; it starts the server (``treadle serve``)
    server    treadle/server (with its generated treadle/server/_proto)
    testing   treadle/testing: the replayer and the test environment (runtime and client)
    client    treadle/client, treadle/aio   } side by side: neither imports the other
    runtime   treadle/runtime               }
    store     treadle/store
    core      treadle/core: pure, no I/O, clock, threads or randomness
    clock     treadle/clock.py: the standard library only (for stores, runtime and client)
    errors    treadle/errors.py: the standard library only

Within one package (the modules of one directory, e.g. treadle/runtime/*) the imports that
run (at import time or later, inside functions) form no loop. Imports under
``if TYPE_CHECKING:`` take part in the layering but not in that check: they never run, and
they are how two modules that name each other's types stay apart.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TREADLE = Path(__file__).resolve().parents[2] / "treadle"

LAYERS: dict[str, frozenset[str]] = {
    # layer: the layers it may import besides its own
    "errors": frozenset(),
    "clock": frozenset(),
    "core": frozenset({"errors"}),
    "store": frozenset({"core", "clock", "errors"}),
    "client": frozenset({"store", "core", "clock", "errors"}),
    "runtime": frozenset({"store", "core", "clock", "errors"}),
    "server": frozenset({"client", "runtime", "store", "core", "clock", "errors"}),
    "testing": frozenset({"client", "runtime", "store", "core", "clock", "errors"}),
    "cli": frozenset(
        {"server", "testing", "client", "runtime", "store", "core", "clock", "errors"}
    ),
    "facade": frozenset(
        {"cli", "server", "testing", "client", "runtime", "store", "core", "clock", "errors"}
    ),
}
STDLIB_ONLY = frozenset({"errors", "clock"})
PLACES: dict[str, str] = {
    # a module, or a package and all it holds: its layer
    "treadle": "facade",  # the package's __init__ alone
    "treadle.__main__": "facade",
    "treadle.cli": "cli",
    "treadle.cli_schedules": "cli",
    "treadle.cli_queues": "cli",
    "treadle.testing": "testing",
    "treadle.server": "server",
    "treadle.client": "client",
    "treadle.aio": "client",  # the asyncio client
    "treadle.runtime": "runtime",
    "treadle.store": "store",
    "treadle.core": "core",
    "treadle.clock": "clock",
    "treadle.errors": "errors",
}

CORE_FORBIDDEN = frozenset(
    {"sqlite3", "psycopg", "grpc", "socket", "threading", "time", "random", "asyncio"}
)
"""What the pure core must not import, besides any treadle layer above it."""

KNOWN_VIOLATIONS: frozenset[str] = frozenset()
"""Violations present on main while the code is being moved; each is to be fixed, and then
removed from here (a known violation that no longer occurs fails the suite)."""


def layer_of(module: str) -> str | None:
    """The layer of a treadle module, or None if it belongs to none."""
    if module in PLACES:
        return PLACES[module]
    parts = module.split(".")
    for end in range(len(parts) - 1, 1, -1):
        place = ".".join(parts[:end])
        if place in PLACES:
            return PLACES[place]
    return None


def module_name(path: Path) -> str:
    """``treadle/store/base.py`` -> ``treadle.store.base``; a package is its __init__."""
    parts = path.relative_to(TREADLE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    """Every module of the treadle package, by name."""
    return {module_name(p): p for p in sorted(TREADLE.rglob("*.py"))}


MODULES = source_files()


@dataclass(frozen=True)
class Import:
    """One module named by an import statement."""

    target: str
    """The treadle module imported (the longest known module the name starts with), or the
    top-level name of a module from outside treadle."""
    line: int
    type_checking: bool
    """Whether the statement sits under ``if TYPE_CHECKING:`` (so it never runs)."""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(
    node: ast.AST, type_checking: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node``, however deeply nested, with whether it sits
    under ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, type_checking
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _statements(stmt, True)
        for stmt in node.orelse:
            yield from _statements(stmt, type_checking)
        return
    for child in ast.iter_child_nodes(node):
        yield from _statements(child, type_checking)


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The treadle module ``name`` (a module, or a name inside one) lives in."""
    if name.split(".")[0] != "treadle":
        return name.split(".")[0]
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(
    source: str, module: str, *, is_package: bool = False, known: dict[str, Path] = MODULES
) -> list[Import]:
    """What ``source`` (the text of ``module``) imports, relative imports resolved.

    ``from a import b`` names ``a.b`` if that is a module, else ``a``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node, type_checking in _statements(ast.parse(source)):
        names: list[str]
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        found += [Import(_resolve(n, known), node.lineno, type_checking) for n in names]
    return found


def _imports(module: str) -> list[Import]:
    path = MODULES[module]
    return imports_of(path.read_text(), module, is_package=path.name == "__init__.py")


def layer_violations(module: str, imports: list[Import]) -> dict[str, int]:
    """Each import of ``module`` that goes against the layers, as its message and line."""
    layer = layer_of(module)
    assert layer is not None, f"{module} belongs to no layer: give it one in LAYERS"
    found: dict[str, int] = {}
    for imp in imports:
        target = imp.target
        if target.split(".")[0] != "treadle":
            if layer in STDLIB_ONLY and target not in sys.stdlib_module_names:
                message = f"{module} imports {target} (layer {layer} imports only the stdlib)"
                found.setdefault(message, imp.line)
            if layer == "core" and target in CORE_FORBIDDEN:
                found.setdefault(f"{module} imports {target} (the core is pure)", imp.line)
            continue
        other = layer_of(target)
        if other is None:
            other = "facade" if target == "treadle" else f"of no layer ({target})"
        if other != layer and other not in LAYERS[layer]:
            message = f"{module} imports {target} (layer {layer} may not import layer {other})"
            found.setdefault(message, imp.line)
    return found


def _all_violations() -> dict[str, str]:
    """Every violation in the package, with where it is (``path:line``)."""
    found: dict[str, str] = {}
    for module, path in MODULES.items():
        for message, line in layer_violations(module, _imports(module)).items():
            found[message] = f"{path.relative_to(TREADLE.parent)}:{line}"
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops of ``graph`` (module -> modules it imports): one per strongly
    connected component of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph(package: Path) -> dict[str, set[str]]:
    """The imports that run among the modules of one package directory."""
    members = {m for m, p in MODULES.items() if p.parent == package}
    return {
        m: {i.target for i in _imports(m) if i.target in members and not i.type_checking}
        for m in sorted(members)
    }


PACKAGES = sorted({p.parent for p in MODULES.values()})


# ---- the package as it is ----------------------------------------------------------------


def test_every_module_is_found_and_has_a_layer() -> None:
    expected = {"treadle", "treadle.errors", "treadle.core.replay", "treadle.store.base"}
    assert expected <= set(MODULES)
    assert {"facade", "cli", "server", "client", "runtime", "store", "core", "errors"} <= {
        layer_of(m) for m in MODULES
    }
    assert [m for m in MODULES if layer_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_its_own_and_lower_layers(module: str) -> None:
    found = layer_violations(module, _imports(module))
    unexpected = sorted(set(found) - KNOWN_VIOLATIONS)
    where = MODULES[module].relative_to(TREADLE.parent)
    assert unexpected == [], "\n".join(f"{where}:{found[v]}: {v}" for v in unexpected)


def test_known_violations_still_occur() -> None:
    """A known violation that was fixed must leave KNOWN_VIOLATIONS."""
    assert sorted(KNOWN_VIOLATIONS - set(_all_violations())) == []


@pytest.mark.parametrize(
    "package", PACKAGES, ids=[str(p.relative_to(TREADLE.parent)) for p in PACKAGES]
)
def test_no_import_cycle_within_a_package(package: Path) -> None:
    loops = cycles(package_graph(package))
    assert loops == [], "import loops: " + "; ".join(" <-> ".join(c) for c in loops)


# ---- the checker itself ------------------------------------------------------------------

FAKE = {
    name: Path(name)
    for name in (
        "treadle",
        "treadle.errors",
        "treadle.core",
        "treadle.core.tasks",
        "treadle.core.history",
        "treadle.store",
        "treadle.store.base",
        "treadle.client",
        "treadle.runtime",
        "treadle.runtime.cache",
        "treadle.server",
        "treadle.cli",
        "treadle.clock",
    )
}


def _check(source: str, module: str, *, is_package: bool = False) -> list[str]:
    return sorted(
        layer_violations(module, imports_of(source, module, is_package=is_package, known=FAKE))
    )


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import sqlite3 as db",
        "from threading import Lock",
        "import asyncio.events",
        "from psycopg.rows import dict_row",
        "import grpc",
        "from random import random",
        "import socket",
        "from treadle.store.base import Store",
        "from treadle import runtime",
        "from treadle.client import WorkflowClient",
        "from treadle import WorkflowRuntime",
        "import treadle",
        "from .. import store",
        "from ..runtime import cache",
        "def f():\n    import time\n",
        "def f():\n    from treadle.store import base\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from treadle.store import base\n",
    ],
)
def test_the_checker_catches_what_the_core_must_not_import(source: str) -> None:
    assert _check(source, "treadle.core.replay") != []


@pytest.mark.parametrize(
    "source",
    [
        "import datetime, logging, traceback",
        "from treadle.errors import FailureDetails",
        "from treadle.core.tasks import Task",
        "from . import history",
        "from .history import EPOCH",
        "import orjson",
        "import timeit",
        "from treadle import errors",
    ],
)
def test_the_checker_allows_pure_imports_in_the_core(source: str) -> None:
    assert _check(source, "treadle.core.replay") == []


def test_the_checker_names_module_target_and_layers() -> None:
    source = "def later():\n    from treadle.client import WorkflowClient\n"
    assert _check(source, "treadle.runtime.cache") == [
        "treadle.runtime.cache imports treadle.client (layer runtime may not import layer client)"
    ]
    assert _check("from treadle import cli", "treadle.server") == [
        "treadle.server imports treadle.cli (layer server may not import layer cli)"
    ]
    assert _check("from . import WorkflowRuntime", "treadle.store", is_package=True) == []
    assert _check("from .. import WorkflowRuntime", "treadle.store.base") == [
        "treadle.store.base imports treadle (layer store may not import layer facade)"
    ]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("treadle.cli", "from treadle.server import serve\nfrom treadle import runtime"),
        ("treadle.server", "from treadle import client, runtime, store"),
        ("treadle.client", "from treadle.store import base\nfrom treadle.core import tasks"),
        ("treadle.runtime.cache", "from treadle.store.base import Store"),
        ("treadle.store.base", "from treadle.core.history import X\nimport psycopg, sqlite3"),
        ("treadle", "from treadle.cli import main\nfrom treadle.runtime import WorkflowRuntime"),
        ("treadle.errors", "from __future__ import annotations\nimport traceback"),
        ("treadle.clock", "import threading, time"),
        ("treadle.store.base", "from treadle.clock import Clock"),
    ],
)
def test_the_checker_allows_imports_downwards(module: str, source: str) -> None:
    assert _check(source, module) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("treadle.runtime.cache", "from treadle.client import WorkflowClient"),
        ("treadle.client", "from treadle.runtime import WorkflowRuntime"),
        ("treadle.client", "from treadle.server import http"),
        ("treadle.store.base", "from treadle.runtime.cache import Cache"),
        ("treadle.errors", "import orjson"),
        ("treadle.errors", "from treadle.core import history"),
        ("treadle.server", "from treadle.cli import main"),
        ("treadle.clock", "from treadle.errors import StoreError"),
        ("treadle.clock", "import psycopg"),
        ("treadle.core.replay", "from treadle.clock import Clock"),
    ],
)
def test_the_checker_refuses_imports_upwards_and_sideways(module: str, source: str) -> None:
    assert _check(source, module) != []


def test_the_cycle_finder() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b"], ["c", "d"]]


def test_type_checking_imports_are_told_apart() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "if TYPE_CHECKING:\n"
        "    from treadle.core import tasks\n"
        "else:\n"
        "    import json\n"
        "def f():\n"
        "    from treadle.core import history\n"
    )
    got = {(i.target, i.type_checking) for i in imports_of(source, "treadle.core.x", known=FAKE)}
    assert got == {
        ("typing", False),
        ("os", False),
        ("treadle.core.tasks", True),
        ("json", False),
        ("treadle.core.history", False),
    }
