"""The SQLite connection layer: store URLs, one connection per thread, write transactions, and
the translation of ``sqlite3`` errors.

Each thread gets its own connection. Writers in one process queue on a Python lock (one per
database file, see :mod:`.shared`) before ``BEGIN IMMEDIATE`` (no busy-wait); writers in other
processes wait on SQLite's busy timeout.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlparse

from treadle.errors import InvalidInputError, StoreError, StoreUnavailableError
from treadle.store import faults
from treadle.store.sqlite.shared import Shared

__all__ = ["Connections", "parse_sqlite_url"]


def parse_sqlite_url(url: str) -> tuple[str, bool, str]:
    """Split a ``sqlite://`` or ``memory://`` URL into (database, is_uri, synchronous).

    Raises:
        InvalidInputError: the URL is not a SQLite URL, or has a bad option.
    """
    parsed = urlparse(url)
    options = parse_qs(parsed.query)
    synchronous = options.get("synchronous", ["full"])[0].upper()
    if synchronous not in ("FULL", "NORMAL", "EXTRA", "OFF"):
        raise InvalidInputError(
            f"store URL {url!r}: synchronous must be full, normal, extra or off"
        )
    if parsed.scheme == "memory" or url in ("sqlite://", "sqlite:///:memory:"):
        # The memdb VFS: one database for every connection of this process that names it,
        # with ordinary locking (busy waits), unlike a shared cache's table locks, which
        # fail a read at once while another connection writes.
        name = parsed.netloc or uuid.uuid4().hex
        if sqlite3.sqlite_version_info < (3, 36):  # no memdb VFS before SQLite 3.36
            return f"file:treadle-{name}?mode=memory&cache=shared", True, synchronous
        return f"file:/treadle-{name}?vfs=memdb", True, synchronous
    if parsed.scheme != "sqlite":
        raise InvalidInputError(f"not a SQLite store URL: {url!r} (expected sqlite:///path.db)")
    path = unquote(parsed.path)
    # sqlite:///rel.db -> "/rel.db" (relative); sqlite:////abs.db -> "//abs.db" (absolute)
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise InvalidInputError(f"store URL {url!r} names no file (expected sqlite:///path.db)")
    return path, False, synchronous


class Connections:
    """One store's connections to its database: one per thread, and its write transactions.

    Args:
        url: the store URL (for messages).
        database: the file, or the URI of an in-memory database (see :func:`parse_sqlite_url`).
        is_uri: ``database`` is a URI (in memory).
        synchronous: the ``PRAGMA synchronous`` level of commits.
        shared: the state this process shares on the database (write lock, wake-ups).
    """

    def __init__(
        self, url: str, database: str, is_uri: bool, synchronous: str, shared: Shared
    ) -> None:
        self.url = url
        self.database = database
        self.is_uri = is_uri
        self.synchronous = synchronous
        self.shared = shared
        self.closed = False
        self._local = threading.local()
        # every connection opened, with the thread it serves (see close)
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        # what the commits of the current transaction give others: instances to claim,
        # activities to claim, a changed status (see write and gives)
        self._pending = [False, False, False]
        self._keepalive: sqlite3.Connection | None = None
        if is_uri:  # an in-memory database lives while a connection to it is open
            self._keepalive = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.is_uri:
                directory = os.path.dirname(os.path.abspath(self.database))
                os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(
                self.database,
                uri=self.is_uri,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
            if not self.is_uri:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(
                f"cannot open SQLite database {self.database!r}: {exc}"
            ) from exc
        except OSError as exc:  # its directory could not be made
            raise StoreUnavailableError(
                f"cannot open SQLite database {self.database!r}: cannot create its directory "
                f"({exc.strerror or exc}); choose a path this process can write"
            ) from exc
        with self._connections_lock:
            self._connections.append((threading.current_thread(), conn))
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        Raises:
            StoreUnavailableError: the store was closed.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self.closed:
            if conn is not None:  # left open by close(): this thread may have been using it
                self._local.conn = None
                self._forget(conn)
            raise StoreUnavailableError(f"the store {self.url!r} was closed")
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def gives(
        self, *, orchestrations: bool = False, activities: bool = False, status: bool = False
    ) -> None:
        """Say what the write transaction under way gives others: instances or activities to
        claim, a changed status (clients). They are woken after its commit (see :meth:`write`)."""
        pending = self._pending
        pending[0] = pending[0] or orchestrations
        pending[1] = pending[1] or activities
        pending[2] = pending[2] or status

    @contextlib.contextmanager
    def write(
        self,
        *,
        notify: bool = True,
        durable: bool = True,
        kinds: tuple[bool, bool] = (True, True),
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction: in-process lock, BEGIN IMMEDIATE, COMMIT (or ROLLBACK).

        With ``notify``, waiters are woken if anything changed: clients, and workers for the
        ``kinds`` of work the write gives (instances, activities to claim). Writes that only
        move leases or a running instance's own history (nothing another worker or a
        waiting client acts on) pass ``notify=False``, and say what they give, if anything,
        with :meth:`gives`.

        ``durable=False`` skips the fsync of this one commit: for lease bookkeeping only
        (claims, renewals, releases), whose loss in a crash is the same as the lease
        expiring. The next durable commit syncs it along with its own changes.
        """
        conn = self.conn()
        relax = not durable and self.synchronous in ("FULL", "EXTRA")
        with self.shared.write_lock:
            try:
                if relax:
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"cannot start a write on {self.url}: {exc}") from exc
            self._pending = [False, False, False]
            before = conn.total_changes
            try:
                yield conn
                fault = faults.hook
                if fault is not None:
                    fault("before")
                conn.execute("COMMIT")
                if fault is not None:
                    fault("after")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            finally:
                if relax:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute(f"PRAGMA synchronous={self.synchronous}")
            changed = conn.total_changes != before
            # taken under the lock: the next transaction's commits set the next ones
            pending, self._pending = self._pending, [False, False, False]
        if changed and notify:
            self.shared.notify(*kinds)
        elif changed and any(pending):
            self.shared.notify(orchestrations=pending[0], activities=pending[1])

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Translate ``sqlite3`` errors into :class:`~treadle.errors.StoreError`: a database
        still locked by another process after the busy timeout is an outage
        (:class:`~treadle.errors.StoreUnavailableError`, retried by workers), not a refusal."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreUnavailableError(
                    f"SQLite database {self.url} is locked by another process (a writer "
                    f"frozen or very slow?): {exc}"
                ) from exc
            raise StoreError(f"SQLite error on {self.url}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error on {self.url}: {exc}") from exc

    def data_version(self) -> int:
        """``PRAGMA data_version`` of this thread's connection: it moves when another
        connection committed."""
        conn = self.conn()
        try:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite error on {self.url}: {exc}") from exc

    def close(self) -> None:
        """Close: every later call raises StoreUnavailableError.

        Connections of this thread and of threads that ended are closed now; one that
        another live thread holds is closed by that thread at its next call, since it may be
        using it this very moment (closing a connection under a running statement crashes
        the process)."""
        self.closed = True
        me = threading.current_thread()
        with self._connections_lock:
            held = []
            for owner, conn in self._connections:
                if owner is me or not owner.is_alive() or conn is self._keepalive:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                else:
                    held.append((owner, conn))
            self._connections = held

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Close this thread's connection of a closed store."""
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        with self._connections_lock:
            self._connections = [(o, c) for o, c in self._connections if c is not conn]
