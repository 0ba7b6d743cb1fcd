"""`treadle db status` / `treadle db migrate` on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from treadle.cli import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _check_migrate_cycle(url: str) -> None:
    code, out = _run("--db", url, "db", "status")
    assert code == 0, out
    assert "schema version 0" in out and "not created" in out
    code, out = _run("--db", url, "db", "migrate")
    assert code == 0, out
    assert "schema version 0 -> 1" in out
    code, out = _run("--db", url, "db", "status")
    assert code == 0 and "schema version 1" in out and "up to date" in out
    code, out = _run("--db", url, "db", "migrate")  # again: nothing to do
    assert code == 0 and "schema version 1 -> 1" in out


def test_sqlite_status_and_migrate(tmp_path: Path) -> None:
    _check_migrate_cycle(f"sqlite:///{tmp_path / 'fresh.db'}")


@pytest.mark.postgres
def test_postgres_status_and_migrate(postgres_schema_url: str) -> None:
    _check_migrate_cycle(postgres_schema_url)


def test_unreachable_postgres_is_a_clear_error() -> None:
    code, out = _run("--db", "postgresql://postgres@127.0.0.1:1/test", "db", "status")
    assert code == 1
    assert "unavailable" in out and "Traceback" not in out
