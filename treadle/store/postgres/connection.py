"""The PostgreSQL connection layer of PostgresStore: a pool of connections, statements in
autocommit mode (through psycopg, or straight over libpq: :mod:`.libpq`), pipelined
transactions, retries, and the one translation of psycopg errors into treadle's.

Errors: every psycopg error becomes a :class:`~treadle.errors.StoreError` in
:meth:`Connections.attempt`: :class:`~treadle.errors.StoreUnavailableError` when the server
cannot be reached (after waiting 10 s for it). Connections the server closed (a restart) are
noticed before use (one poll(2) of the socket) and replaced; a call that fails on a broken
connection is retried once when that is safe: when it cannot have committed, or repeating it
is harmless. Deadlocks are retried.
"""

from __future__ import annotations

import contextlib
import logging
import re
import select
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import pq, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from treadle.errors import StoreError, StoreUnavailableError
from treadle.store import faults
from treadle.store.postgres.sql import Conn, Db, utc
from treadle.store.serde import from_epoch

__all__ = ["Connections", "Progress", "configure_session", "translate_error"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_ACQUIRE_TIMEOUT_S = 10.0  # how long a call waits for the server before StoreUnavailableError
_ACQUIRE_SLICE_S = 1.0
_RECONNECT_TIMEOUT_S = 2.0  # then the pool's backoff restarts from 1 s at our next call
_DEADLOCK_RETRIES = 5


def _said_goodbye(conn: Conn) -> bool:
    """Whether an idle pooled connection has something to read: the server closed it.

    That is what a restart or pg_terminate_backend leaves behind. One poll(2) of the socket,
    no round trip, so a write that is not safe to retry never starts on a dead connection.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class Progress:
    """How far a transaction got: once COMMIT is on its way its outcome may be unknown."""

    committing = False


class Connections:
    """One store's connections to its database, and the ways it runs statements on them.

    Args:
        conninfo: libpq connection string.
        schema: the store's schema (the search path of every connection), if the URL names one.
        schema_name: the schema's name (the NOTIFY payload).
        display: the server, for messages (no password).
        min_size: connections the pool keeps open.
        max_size: connections the pool opens at most.
        clock: seconds since the epoch, for tests only (else the database's clock).
    """

    def __init__(
        self,
        conninfo: str,
        schema: str | None,
        schema_name: str,
        display: str,
        *,
        min_size: int,
        max_size: int,
        clock: Callable[[], float] | None,
    ) -> None:
        self.display = display
        self.schema_name = schema_name
        self.closed = False
        self._clock = clock
        self._now_sql = "%(now)s::timestamptz" if clock else "now()"
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max(min_size, max_size),
            kwargs={"autocommit": True},
            configure=lambda conn: configure_session(conn, schema),
            open=False,
            name="treadle",
            timeout=_ACQUIRE_TIMEOUT_S,
            reconnect_timeout=_RECONNECT_TIMEOUT_S,
        )
        self._pool.open(wait=False)

    def fake_now(self) -> datetime | None:
        """The test clock's time, or None on the database's clock."""
        return from_epoch(self._clock()) if self._clock else None

    def translate(self, exc: psycopg.Error, detail: str | None = None) -> StoreError:
        """The treadle error for a psycopg error of this store (see :func:`translate_error`)."""
        return translate_error(exc, self.display, detail)

    def db(self) -> Db:
        """SQL helpers for one operation (see :class:`~.sql.Db`)."""
        return Db(self._now_sql, self.fake_now(), self.schema_name)

    def run(self, work: Callable[[Db, Conn], _T]) -> _T:
        """Run ``work`` on a pooled connection in autocommit mode (each statement commits).

        For reads, and for writes that need no atomicity beyond one statement and are safe to
        repeat: they are retried once on a fresh connection if the connection broke.
        """
        return self.attempt(lambda conn, _progress: work(self.db(), conn), retry_unknown=True)

    def statement(
        self, text: str, params: dict[str, Any] | None = None, *, idempotent: bool = True
    ) -> list[Any]:
        """Run one statement in autocommit mode, where it is a transaction of its own: one
        round trip, COMMIT included (the server answers once the commit is durable).

        Args:
            text: SQL, which may say ``{now}`` and ``{notify}`` (see :class:`Db`).
            idempotent: running it twice is harmless, so it may be retried even when the
                connection broke before its outcome was known.

        Returns:
            its rows (none if it returns no result set).
        """

        def call(conn: Conn, progress: Progress) -> list[Any]:
            progress.committing = True
            cursor = self.db().execute(conn, text, params, prepare=True)
            # (the result's status, not cursor.description, which builds a column list)
            result = cursor.pgresult
            if result is None or result.status != pq.ExecStatus.TUPLES_OK:
                return []
            return cursor.fetchall()

        return self.attempt(call, retry_unknown=idempotent)

    def raw_statement(
        self,
        text: str,
        params: dict[str, Any],
        read: Callable[[pq.abc.PGresult], _T],
        *,
        idempotent: bool = True,
    ) -> _T:
        """Like :meth:`statement`, through libpq directly (see :mod:`.libpq`):
        ``read`` turns its text result into values."""

        def call(conn: Conn, progress: Progress) -> _T:
            progress.committing = True
            return read(self.db().execute_raw(conn, text, params))

        return self.attempt(call, retry_unknown=idempotent)

    def write(
        self,
        work: Callable[[Db, Conn], Callable[[], _T]],
        *,
        notify: bool = False,
        idempotent: bool = True,
    ) -> _T:
        """Run ``work`` in one pipelined transaction; return what its reader gives after COMMIT.

        ``work`` queues its statements and returns a function that reads the results it still
        needs: they arrive with the COMMIT, which saves a round trip.

        Args:
            notify: send NOTIFY treadle_work with the transaction (``work`` may change
                its mind through ``db.notify``).
            idempotent: running ``work`` twice is harmless, so it may be retried even when a
                connection broke during COMMIT (when it is unknown whether it committed).
        """

        def call(conn: Conn, progress: Progress) -> _T:
            # BEGIN and COMMIT are queued like any statement: conn.transaction() would
            # cost a sync (a round trip) at each end.
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    db = self.db()
                    db.notify = notify
                    read = work(db, conn)
                    db.send_notify(conn)
                    progress.committing = True
                    conn.execute("COMMIT")
                return read()
            except BaseException:
                if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                raise

        return self.attempt(call, retry_unknown=idempotent)

    def attempt(self, call: Callable[[Conn, Progress], _T], *, retry_unknown: bool) -> _T:
        """Call ``call`` on a pooled connection; the one place psycopg errors are translated.

        Deadlocks are retried (nothing was written). A broken connection (after a server
        restart, say) is replaced and the call retried once, unless it broke during a COMMIT
        whose outcome is unknown and the call is not safe to repeat. With no connection to
        be had (the server is down) it keeps the pool trying for ``_ACQUIRE_TIMEOUT_S``.
        """
        if self.closed:
            raise StoreUnavailableError(f"the store for {self.display} was closed")
        deadline = time.monotonic() + _ACQUIRE_TIMEOUT_S
        attempt = 0
        while True:
            progress = Progress()
            try:
                # (getconn/putconn: the pool's connection() context would also run a
                # COMMIT check through psycopg's machinery, a cost on every statement)
                conn = self._pool.getconn(timeout=_ACQUIRE_SLICE_S)
                try:
                    if not _said_goodbye(conn):
                        attempt += 1
                        fault = faults.hook
                        if fault is None:
                            return call(conn, progress)
                        fault("before")
                        result = call(conn, progress)
                        progress.committing = True
                        fault("after")
                        return result
                    conn.close()  # the pool replaces closed connections
                finally:
                    self._pool.putconn(conn)
                self._pool.check()  # and the other idle ones are probably dead too
            except PoolTimeout as exc:
                if time.monotonic() >= deadline or self.closed:
                    waited = f"no connection for {_ACQUIRE_TIMEOUT_S:.0f} s"
                    raise self.translate(exc, waited) from exc
                # psycopg_pool backs off for ever longer between attempts to reconnect; this
                # makes it try again now, so we are back within a second of the server.
                self._pool.check()
            except psycopg.errors.TransactionRollback as exc:
                if attempt >= _DEADLOCK_RETRIES:
                    raise self.translate(exc) from exc
                time.sleep(0.005 * attempt)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if attempt >= 2 or (progress.committing and not retry_unknown):
                    self._pool.check()  # spare the next call the other broken connections
                    raise self.translate(exc) from exc
                logger.info("retrying on a fresh connection to %s: %s", self.display, exc)
                self._pool.check()  # a server restart breaks every idle connection at once
            except psycopg.Error as exc:
                raise self.translate(exc) from exc

    def close(self) -> None:
        """Close the pool: every later call raises StoreUnavailableError."""
        self.closed = True
        self._pool.close()

    def now(self) -> datetime:
        """The database server's time (or the injected test clock)."""
        fake = self.fake_now()
        if fake is not None:
            return fake
        row = self.run(lambda db, conn: conn.execute("SELECT clock_timestamp()").fetchone())
        assert row is not None
        return utc(row[0])


# Connection failures that are not outages: the server answered and said no.
_REFUSALS = (
    (
        r'database "[^"]*" does not exist',
        "create the database (createdb NAME, or CREATE DATABASE) or fix the store URL",
    ),
    (r'role "[^"]*" does not exist', "fix the user name in the store URL"),
    (
        r"password authentication failed|no password supplied",
        "check the user and password in the store URL (or ~/.pgpass)",
    ),
    (r"no pg_hba\.conf entry", "allow this host and user in the server's pg_hba.conf"),
)


def translate_error(exc: psycopg.Error, display: str, detail: str | None = None) -> StoreError:
    """The treadle error for a psycopg error (the one mapping every PostgreSQL path uses).

    Args:
        detail: what went wrong, if the driver's message does not say it well.
    """
    text = str(exc).strip()
    detail = detail or (text.splitlines()[0] if text else type(exc).__name__)
    if (getattr(exc, "sqlstate", None) or "").startswith("54"):
        # program limit exceeded (a value too big for PostgreSQL, say): a refusal no retry
        # changes, though psycopg files it under OperationalError with the outages
        return StoreError(f"PostgreSQL error on {display}: {detail}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        for marker, advice in _REFUSALS:
            if re.search(marker, text):
                return StoreUnavailableError(
                    f"PostgreSQL at {display} refused the connection: {detail}; {advice}"
                )
        return StoreUnavailableError(
            f"PostgreSQL at {display} is unavailable: {detail}; check that the server is "
            "running and reachable (a running store reconnects once it is back)"
        )
    return StoreError(f"PostgreSQL error on {display}: {detail}")


def configure_session(conn: psycopg.Connection[Any], schema: str | None) -> None:
    """Per connection: times in UTC, the store's schema (if any) as the search path, and
    generic plans for prepared statements.

    The store's statements are written for generic plans (key lookups whatever the values),
    and the busiest take milliseconds to plan: the server's default would plan each of them
    five more times on every connection before settling for the generic plan.
    """
    path = sql.Identifier(schema).as_string(conn) if schema else None
    conn.execute(
        "SELECT set_config('TimeZone', 'UTC', false), "
        "set_config('search_path', COALESCE(%s, current_setting('search_path')), false), "
        "set_config('plan_cache_mode', 'force_generic_plan', false)",
        (path,),
    )
