"""Fixtures for the end-to-end tests: a started runtime and a client on a fresh store.

Every test gets a fresh database: a SQLite file in ``tmp_path``, or, for the tests of the
semantics suite (``test_semantics_*.py``), which run on every backend, also a PostgreSQL schema
of its own (``backend`` is parametrized for them; the postgres case is marked ``postgres`` and
skips without a server unless ``TREADLE_REQUIRE_POSTGRES=1``). ``runtime`` is already started;
register workflows and activities on it before scheduling them. ``make_runtime`` builds more
runtimes (other options, restarts, a second worker) on the same database; ``spawn`` runs Python
scripts as child processes and kills whatever is left of them at teardown.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.store import Store, open_store

from .helpers import Gate

EVERY_BACKEND = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""The backends of the tests that run on every store."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the semantics suite (``test_semantics_*.py``) once per backend."""
    module = metafunc.module.__name__.rpartition(".")[2]
    if module.startswith("test_semantics_") and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", EVERY_BACKEND, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The test's backend: ``sqlite``, unless parametrized (the semantics suite is)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A store URL for a fresh database: a SQLite file in the test's directory, or a fresh
    PostgreSQL schema (dropped after the test)."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path / 'treadle.db'}"


@pytest.fixture
def make_runtime(store_url: str) -> Iterator[Callable[..., wf.WorkflowRuntime]]:
    """A factory of runtimes on ``store_url`` (each with its own store object).

    ``make_runtime(start=False, **options)`` returns an unstarted one. Every runtime made is
    shut down and its store closed at teardown.
    """
    made: list[tuple[wf.WorkflowRuntime, Store]] = []

    def make(*, start: bool = True, **options: Any) -> wf.WorkflowRuntime:
        store = open_store(store_url)
        runtime = wf.WorkflowRuntime(store, **options)
        made.append((runtime, store))
        if start:
            runtime.start()
        return runtime

    yield make
    for runtime, store in reversed(made):
        runtime.shutdown(timeout=2)
        store.close()


@pytest.fixture
def runtime(make_runtime: Callable[..., wf.WorkflowRuntime]) -> wf.WorkflowRuntime:
    """A started runtime on the test's SQLite file."""
    return make_runtime()


@pytest.fixture
def client(store_url: str) -> Iterator[wf.WorkflowClient]:
    """A client on the test's SQLite file (its own store object)."""
    with wf.WorkflowClient(store_url) as c:
        yield c


@pytest.fixture
def gates() -> Iterator[Callable[[], Gate]]:
    """A factory of gates; every gate is opened at teardown so nothing stays blocked."""
    made: list[Gate] = []

    def make() -> Gate:
        gate = Gate()
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.open()


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python script args...`` as a child process; kill leftovers at teardown.

    The child's stdin is a pipe: the scripts of these tests shut down cleanly when it closes.
    """
    procs: list[subprocess.Popen[str]] = []

    def start(script: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            text=True,
            **popen,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
