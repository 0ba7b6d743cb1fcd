"""`treadle db status` / `treadle db migrate` on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from treadle.cli import main
from treadle.store.sqlite import schema as sqlite_schema


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _check_migrate_cycle(url: str, newest: int) -> None:
    code, out = _run("--db", url, "db", "status")
    assert code == 0, out
    assert "schema version 0" in out and "not created" in out
    code, out = _run("--db", url, "db", "migrate")
    assert code == 0, out
    assert f"schema version 0 -> {newest}" in out
    code, out = _run("--db", url, "db", "status")
    assert code == 0 and f"schema version {newest}" in out and "up to date" in out
    code, out = _run("--db", url, "db", "migrate")  # again: nothing to do
    assert code == 0 and f"schema version {newest} -> {newest}" in out


def test_sqlite_status_and_migrate(tmp_path: Path) -> None:
    _check_migrate_cycle(f"sqlite:///{tmp_path / 'fresh.db'}", sqlite_schema.SCHEMA_VERSION)


@pytest.mark.postgres
def test_postgres_status_and_migrate(postgres_schema_url: str) -> None:
    from treadle.store.postgres import SCHEMA_VERSION

    _check_migrate_cycle(postgres_schema_url, SCHEMA_VERSION)


def test_unreachable_postgres_is_a_clear_error() -> None:
    code, out = _run("--db", "postgresql://postgres@127.0.0.1:1/test", "db", "status")
    assert code == 1
    assert "unavailable" in out and "Traceback" not in out


def test_a_version_1_sqlite_database_is_upgraded_in_place(tmp_path: Path) -> None:
    # A database written by schema version 1, with a task queued: opening it migrates it,
    # and the queued work is still there.
    import sqlite3

    from treadle.store.migrations import migration_sql
    from treadle.store.sqlite import SCHEMA_VERSION, SqliteStore

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(migration_sql("sqlite", 1))
    conn.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (1);"
        "INSERT INTO instances (instance_id, name, status, execution_id, created_at, "
        "  updated_at, history_len) VALUES ('old-1', 'wf', 'RUNNING', 'e1', 1, 1, 2);"
        "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
        "  task_execution_id, visible_at) VALUES ('old-1', 'e1', 0, 'step', '1', 'e1:0', 1);"
    )
    conn.commit()
    conn.close()
    store = SqliteStore(f"sqlite:///{path}")
    try:
        (task,) = store.claim_activities("w1", 10, 30)
        assert (task.instance_id, task.name) == ("old-1", "step")
        record = store.get_instance("old-1")
        assert record is not None and record.status.name == "RUNNING"
        assert (record.app_id, record.waiting) == ("", None)  # (schema version 3)
    finally:
        store.close()
    code, out = _run("--db", f"sqlite:///{path}", "db", "status")
    assert code == 0 and f"schema version {SCHEMA_VERSION}" in out and "up to date" in out
