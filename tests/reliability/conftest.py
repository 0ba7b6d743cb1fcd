"""The reliability suite's size, its stores, and the figures it printed.

``TREADLE_RELIABILITY_SCALE`` multiplies every test's amount of work (1, the default, is the
size CI runs; 5 gives the soak 100,000 workflows). Each test prints one JSON line of figures
(see :mod:`reliability.ledger`); they are repeated at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.ledger import EMITTED
from reliability.procs import PgCluster, pg_bin


def scale() -> float:
    """``$TREADLE_RELIABILITY_SCALE`` (default 1)."""
    return float(os.environ.get("TREADLE_RELIABILITY_SCALE", "1"))


def scaled(n: int, minimum: int = 1) -> int:
    """``n`` at the run's scale."""
    return max(minimum, round(n * scale()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat every figure line the suite printed."""
    if EMITTED:
        terminalreporter.section("reliability figures")
        for line in EMITTED:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server of the suite's own (restartable); skipped where none can run."""
    if pg_bin() is None:
        if os.environ.get("TREADLE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    # not under pytest's temporary directory, which only root may enter (the server runs as
    # the postgres user when the tests run as root)
    directory = Path(tempfile.mkdtemp(prefix="treadle-reliability-pg-"))
    try:
        cluster = PgCluster(directory)
        yield cluster
        cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on each backend: a SQLite file, or a schema on the suite's own server.

    Connections to the schema are named after it (``application_name``), so a test can
    terminate them.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/treadle.db"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    schema = f"r_{uuid.uuid4().hex[:12]}"
    return f"{cluster.url}?schema={schema}&application_name={schema}"
