"""The scale-out PostgreSQL backend: :class:`PostgresStore` (psycopg 3, a connection pool,
SKIP LOCKED, LISTEN/NOTIFY). Needs ``treadle[postgres]``.

Modules:
    store               PostgresStore: the Store protocol, client operations, change tokens
    commit              committing turns: the one entry point, which chooses a path
    commit_statements   the one-statement commits (a single turn, a group of simple turns)
    commit_transaction  the general group commit, in one pipelined transaction
    claims              claiming instances with their messages
    activities          claiming and completing activity tasks, rescuing own tasks
    instances           creating, reading and paging instances; messages to them
    sql                 SQL text helpers: ``{now}``, ``{notify}``, shared CTEs
    connection          the connection layer: pool, attempts and retries, driver errors
    libpq               one statement straight over libpq, with poll-based waits
    listener            LISTEN/NOTIFY change tokens and this process's echoes
    schema              store URLs, versioned migrations, ``treadle db status/migrate``
"""

from __future__ import annotations

from treadle.store.postgres.schema import SCHEMA_VERSION, migrate, parse_postgres_url, schema_status
from treadle.store.postgres.store import STORE_CLASS, PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "STORE_CLASS",
    "PostgresStore",
    "migrate",
    "parse_postgres_url",
    "schema_status",
]
