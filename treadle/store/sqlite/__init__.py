"""The embedded SQLite backend: :class:`SqliteStore` (stdlib sqlite3, WAL, one writer at a
time), the default store.

Modules:
    store       SqliteStore: the Store protocol, client operations, change tokens
    commit      committing turns: the one path every shape of turn takes
    claims      claiming instances and activity tasks, renewing and giving back leases
    rows        rows several operations write: instances, messages, tasks, own tasks
    connection  store URLs, a connection per thread, write transactions, sqlite3 errors
    schema      versioned migrations, ``treadle db status``
    shared      process-wide registry: the state the stores of this process share on a file
    wake        cross-process wake-ups between the processes on one file
"""

from __future__ import annotations

from treadle.store.sqlite.connection import parse_sqlite_url
from treadle.store.sqlite.schema import SCHEMA_VERSION, schema_status
from treadle.store.sqlite.store import STORE_CLASS, WORK_POLL_S, SqliteStore, migrate

__all__ = [
    "SCHEMA_VERSION",
    "STORE_CLASS",
    "WORK_POLL_S",
    "SqliteStore",
    "migrate",
    "parse_sqlite_url",
    "schema_status",
]
