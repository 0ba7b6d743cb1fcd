"""The SQLite schema: versioned migrations applied on open, and ``treadle db status``.

Migrations are the files ``treadle/store/migrations/sqlite/NNNN_*.sql``; the versions applied
are rows of a ``schema_version`` table. A database newer than the code is refused with
:class:`~treadle.errors.SchemaVersionError`.
"""

from __future__ import annotations

import os
import sqlite3

from treadle.errors import SchemaVersionError, StoreUnavailableError
from treadle.store.migrations import migration_sql
from treadle.store.sqlite.connection import parse_sqlite_url

__all__ = ["SCHEMA_VERSION", "apply_migrations", "schema_status"]

SCHEMA_VERSION = 9


def apply_migrations(conn: sqlite3.Connection, database: str) -> None:
    """Create or upgrade the schema, in the caller's write transaction on ``conn``.

    Raises:
        SchemaVersionError: the database is newer than this code.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database {database!r} has schema version {current}, newer than "
            f"this treadle understands ({SCHEMA_VERSION}); upgrade treadle"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        sql = migration_sql("sqlite", version)
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


def schema_status(url: str) -> tuple[int, int]:
    """(version in the database, newest version this code knows); changes nothing.

    0 means the tables were never created (or the file does not exist).

    Raises:
        StoreUnavailableError: the file cannot be opened.
    """
    database, is_uri, _ = parse_sqlite_url(url)
    if not is_uri and not os.path.exists(database):
        return 0, SCHEMA_VERSION
    try:
        conn = sqlite3.connect(database, uri=is_uri)
        try:
            row = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            current = 0
            if row is not None:
                current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot read SQLite database {database!r}: {exc}") from exc
    return int(current), SCHEMA_VERSION
