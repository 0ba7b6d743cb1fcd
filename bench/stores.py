"""Where the benchmark keeps its state: a fresh store per workload, removed afterwards.

SQLite: one file per workload in a temporary directory. PostgreSQL: one schema per workload
(``?schema=bench_<random>_<workload>``) when the store supports that option, else one
database per workload, created and dropped here. A peer (DBOS) gets its own SQLite file or
its own database on the same server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from treadle.store import redact_url

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class StoreTarget(ABC):
    """A backend to benchmark on: hands out fresh store URLs and cleans them all up.

    Attributes:
        kind: ``sqlite`` or ``postgres``.
        work_dir: a temporary directory for logs, profiles and SQLite files.
    """

    kind: str

    def __init__(self) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"treadle-bench-{self.kind}-"))

    @abstractmethod
    def new_url(self, tag: str) -> str:
        """A URL of a fresh, empty treadle store named after ``tag``."""

    @abstractmethod
    def peer_url(self, peer: str, tag: str) -> str:
        """A URL of a fresh system database for a peer engine, named after ``tag``."""

    @abstractmethod
    def facts(self) -> str:
        """What kind of store this is and its durability settings (for the header)."""

    @abstractmethod
    def commit_floor_ms(self, commits: int) -> float:
        """Milliseconds per durable commit of one small row, in a loop of ``commits``: what
        the disk (and server) allow at best per sequential step, with treadle's settings."""

    def cleanup(self) -> None:
        """Remove everything this target created."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


class SqliteTarget(StoreTarget):
    """A fresh SQLite file per workload, with treadle's default durability."""

    kind = "sqlite"

    def new_url(self, tag: str) -> str:
        """``sqlite:////tmp/.../<tag>.db``."""
        return f"sqlite:///{self.work_dir / f'{tag}.db'}"

    def peer_url(self, peer: str, tag: str) -> str:
        """``sqlite:////tmp/.../<peer>-<tag>.sqlite``."""
        return f"sqlite:///{self.work_dir / f'{peer}-{tag}.sqlite'}"

    def commit_floor_ms(self, commits: int) -> float:
        """One-row transactions in WAL mode with synchronous=FULL (treadle's default)."""
        path = self.work_dir / "floor.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            started = time.perf_counter()
            for _ in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (body) VALUES (?)", ("x" * 100,))
                conn.execute("COMMIT")
            return (time.perf_counter() - started) / commits * 1e3
        finally:
            conn.close()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.remove(f"{path}{suffix}")

    def facts(self) -> str:
        """Journal mode and synchronous level of a treadle SQLite store."""
        from treadle.store.sqlite import SqliteStore, parse_sqlite_url

        url = self.new_url("probe")
        SqliteStore(url).close()
        path, _, synchronous = parse_sqlite_url(url)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        Path(path).unlink(missing_ok=True)
        return (
            f"sqlite file per workload under {self.work_dir} "
            f"(journal_mode={journal}, synchronous={synchronous})"
        )


class PostgresTarget(StoreTarget):
    """Fresh schemas (or databases) per workload on one PostgreSQL server.

    Use :meth:`open`, which says why PostgreSQL cannot be used instead of raising.
    """

    kind = "postgres"

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.prefix = f"bench_{secrets.token_hex(4)}"
        self.use_schemas = False
        self._schemas: list[str] = []
        self._databases: list[str] = []

    @classmethod
    def open(cls, base_url: str) -> PostgresTarget | str:
        """A target on ``base_url``, or the reason it cannot be used."""
        if importlib.util.find_spec("treadle.store.postgres") is None:
            return "treadle.store.postgres is missing (the PostgreSQL store is not there yet)"
        try:
            import psycopg
        except ImportError:
            return "psycopg is not installed: pip install 'treadle[postgres]'"
        try:
            with psycopg.connect(base_url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"PostgreSQL at {redact_url(base_url)} is unreachable: {exc}".strip()
        target = cls(base_url)
        target.use_schemas = target._supports_schema_option()
        return target

    def _admin(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the base database, in autocommit (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.base_url, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def _create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return with_database(self.base_url, name)

    def _supports_schema_option(self) -> bool:
        """Whether the store honours ``?schema=``: try it in a throwaway database."""
        import psycopg

        from treadle.store import open_store

        url = self._create_database(f"{self.prefix}_probe")
        schema = f"{self.prefix}_probe"
        try:
            open_store(with_query(url, schema=schema)).close()
            with psycopg.connect(url, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                    (schema,),
                ).fetchone()
            return bool(row and row[0])
        except Exception:
            return False
        finally:
            self._drop_databases()

    def new_url(self, tag: str) -> str:
        """A URL with a fresh schema (``?schema=``) or a fresh database."""
        name = f"{self.prefix}_{tag.lower()}"
        if self.use_schemas:
            self._schemas.append(name)
            return with_query(self.base_url, schema=name)
        return self._create_database(name)

    def peer_url(self, peer: str, tag: str) -> str:
        """A database of its own on the same server (the peer creates it)."""
        name = f"{self.prefix}_{peer}_{tag.lower()}"
        self._databases.append(name)
        return with_database(self.base_url, name)

    def commit_floor_ms(self, commits: int) -> float:
        """One-row INSERTs in autocommit mode (one round trip each, synchronous_commit as
        the server has it), in a table of a throwaway schema."""
        import psycopg

        schema = f"{self.prefix}_floor"
        with psycopg.connect(self.base_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            try:
                conn.execute(f'CREATE TABLE "{schema}".t (id bigserial PRIMARY KEY, body text)')
                insert = f'INSERT INTO "{schema}".t (body) VALUES (%s)'
                started = time.perf_counter()
                for _ in range(commits):
                    conn.execute(insert, ("x" * 100,), prepare=True)
                return (time.perf_counter() - started) / commits * 1e3
            finally:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    def facts(self) -> str:
        """Server version, how stores are isolated, and the durability settings."""
        settings = {
            name: self._admin(f"SHOW {name}")[0][0]
            for name in ("server_version", "synchronous_commit", "fsync", "full_page_writes")
        }
        mode = "schema (?schema=)" if self.use_schemas else "database"
        return (
            f"postgresql {settings.pop('server_version')} at {redact_url(self.base_url)}, "
            f"a fresh {mode} per workload ("
            + ", ".join(f"{k}={v}" for k, v in settings.items())
            + ")"
        )

    def _drop_databases(self) -> None:
        while self._databases:
            name = self._databases.pop()
            with contextlib.suppress(Exception):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        """Drop every schema and database this target made."""
        while self._schemas:
            name = self._schemas.pop()
            with contextlib.suppress(Exception):
                self._admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        self._drop_databases()
        super().cleanup()


def with_query(url: str, **options: str) -> str:
    """``url`` with these query options added (or replaced)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(options)
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
