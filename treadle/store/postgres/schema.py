"""The PostgreSQL schema: store URLs, versioned migrations, ``treadle db status/migrate``.

Migrations are the files ``treadle/store/migrations/postgres/NNNN_*.sql``; the versions
applied are rows of a ``schema_version`` table in the store's schema. Opening a store
migrates inside one transaction holding an advisory lock, so workers that start together
queue instead of racing, and a database newer than the code is refused with
:class:`~treadle.errors.SchemaVersionError`.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from treadle.errors import InvalidInputError, SchemaVersionError, StoreError
from treadle.store.migrations import migration_sql
from treadle.store.postgres.connection import configure_session, translate_error

__all__ = [
    "SCHEMA_VERSION",
    "migrate",
    "open_schema",
    "parse_postgres_url",
    "schema_status",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 9
# The databases (display URLs) whose encoding this process warned of: once each, for its life.
_WARNED_ENCODINGS: set[str] = set()
_LOCK_CLASS = 0x7EAD1E  # pg_advisory_xact_lock(class, hash of schema) guards migrations
_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "treadle",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


def parse_postgres_url(url: str) -> tuple[str, str | None, str]:
    """Split a store URL into (libpq conninfo, schema or None, display name without password).

    Raises:
        InvalidInputError: not a ``postgresql://`` or ``postgres://`` URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidInputError(
            f"not a PostgreSQL store URL: {url!r} (expected postgresql://user@host:5432/db)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not schema.strip():
        raise InvalidInputError(f"store URL {url!r}: schema= needs a name")
    present = {k for k, _ in query}
    options = [(k, v) for k, v in query if k not in ("schema", "client_encoding")]
    options += [(k, v) for k, v in _DEFAULTS.items() if k not in present]
    # Always UTF-8 on the wire: statements sent through libpq directly encode their text so
    # (see .libpq), and the server converts to and from the database's encoding,
    # refusing a character that encoding cannot hold rather than storing mangled text.
    options.append(("client_encoding", "UTF8"))
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(options), ""))
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    display = f"postgresql://{user}{host}{port}{parts.path}" + (
        f" (schema {schema})" if schema else ""
    )
    return conninfo, schema, display


def open_schema(conninfo: str, schema: str | None, display: str, *, apply: bool) -> tuple[str, int]:
    """Connect once, then check (and if ``apply``, create or migrate) the schema.

    Returns:
        the schema's name and its treadle version.

    Raises:
        StoreUnavailableError: the server cannot be reached.
        SchemaVersionError: the database is newer than this treadle.
    """
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            configure_session(conn, schema)
            _warn_of_encoding(conn, display)
            # Not pipelined: a migration file is several statements in one query.
            with conn.transaction():
                return _migrate_in(conn, schema, display, apply=apply)
    except psycopg.Error as exc:
        raise translate_error(exc, display) from exc


def _warn_of_encoding(conn: psycopg.Connection[Any], display: str) -> None:
    """Say once per store URL if its database cannot hold every character (its encoding is
    not UTF8): the server refuses a payload with one it cannot hold, and the workflow whose
    step carries it fails."""
    encoding = conn.info.parameter_status("server_encoding") or "UTF8"
    if encoding.upper() in ("UTF8", "SQL_ASCII") or display in _WARNED_ENCODINGS:
        return
    _WARNED_ENCODINGS.add(display)
    logger.warning(
        "PostgreSQL at %s stores text as %s: a payload with a character %s cannot hold "
        "(such as '\u20ac' in LATIN1) is refused, failing its workflow; a database "
        "created with ENCODING 'UTF8' holds any text",
        display,
        encoding,
        encoding,
    )


def _read_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def _migrate_in(
    conn: psycopg.Connection[Any], schema: str | None, display: str, *, apply: bool
) -> tuple[str, int]:
    if schema is None:
        row = conn.execute("SELECT current_schema()").fetchone()
        if row is None or row[0] is None:
            raise StoreError(
                f"PostgreSQL at {display}: the search_path names no existing schema; "
                "add ?schema=NAME to the store URL"
            )
        schema = str(row[0])
    current = _read_version(conn)
    if apply and current < SCHEMA_VERSION:
        # Workers starting together queue here; each re-reads what the previous one did.
        key = zlib.crc32(schema.encode()) - 2**31
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, key))
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = _read_version(conn)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(migration_sql("postgres", version).encode())
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            logger.info("migrated %s to treadle schema version %d", display, version)
            current = version
    if current > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"PostgreSQL at {display} has treadle schema version {current}, newer than this "
            f"treadle understands ({SCHEMA_VERSION}); upgrade treadle"
        )
    return schema, current


def schema_status(url: str) -> tuple[int, int]:
    """The treadle schema version in the database and the newest this code knows.

    Changes nothing (0 means treadle's tables were never created). For ``treadle db status``.

    Raises:
        StoreUnavailableError: the server cannot be reached.
        SchemaVersionError: the database is newer than this treadle.
    """
    conninfo, schema, display = parse_postgres_url(url)
    return open_schema(conninfo, schema, display, apply=False)[1], SCHEMA_VERSION


def migrate(url: str) -> int:
    """Create or upgrade treadle's tables; return the schema version now in the database.

    For ``treadle db migrate``. Safe while workers run or start (it takes an advisory lock).

    Raises:
        StoreUnavailableError: the server cannot be reached.
        SchemaVersionError: the database is newer than this treadle.
    """
    conninfo, schema, display = parse_postgres_url(url)
    return open_schema(conninfo, schema, display, apply=True)[1]
