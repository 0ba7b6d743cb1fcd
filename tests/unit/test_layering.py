"""The core stays pure: no I/O, clock, threads or randomness, and no outer treadle layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "treadle" / "core"
FORBIDDEN = frozenset(
    {"sqlite3", "psycopg", "grpc", "socket", "threading", "time", "random", "asyncio"}
)
ALLOWED_TREADLE = ("treadle.core", "treadle.errors")


def imported_modules(source: str, package: str) -> set[str]:
    """Every module that ``source`` (a module of ``package``) imports, relative ones resolved.

    ``from a import b`` yields ``a`` and ``a.b``, since ``b`` may be a submodule; but
    ``from treadle import errors`` yields only ``treadle.errors``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module != "treadle":
                found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _is_allowed_treadle(module: str) -> bool:
    return any(module == ok or module.startswith(f"{ok}.") for ok in ALLOWED_TREADLE)


def violations(source: str, package: str = "treadle.core") -> list[str]:
    """The imports of ``source`` that the core must not make."""
    return [
        module
        for module in sorted(imported_modules(source, package))
        if module.split(".")[0] in FORBIDDEN
        or (module.split(".")[0] == "treadle" and not _is_allowed_treadle(module))
    ]


CORE_MODULES = sorted(CORE.glob("*.py"))


def test_core_modules_are_found() -> None:
    names = {p.name for p in CORE_MODULES}
    assert {"history.py", "replay.py", "tasks.py", "codec.py", "retry.py"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=[p.name for p in CORE_MODULES])
def test_core_module_imports_only_pure_modules(path: Path) -> None:
    assert violations(path.read_text()) == []


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
        "from treadle.core_extras import x",
        "from treadle import WorkflowRuntime",
        "import treadle",
        "from .. import store",
        "from ..runtime import cache",
        "def f():\n    import time\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from treadle.store import base\n",
    ],
)
def test_the_checker_catches_forbidden_imports(source: str) -> None:
    assert violations(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import datetime, logging, traceback",
        "from treadle.errors import FailureDetails",
        "from treadle.core.tasks import Task",
        "from . import codec",
        "from .history import EPOCH",
        "import orjson",
        "import timeit",
        "from treadle import errors",
    ],
)
def test_the_checker_allows_pure_imports(source: str) -> None:
    assert violations(source) == []
