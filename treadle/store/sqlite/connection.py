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
import time
import uuid
from contextlib import AbstractContextManager
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlparse

from treadle.errors import InvalidInputError, StoreError, StoreLostError, StoreUnavailableError
from treadle.store import faults
from treadle.store.sqlite.shared import Shared

__all__ = ["Connections", "parse_sqlite_url", "translate_error"]


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


# SQLite's primary result codes that mean an outage, not a refusal (see Connections.errors),
# and the messages that name them (for Pythons whose sqlite3 errors carry no code)
_OUTAGES = {
    5: "is locked by another process (a writer frozen or very slow?)",  # SQLITE_BUSY
    6: "is locked by another process (a writer frozen or very slow?)",  # SQLITE_LOCKED
    7: "ran out of memory",  # SQLITE_NOMEM
    8: "cannot be written (read-only file or file system?)",  # SQLITE_READONLY
    10: "had an I/O error (disk full, removed or failing?)",  # SQLITE_IOERR
    11: "is damaged (restore it from a backup)",  # SQLITE_CORRUPT
    13: "is full (no space left on its disk, or its size limit reached): free some space",
    14: "cannot be opened (file or directory removed, or no permission?)",  # SQLITE_CANTOPEN
    15: "is locked by another process (a writer frozen or very slow?)",  # SQLITE_PROTOCOL
    26: "is not a database (overwritten?)",  # SQLITE_NOTADB
}
_OUTAGE_TEXTS = (
    ("locked", 5),
    ("busy", 5),
    ("disk is full", 13),
    ("disk i/o error", 10),
    ("unable to open", 14),
    ("readonly", 8),
    ("out of memory", 7),
    ("malformed", 11),
    ("not a database", 26),
)


def translate_error(exc: sqlite3.Error, url: str) -> StoreError:
    """The treadle error for a ``sqlite3`` error on the store ``url``: an outage
    (:class:`~treadle.errors.StoreUnavailableError`) or a refusal (see
    :meth:`Connections.errors`)."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # (Python 3.10: no code on the exception)
        text = str(exc).lower()
        code = next((c for marker, c in _OUTAGE_TEXTS if marker in text), 1)
    what = _OUTAGES.get(code & 0xFF)
    if what is not None:
        return StoreUnavailableError(
            f"SQLite database {url} {what}: {exc}; workers wait and retry until it is back"
        )
    return StoreError(f"SQLite error on {url}: {exc}")


_CHECK_S = 0.1  # how often a commit that does not sync checks the file (see check_file)


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None if there is none."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_dev, st.st_ino


class _Translating:
    """The context manager of :meth:`Connections.errors`: a class, where a generator made
    and run at each use costs several calls, and every store call opens one."""

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, sqlite3.Error):
            raise translate_error(exc, self._url) from exc


class _Write:
    """The context manager of :meth:`Connections.write`: a class, where a generator made and
    run at each use costs several calls, and every step of every workflow commits through
    one. Entered, it holds the database's write lock and a transaction begun; left, it
    commits (or, on an error, rolls back), lets go of the lock and wakes who the write
    concerns."""

    __slots__ = ("_before", "_conn", "_db", "_durable", "_kinds", "_notify", "_relax")

    def __init__(
        self, db: Connections, notify: bool, durable: bool, kinds: tuple[bool, bool]
    ) -> None:
        self._db = db
        self._notify = notify
        self._durable = durable
        self._kinds = kinds

    def __enter__(self) -> sqlite3.Connection:
        db = self._db
        conn = self._conn = db.conn()
        relax = self._relax = not self._durable and db.synchronous in ("FULL", "EXTRA")
        lock = db.shared.write_lock
        lock.acquire()
        try:
            if relax:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            lock.release()
            raise StoreUnavailableError(f"cannot start a write on {db.url}: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        db._pending = [False, False, False]
        self._before = conn.total_changes
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self._db
        conn = self._conn
        lock = db.shared.write_lock
        try:
            try:
                if exc_type is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    return
                db._commit(conn, self._durable)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            finally:
                if self._relax:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute(f"PRAGMA synchronous={db.synchronous}")
            changed = conn.total_changes != self._before
            # taken under the lock: the next transaction's commits set the next ones
            pending, db._pending = db._pending, [False, False, False]
        finally:
            lock.release()
        if changed and self._notify:
            db.shared.notify(*self._kinds)
        elif changed and (pending[0] or pending[1] or pending[2]):
            db.shared.notify(orchestrations=pending[0], activities=pending[1])


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
        self._errors = _Translating(url)
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
        # the file's identity (device, inode) when this store opened it, and the error
        # once the file at the path is no longer that one (see check_file)
        self._identity: tuple[int, int] | None = None
        self._check_due = 0.0  # (time.monotonic) when a commit that does not sync checks
        self.lost: str | None = None
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
            # Incremental auto-vacuum, so that purges can give space back to the disk (see
            # SqliteStore.purge_instance): it takes effect on a new file only, so before
            # journal_mode=WAL, which writes the file's first page. A file made without it
            # keeps its mode until VACUUMed (see the README). Set on an empty file only:
            # setting it counts as a change, which would wake every process on the file.
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
        if not self.is_uri:
            # (after journal_mode=WAL: the file exists now, even a new one)
            if self._identity is None:
                self._identity = _identity(self.database)
            try:
                self.check_file()
            except StoreLostError:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                raise
        with self._connections_lock:
            self._connections.append((threading.current_thread(), conn))
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        Raises:
            StoreUnavailableError: the store was closed.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self.lost is not None:
            raise StoreLostError(self.lost)
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

    def write(
        self,
        *,
        notify: bool = True,
        durable: bool = True,
        kinds: tuple[bool, bool] = (True, True),
    ) -> AbstractContextManager[sqlite3.Connection]:
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
        return _Write(self, notify, durable, kinds)

    def _commit(self, conn: sqlite3.Connection, durable: bool) -> None:
        """Commit the write transaction under way (the write lock is held)."""
        identity = self._identity  # (see check_file: when, and what it costs)
        if identity is None:
            pass
        elif durable and self.synchronous in ("FULL", "EXTRA"):
            try:  # (check_file's test, inline: this is every syncing commit)
                st = os.stat(self.database)
            except OSError:
                st = None
            if st is None or st.st_ino != identity[1] or st.st_dev != identity[0]:
                self.check_file()
        elif time.monotonic() >= self._check_due:
            self.check_file()
        fault = faults.hook
        if fault is not None:
            fault("before")
        conn.execute("COMMIT")
        if fault is not None:
            fault("after")

    def errors(self) -> AbstractContextManager[None]:
        """Translate ``sqlite3`` errors into :class:`~treadle.errors.StoreError`.

        An outage is :class:`~treadle.errors.StoreUnavailableError`, which workers wait out
        and retry, never failing a workflow over it: a database still locked by another
        process after the busy timeout, a full disk, an I/O error, a file that cannot be
        opened or written (read-only), no memory, a damaged file. The rest is a plain
        :class:`~treadle.errors.StoreError`: a refusal of what was asked (a value too big
        for SQLite, a constraint), which no retry would change.
        """
        return self._errors

    def check_file(self) -> None:
        """Check that the path still names the file this store opened.

        Deleted or replaced (``rm``, ``mv`` over it, a restore from a backup), the file this
        store writes is no longer the one any other process opens: a write would be
        acknowledged and lost. Checked as each thread connects, and before every commit
        that syncs (``synchronous=full``, the default: a ``stat`` of the path, microseconds,
        against the commit's fsync, milliseconds); before a commit that does not sync (lease
        bookkeeping, or every commit under ``synchronous=normal``, which gives up the last
        commits on power loss anyway) at most every ``_CHECK_S``.

        Raises:
            StoreLostError: the file is gone or another; from now on every call of this
                store raises it.
        """
        if self._identity is None or self.lost is not None:
            if self.lost is not None:
                raise StoreLostError(self.lost)
            return
        self._check_due = time.monotonic() + _CHECK_S
        try:
            now = _identity(self.database)
        except OSError:  # (cannot tell: no permission to look, say)
            return
        if now == self._identity:
            return
        what = "was deleted" if now is None else "was replaced by another file"
        self.lost = (
            f"SQLite database {self.database!r} (store {self.url}) {what} while this "
            "process had it open; nothing more is written to it, since no other process "
            "would read it. Restore the file (or keep the new one) and restart this process"
        )
        raise StoreLostError(self.lost)

    def reclaim(self, pages: int) -> None:
        """Give the file's free pages back to the disk once there are at least ``pages``
        (after a purge; up to eight times that many at a time). Needs a file made with
        incremental auto-vacuum: in another, it does nothing."""
        conn = self.conn()
        with self.errors():
            if conn.execute("PRAGMA freelist_count").fetchone()[0] < pages:
                return
            with self.shared.write_lock:
                # A script: execute() would step the pragma once, which frees one page.
                try:
                    conn.executescript(
                        f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(pages) * 8}); COMMIT;"
                    )
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise

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
