"""SqliteStore: the embedded default backend (stdlib sqlite3, WAL, one writer at a time).

Durability: WAL with ``synchronous=FULL`` by default, so every acknowledged commit survives a
power cut; ``?synchronous=normal`` in the URL trades that for speed (a crash of the process
still loses nothing, a crash of the machine may lose the last commits).

Each thread gets its own connection. Writers in one process queue on a Python lock before
``BEGIN IMMEDIATE`` (no busy-wait); writers in other processes wait on SQLite's busy timeout.
Other processes' commits are noticed cheaply with ``PRAGMA data_version``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from urllib.parse import parse_qs, unquote, urlparse

from treadle.core.history import HistoryEvent, OrchestrationStatus
from treadle.errors import (
    InvalidInputError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
    WorkflowAlreadyExistsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.store.base import (
    ID_TAKEN,
    ActivityResult,
    ActivityWorkItem,
    CommitOutcome,
    InboxMessage,
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    NewActivity,
    NewInstance,
    NewMessage,
    OrchestrationWorkItem,
    TurnCommit,
    WorkToken,
    check_creating,
    gives_activity_work,
    gives_orchestration_work,
    next_own_task_id,
    own_task_from_json,
    own_task_matches,
    own_task_update,
)
from treadle.store.migrations import migration_sql
from treadle.store.serde import (
    INSTANCE_COLUMNS,
    child_refused,
    decode_event,
    encode_event,
    encode_failure,
    from_epoch,
    instance_from_row,
    to_epoch,
)
from treadle.store.sqlite_wake import WakeChannel

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_TERMINAL_NAMES = tuple(s.name for s in OrchestrationStatus if s.is_terminal)


class _Shared:
    """Per-database state shared by every SqliteStore of this process on that file."""

    def __init__(self, database: str | None) -> None:
        self.write_lock = threading.Lock()
        self.changed = threading.Condition()
        self.generation = 0  # every wake-up
        self.orchestrations = 0  # those of instances to claim
        self.activities = 0  # those of activity tasks to claim
        self.wake = WakeChannel(database, self.notify_local) if database else None

    def notify_local(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Wake this process's waiters: workers of the kinds of work given, clients always."""
        with self.changed:
            self.generation += 1
            self.orchestrations += orchestrations
            self.activities += activities
            self.changed.notify_all()

    def notify(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Wake the waiters of this process and of the others on the same file."""
        self.notify_local(orchestrations, activities)
        if self.wake is not None:
            self.wake.broadcast(orchestrations, activities)


_LAPSED_OWN = (
    "SELECT 1 FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
    "AND own_task IS NOT NULL"
)
"""Instances whose lease lapsed with an own task (uses the index instances_held)."""

WORK_POLL_S = 0.25
"""How often a worker's change token looks at other connections' commits while wake-ups
arrive (see :meth:`SqliteStore.change_token`)."""


@functools.lru_cache(maxsize=8)
def _turn_sql(sets_own: bool, lease: str) -> str:
    """A turn's fenced instance update: with the own task column or not; ``lease`` "set"
    assigns the lease columns, "keep" leaves them (its fence asks for half a lease left)."""
    sql = (
        "UPDATE instances SET status = ?, execution_id = ?, input = COALESCE(?, input), "
        "output = ?, failure = ?, custom_status = ?, updated_at = ?, history_len = ?, "
        "version = version + 1"
    )
    if sets_own:
        sql += ", own_task = ?"
    if lease == "set":
        sql += ", lease_owner = ?, lease_expires_at = ?"
    return sql + (
        " WHERE instance_id = ? AND lease_owner = ? AND lease_expires_at >= ? AND version = ?"
    )


def _insert_instance(
    conn: sqlite3.Connection,
    new: NewInstance,
    now: float,
    *,
    lease: tuple[str, float] | None = None,
) -> bool:
    """Insert ``new``'s row, PENDING; with ``lease`` (owner, until), leased, and only if the
    id is free (False: it was not). Without, the caller has made room for it."""
    owner, expires = lease if lease is not None else (None, None)
    cur = conn.execute(
        "INSERT INTO instances (instance_id, name, status, execution_id, input, created_at, "
        "updated_at, parent_instance_id, lease_owner, lease_expires_at) "
        "VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?)"
        + (" ON CONFLICT (instance_id) DO NOTHING" if lease is not None else ""),
        (
            new.instance_id,
            new.name,
            new.execution_id,
            new.input,
            now,
            now,
            new.parent.instance_id if new.parent else None,
            owner,
            expires,
        ),
    )
    return cur.rowcount == 1


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()


def _shared_for(key: str, is_file: bool) -> _Shared:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _Shared(key if is_file else None)
        return shared


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


class SqliteStore:
    """The embedded SQLite store.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, or ``memory://`` for a
            private in-memory database shared by the threads of this process.
        clock: seconds since the epoch (injected by tests).
    """

    def __init__(
        self, url: str = "sqlite:///treadle.db", *, clock: Callable[[], float] | None = None
    ):
        self.url = url
        self._database, self._is_uri, self._synchronous = parse_sqlite_url(url)
        self._clock = clock or time.time
        self._local = threading.local()
        # every connection opened, with the thread it serves (see close)
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        key = self._database if self._is_uri else os.path.abspath(self._database)
        self._shared = _shared_for(key, not self._is_uri)
        self._closed = False
        # what the commits of the current transaction give others: instances to claim,
        # activities to claim, a changed status (see _write)
        self._pending_kinds = [False, False, False]
        self._keepalive: sqlite3.Connection | None = None
        if self._is_uri:
            self._keepalive = self._connect()
        self._migrate()

    # ---- connections ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            if not self._is_uri:
                directory = os.path.dirname(os.path.abspath(self._database))
                os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(
                self._database,
                uri=self._is_uri,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
            if not self._is_uri:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(
                f"cannot open SQLite database {self._database!r}: {exc}"
            ) from exc
        except OSError as exc:  # its directory could not be made
            raise StoreUnavailableError(
                f"cannot open SQLite database {self._database!r}: cannot create its directory "
                f"({exc.strerror or exc}); choose a path this process can write"
            ) from exc
        with self._connections_lock:
            self._connections.append((threading.current_thread(), conn))
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self._closed:
            if conn is not None:  # left open by close(): this thread may have been using it
                self._local.conn = None
                self._forget(conn)
            raise StoreUnavailableError(f"the store {self.url!r} was closed")
        if conn is None:
            conn = self._local.conn = self._connect()
            self._local.data_version = None
        return conn

    @contextlib.contextmanager
    def _write(
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
        waiting client acts on) pass ``notify=False``; turns say what they give themselves.

        ``durable=False`` skips the fsync of this one commit: for lease bookkeeping only
        (claims, renewals, releases), whose loss in a crash is the same as the lease
        expiring. The next durable commit syncs it along with its own changes.
        """
        conn = self._conn()
        relax = not durable and self._synchronous in ("FULL", "EXTRA")
        with self._shared.write_lock:
            try:
                if relax:
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"cannot start a write on {self.url}: {exc}") from exc
            self._pending_kinds = [False, False, False]
            before = conn.total_changes
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            finally:
                if relax:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute(f"PRAGMA synchronous={self._synchronous}")
            changed = conn.total_changes != before
            # taken under the lock: the next transaction's commits set the next ones
            pending, self._pending_kinds = self._pending_kinds, [False, False, False]
        if changed and notify:
            self._shared.notify(*kinds)
        elif changed and any(pending):
            self._shared.notify(orchestrations=pending[0], activities=pending[1])

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error on {self.url}: {exc}") from exc

    def _migrate(self) -> None:
        with self._errors(), self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database {self._database!r} has schema version {current}, newer than "
                    f"this treadle understands ({SCHEMA_VERSION}); upgrade treadle"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                sql = migration_sql("sqlite", version)
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def close(self) -> None:
        """Close the store: every later call raises StoreUnavailableError.

        Connections of this thread and of threads that ended are closed now; one that
        another live thread holds is closed by that thread at its next call, since it may be
        using it this very moment (closing a connection under a running statement crashes
        the process)."""
        self._closed = True
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

    def now(self) -> datetime:
        """The store's clock."""
        return from_epoch(self._clock())

    # ---- clients ------------------------------------------------------------------------
    def create_instance(self, new: NewInstance) -> None:
        """Create an instance and queue its ExecutionStarted message (see Store)."""
        now = self._clock()
        # a rerun may come with activity tasks to run; a start only with an instance to claim
        with self._errors(), self._write(kinds=(True, bool(new.activities))) as conn:
            self._create_instance(conn, new, now)

    def _create_instance(self, conn: sqlite3.Connection, new: NewInstance, now: float) -> None:
        row = conn.execute(
            "SELECT status FROM instances WHERE instance_id = ?", (new.instance_id,)
        ).fetchone()
        if row is not None:
            if row[0] not in _TERMINAL_NAMES:
                raise WorkflowAlreadyExistsError(
                    f"workflow instance {new.instance_id!r} already exists and is {row[0]}; "
                    "wait for it to finish, terminate it, or choose another instance id"
                )
            self._delete_instance(conn, new.instance_id)
        _insert_instance(conn, new, now)
        if new.history:
            self._adopt_history(conn, new, now)
            return
        start = new.started_event(from_epoch(now))
        visible = max(now, to_epoch(new.scheduled_start)) if new.scheduled_start else now
        conn.execute(
            "INSERT INTO inbox (instance_id, execution_id, event, visible_at) VALUES (?, ?, ?, ?)",
            (new.instance_id, new.execution_id, encode_event(start), visible),
        )

    def _adopt_history(self, conn: sqlite3.Connection, new: NewInstance, now: float) -> None:
        """Start a created instance from a given history (a rerun), RUNNING."""
        conn.executemany(
            "INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
            [(new.instance_id, i, encode_event(e)) for i, e in enumerate(new.history)],
        )
        conn.execute(
            "UPDATE instances SET status = 'RUNNING', history_len = ? WHERE instance_id = ?",
            (len(new.history), new.instance_id),
        )
        for task in new.activities:
            self._insert_activity(conn, task, None, now, 0.0)
        for message in new.messages:
            visible = to_epoch(message.visible_at) if message.visible_at else now
            self._insert_message(conn, message, visible)

    @staticmethod
    def _delete_instance(conn: sqlite3.Connection, instance_id: str) -> None:
        for table in ("history", "inbox", "activity_tasks", "instances"):
            conn.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        with self._errors():
            row = (
                self._conn()
                .execute(
                    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?",
                    (instance_id,),
                )
                .fetchone()
            )
        return None if row is None else instance_from_row(row)

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        """A page of instances matching ``query``, newest first."""
        clauses: list[str] = []
        params: list[object] = []
        if query.statuses:
            clauses.append(f"status IN ({','.join('?' * len(query.statuses))})")
            params.extend(s.name for s in query.statuses)
        if query.name:
            clauses.append("name = ?")
            params.append(query.name)
        if query.created_from:
            clauses.append("created_at >= ?")
            params.append(to_epoch(query.created_from))
        if query.created_to:
            clauses.append("created_at < ?")
            params.append(to_epoch(query.created_to))
        if query.cursor:
            try:
                created_s, after_id = query.cursor.split("|", 1)
                created = float(created_s)
            except ValueError as exc:
                raise InvalidInputError(f"bad page cursor {query.cursor!r}") from exc
            clauses.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
            params.extend([created, created, after_id])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = max(1, min(query.limit, 10_000))
        with self._errors():
            rows = (
                self._conn()
                .execute(
                    f"SELECT {INSTANCE_COLUMNS} FROM instances {where} "
                    "ORDER BY created_at DESC, instance_id DESC LIMIT ?",
                    (*params, limit + 1),
                )
                .fetchall()
            )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = f"{rows[-1][8]!r}|{rows[-1][0]}" if more and rows else None
        return InstancePage([instance_from_row(r) for r in rows], cursor)

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history, oldest first."""
        with self._errors():
            rows = (
                self._conn()
                .execute(
                    "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
                )
                .fetchall()
            )
        return [decode_event(r[0]) for r in rows]

    def send_message(self, message: NewMessage) -> None:
        """Put a message in an existing instance's inbox (see Store)."""
        now = self._clock()
        with self._errors(), self._write(kinds=(True, False)) as conn:
            row = conn.execute(
                "SELECT status FROM instances WHERE instance_id = ?", (message.instance_id,)
            ).fetchone()
            if row is None:
                raise WorkflowNotFoundError(
                    f"no workflow instance with id {message.instance_id!r}; "
                    "check the id (list them with `treadle workflow list`)"
                )
            visible = to_epoch(message.visible_at) if message.visible_at else now
            if row[0] == "PENDING" and message.event.KIND != "ExecutionTerminated":
                start = conn.execute(
                    "SELECT MIN(visible_at) FROM inbox WHERE instance_id = ?",
                    (message.instance_id,),
                ).fetchone()
                if start[0] is not None:
                    visible = max(visible, start[0])
            self._insert_message(conn, message, visible)

    @staticmethod
    def _insert_message(conn: sqlite3.Connection, message: NewMessage, visible: float) -> None:
        conn.execute(
            "INSERT INTO inbox (instance_id, execution_id, event, visible_at) VALUES (?, ?, ?, ?)",
            (message.instance_id, message.execution_id, encode_event(message.event), visible),
        )

    def purge_instance(self, instance_id: str, *, recursive: bool = True) -> int:
        """Delete a finished instance and, if ``recursive``, its finished descendants."""
        # clients waiting on them are woken; workers have nothing to claim
        with self._errors(), self._write(kinds=(False, False)) as conn:
            row = conn.execute(
                "SELECT status FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            if row is None:
                return 0
            ids = [instance_id]
            if recursive:
                frontier = [instance_id]
                while frontier:
                    marks = ",".join("?" * len(frontier))
                    children = [
                        r[0]
                        for r in conn.execute(
                            "SELECT instance_id FROM instances "
                            f"WHERE parent_instance_id IN ({marks})",
                            frontier,
                        )
                    ]
                    ids.extend(children)
                    frontier = children
            marks = ",".join("?" * len(ids))
            running = conn.execute(
                f"SELECT instance_id, status FROM instances WHERE instance_id IN ({marks}) "
                f"AND status NOT IN ({','.join('?' * len(_TERMINAL_NAMES))})",
                (*ids, *_TERMINAL_NAMES),
            ).fetchall()
            if running:
                which = ", ".join(f"{r[0]!r} ({r[1]})" for r in running)
                raise WorkflowStateError(
                    f"cannot purge {instance_id!r}: {which} has not finished; "
                    "terminate it first or wait for it to finish"
                )
            for iid in ids:
                self._delete_instance(conn, iid)
            return len(ids)

    def child_instance_ids(self, instance_id: str) -> list[str]:
        """Ids of instances whose parent is ``instance_id``."""
        with self._errors():
            rows = (
                self._conn()
                .execute(
                    "SELECT instance_id FROM instances WHERE parent_instance_id = ? "
                    "ORDER BY instance_id",
                    (instance_id,),
                )
                .fetchall()
            )
        return [r[0] for r in rows]

    # ---- workers ------------------------------------------------------------------------
    def claim_orchestrations(
        self, owner: str, limit: int, lease_s: float, exclude: Sequence[str] = ()
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible inbox messages; return them with those messages."""
        now = self._clock()
        excluded = set(exclude)
        with self._errors():
            # A cheap read first: most calls find nothing, and then take no write lock.
            found = (
                self._conn()
                .execute(
                    "SELECT 1 FROM inbox m JOIN instances i ON i.instance_id = m.instance_id "
                    "WHERE m.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_owner = ? "
                    "OR i.lease_expires_at < ?) LIMIT ?",
                    (now, owner, now, len(excluded) + 1),
                )
                .fetchall()
            )
        if not found:
            return []
        with self._errors(), self._write(notify=False, durable=False) as conn:
            candidates = conn.execute(
                "SELECT i.instance_id FROM inbox m "
                "JOIN instances i ON i.instance_id = m.instance_id "
                "WHERE m.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_owner = ? "
                "OR i.lease_expires_at < ?) GROUP BY i.instance_id ORDER BY MIN(m.id) LIMIT ?",
                (now, owner, now, limit + len(excluded)),
            ).fetchall()
            ids = [r[0] for r in candidates if r[0] not in excluded][:limit]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            # taken over from another owner, or from a lapsed lease: its own task, if any,
            # goes to the queue (see OWN_TASK_RULES)
            self._enqueue_own_tasks(
                conn,
                "(lease_owner IS NULL OR lease_owner <> ? OR lease_expires_at < ?) "
                f"AND instance_id IN ({marks})",
                (owner, now, *ids),
                now,
            )
            conn.execute(
                f"UPDATE instances SET lease_owner = ?, lease_expires_at = ? "
                f"WHERE instance_id IN ({marks})",
                (owner, now + lease_s, *ids),
            )
            records = {
                row[0]: instance_from_row(row)
                for row in conn.execute(
                    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id IN ({marks})", ids
                )
            }
            messages: dict[str, list[InboxMessage]] = {iid: [] for iid in ids}
            for row in conn.execute(
                f"SELECT id, instance_id, execution_id, event FROM inbox "
                f"WHERE instance_id IN ({marks}) AND visible_at <= ? ORDER BY id",
                (*ids, now),
            ):
                messages[row[1]].append(
                    InboxMessage(
                        id=row[0],
                        instance_id=row[1],
                        event=decode_event(row[3]),
                        execution_id=row[2],
                    )
                )
        return [OrchestrationWorkItem(records[iid], messages[iid]) for iid in ids]

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        """Commit many turns in one transaction; a turn whose fence fails is refused alone."""
        if not turns:
            return []
        check_creating(turns)
        now = self._clock()
        outcomes: list[CommitOutcome] = []
        with self._errors(), self._write(notify=False) as conn:
            for turn in turns:
                outcomes.append(self._commit_turn(conn, owner, turn, now, lease_s))
        return outcomes

    def _commit_turn(
        self, conn: sqlite3.Connection, owner: str, turn: TurnCommit, now: float, lease_s: float
    ) -> CommitOutcome:
        iid = turn.instance_id
        keep = turn.keep_lease
        history_len = (0 if turn.reset_history else turn.history_start) + len(turn.new_events)
        created = turn.create
        if created is not None and not self._insert_created(conn, created, owner, now, lease_s):
            return CommitOutcome(iid, ok=False, error=ID_TAKEN)
        task_rows = [a for a in turn.consumed_activities if a > 0]  # negative: the own task
        if not self._tasks_exist(conn, task_rows):
            # A result is recorded by whoever deletes its task row; this one's went to the
            # inbox from another execution (its row is gone): recording it too would repeat it.
            return CommitOutcome(
                iid,
                ok=False,
                error="an activity result in the turn was already delivered (its task is gone)",
            )
        # The fence and the instance's new state in one statement: nothing is written unless
        # this owner holds an unexpired lease on the version the turn was computed from.
        values: tuple[object, ...] = (
            turn.status.name,
            turn.execution_id,
            turn.input,
            turn.output,
            encode_failure(turn.failure),
            turn.custom_status,
            now,
            history_len,
        )
        sets_own, own_value = own_task_update(turn)
        if sets_own:
            values += (own_value,)
        fence = (iid, owner, now, turn.expected_version)
        cur = None
        if keep:
            # A lease with more than half its time left is kept as it is: assigning the
            # lease columns rewrites their index even when unchanged (one more page a step).
            cur = conn.execute(
                _turn_sql(sets_own, "keep"), (*values, iid, owner, now + lease_s / 2, fence[3])
            )
        if cur is None or cur.rowcount == 0:
            lease = (owner, now + lease_s) if keep else (None, None)
            cur = conn.execute(_turn_sql(sets_own, "set"), (*values, *lease, *fence))
        if cur.rowcount == 0:
            return CommitOutcome(iid, ok=False, error=self._refusal(conn, owner, turn, now))
        if turn.reset_history:
            conn.execute("DELETE FROM history WHERE instance_id = ?", (iid,))
        if turn.new_events:
            conn.executemany(
                "INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
                [
                    (iid, turn.history_start + i, encode_event(e))
                    for i, e in enumerate(turn.new_events)
                ],
            )
        if turn.consumed_messages:
            conn.executemany(
                "DELETE FROM inbox WHERE id = ?", [(m,) for m in turn.consumed_messages]
            )
        if task_rows:  # (the own task lives in the instance's row, updated above)
            conn.executemany("DELETE FROM activity_tasks WHERE id = ?", [(a,) for a in task_rows])
        if turn.cancel_activities:
            conn.execute("DELETE FROM activity_tasks WHERE instance_id = ?", (iid,))
        leased_ids: list[int] = []
        for task in turn.new_activities:
            if task.own:
                leased_ids.append(next_own_task_id())
                continue
            row_id = self._insert_activity(conn, task, owner, now, lease_s)
            if task.leased:
                leased_ids.append(row_id)
        for message in turn.new_messages:
            visible = to_epoch(message.visible_at) if message.visible_at else now
            if message.instance_id == iid or self._instance_exists(conn, message.instance_id):
                self._insert_message(conn, message, visible)
        for child in turn.new_instances:
            try:
                self._create_instance(conn, child, now)
            except WorkflowAlreadyExistsError as exc:
                self._insert_message(conn, child_refused(child, str(exc), now), now)
        kinds = self._pending_kinds  # woken after the commit (see _write)
        kinds[0] = kinds[0] or gives_orchestration_work(turn)
        kinds[1] = kinds[1] or gives_activity_work(turn)
        kinds[2] = kinds[2] or (  # its status may have changed: wake clients
            created is None  # (no client waits on an instance that did not exist)
            and (
                turn.status is not OrchestrationStatus.RUNNING
                or turn.history_start == 0
                or turn.reset_history
                or bool(turn.consumed_messages)
            )
        )
        return CommitOutcome(
            iid, ok=True, version=turn.expected_version + 1, new_activity_ids=leased_ids
        )

    @staticmethod
    def _insert_created(
        conn: sqlite3.Connection, new: NewInstance, owner: str, now: float, lease_s: float
    ) -> bool:
        """Insert the row of an instance that its first turn creates (TurnCommit.create),
        leased to ``owner`` for the turn's update to find; False if the id is taken."""
        return _insert_instance(conn, new, now, lease=(owner, now + lease_s))

    @staticmethod
    def _insert_activity(
        conn: sqlite3.Connection, task: NewActivity, owner: str | None, now: float, lease_s: float
    ) -> int:
        leased = task.leased and owner is not None
        cur = conn.execute(
            "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
            "task_execution_id, visible_at, lease_owner, lease_expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.instance_id,
                task.execution_id,
                task.task_id,
                task.name,
                task.input,
                task.task_execution_id,
                now,
                owner if leased else None,
                now + lease_s if leased else None,
            ),
        )
        return int(cur.lastrowid or 0)

    def _enqueue_own_tasks(
        self, conn: sqlite3.Connection, where: str, params: Sequence[object], now: float
    ) -> None:
        """Turn the own tasks of the instances ``where`` selects into ordinary task rows,
        for any worker; their instances' versions move on, fencing off turns that would
        still consume them."""
        rows = conn.execute(
            f"SELECT instance_id, own_task FROM instances WHERE own_task IS NOT NULL AND {where}",
            tuple(params),
        ).fetchall()
        if not rows:
            return
        for iid, text in rows:
            self._insert_activity(conn, own_task_from_json(iid, text), None, now, 0.0)
        conn.executemany(
            "UPDATE instances SET own_task = NULL, version = version + 1 WHERE instance_id = ?",
            [(r[0],) for r in rows],
        )
        self._pending_kinds[1] = True  # woken after the commit (see _write)

    @staticmethod
    def _clear_own_task(conn: sqlite3.Connection, item: ActivityWorkItem) -> bool:
        """Clear the instance's own task if it is ``item``'s (to record its result)."""
        row = conn.execute(
            "SELECT own_task FROM instances WHERE instance_id = ?", (item.instance_id,)
        ).fetchone()
        if row is None or not own_task_matches(row[0], item):
            return False  # recorded already, queued as a row, or the run finished
        conn.execute(
            "UPDATE instances SET own_task = NULL, version = version + 1 WHERE instance_id = ?",
            (item.instance_id,),
        )
        return True

    @staticmethod
    def _refusal(conn: sqlite3.Connection, owner: str, turn: TurnCommit, now: float) -> str:
        """Why a turn's fence failed, for the outcome's error."""
        row = conn.execute(
            "SELECT version, lease_owner, lease_expires_at FROM instances WHERE instance_id = ?",
            (turn.instance_id,),
        ).fetchone()
        if row is None:
            return "the instance no longer exists"
        version, lease_owner, lease_expires_at = row
        if lease_owner != owner:
            return f"lease held by {lease_owner!r}"
        if (lease_expires_at or 0) < now:
            return "the lease expired"
        return f"the instance changed since it was read (version {version})"

    @staticmethod
    def _tasks_exist(conn: sqlite3.Connection, task_ids: Sequence[int]) -> bool:
        """Whether every one of these activity task rows still exists."""
        wanted = set(task_ids)
        if not wanted:
            return True
        marks = ", ".join("?" * len(wanted))
        row = conn.execute(
            f"SELECT COUNT(*) FROM activity_tasks WHERE id IN ({marks})", sorted(wanted)
        ).fetchone()
        return int(row[0]) == len(wanted)

    @staticmethod
    def _instance_exists(conn: sqlite3.Connection, instance_id: str) -> bool:
        return (
            conn.execute("SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
            is not None
        )

    def claim_activities(self, owner: str, limit: int, lease_s: float) -> list[ActivityWorkItem]:
        """Lease visible activity tasks that nobody holds (or whose lease expired)."""
        if limit <= 0:
            return []
        now = self._clock()
        with self._errors():
            found = (
                self._conn()
                .execute(
                    "SELECT 1 FROM activity_tasks WHERE visible_at <= ? AND "
                    f"(lease_owner IS NULL OR lease_expires_at < ?) UNION ALL {_LAPSED_OWN} "
                    "LIMIT 1",
                    (now, now, now),
                )
                .fetchone()
            )
        if found is None:
            return []
        with self._errors(), self._write(notify=False, durable=False) as conn:
            # own tasks of instances whose lease lapsed (their worker died): to the queue
            self._enqueue_own_tasks(
                conn, "lease_owner IS NOT NULL AND lease_expires_at < ?", (now,), now
            )
            rows = conn.execute(
                "SELECT id, instance_id, execution_id, task_id, name, input, task_execution_id "
                "FROM activity_tasks WHERE visible_at <= ? AND "
                "(lease_owner IS NULL OR lease_expires_at < ?) ORDER BY id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            if not rows:
                return []
            conn.executemany(
                "UPDATE activity_tasks SET lease_owner = ?, lease_expires_at = ? WHERE id = ?",
                [(owner, now + lease_s, r[0]) for r in rows],
            )
        return [ActivityWorkItem(*r) for r in rows]

    def complete_activities(self, owner: str, results: Sequence[ActivityResult]) -> None:
        """Deliver activity results to their inboxes and delete the tasks, atomically."""
        if not results:
            return
        now = self._clock()
        with self._errors(), self._write(kinds=(True, False)) as conn:
            for result in results:
                if result.task.id < 0:  # an own task: recorded by whoever clears it
                    if not self._clear_own_task(conn, result.task):
                        continue
                else:
                    cur = conn.execute("DELETE FROM activity_tasks WHERE id = ?", (result.task.id,))
                    if cur.rowcount == 0:
                        continue  # already delivered, or the run finished
                message = NewMessage(
                    result.task.instance_id, result.event, execution_id=result.task.execution_id
                )
                self._insert_message(conn, message, now)

    def renew_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int], lease_s: float
    ) -> list[str]:
        """Extend leases; return the instance ids this owner no longer holds."""
        now = self._clock()
        lost: list[str] = []
        with self._errors(), self._write(notify=False, durable=False) as conn:
            for iid in instance_ids:
                cur = conn.execute(
                    "UPDATE instances SET lease_expires_at = ? WHERE instance_id = ? "
                    "AND lease_owner = ? AND lease_expires_at >= ?",
                    (now + lease_s, iid, owner, now),
                )
                if cur.rowcount == 0:
                    lost.append(iid)
            conn.executemany(  # own tasks (negative ids) live under their instance's lease
                "UPDATE activity_tasks SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
                [(now + lease_s, aid, owner) for aid in activity_ids if aid > 0],
            )
        return lost

    def release_leases(self, owner: str, instance_ids: Sequence[str] | None = None) -> None:
        """Give up this owner's leases (all of them when ``instance_ids`` is None)."""
        with self._errors(), self._write(durable=False) as conn:
            if instance_ids is None:
                self._enqueue_own_tasks(conn, "lease_owner = ?", (owner,), self._clock())
                conn.execute(
                    "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL "
                    "WHERE lease_owner = ?",
                    (owner,),
                )
                conn.execute(
                    "UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = NULL "
                    "WHERE lease_owner = ?",
                    (owner,),
                )
            else:
                marks = ",".join("?" * len(instance_ids))
                self._enqueue_own_tasks(
                    conn,
                    f"lease_owner = ? AND instance_id IN ({marks})",
                    (owner, *instance_ids),
                    self._clock(),
                )
                conn.executemany(
                    "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL "
                    "WHERE instance_id = ? AND lease_owner = ?",
                    [(iid, owner) for iid in instance_ids],
                )

    def lease_owners(self) -> list[str]:
        """Owners currently holding any lease."""
        with self._errors():
            rows = (
                self._conn()
                .execute(
                    "SELECT lease_owner FROM instances WHERE lease_owner IS NOT NULL UNION "
                    "SELECT lease_owner FROM activity_tasks WHERE lease_owner IS NOT NULL"
                )
                .fetchall()
            )
        return sorted(r[0] for r in rows)

    def next_wakeup(self) -> datetime | None:
        """The earliest future visible time of a message or task, if any."""
        now = self._clock()
        with self._errors():
            conn = self._conn()
            a = conn.execute(
                "SELECT MIN(visible_at) FROM inbox WHERE visible_at > ?", (now,)
            ).fetchone()[0]
            b = conn.execute(
                "SELECT MIN(lease_expires_at) FROM activity_tasks WHERE lease_expires_at > ?",
                (now,),
            ).fetchone()[0]
            c = conn.execute(
                # driven by the inbox (pending messages only), not by every instance ever run
                "SELECT MIN(i.lease_expires_at) FROM instances i WHERE i.instance_id IN "
                "(SELECT m.instance_id FROM inbox m) AND i.lease_expires_at > ?",
                (now,),
            ).fetchone()[0]
        times = [t for t in (a, b, c) if t is not None]
        return from_epoch(min(times)) if times else None

    def change_token(self, work_only: bool = False) -> object:
        """An opaque value that changes whenever anything in the database may have changed.

        With ``work_only``, a :class:`~treadle.store.base.WorkToken` whose parts change when
        a worker may find new work of that kind: at once on the wake-ups from this process
        and, through the wake channel, from the others. Both parts follow other
        connections' commits too (writers the wake channel cannot reach, such as a process
        with another temporary directory), but look at them only every :data:`WORK_POLL_S`
        seconds while the wake channel works: most of them are this process's own steps,
        which no other worker needs to hear about.
        """
        shared = self._shared
        if not work_only:
            return (shared.generation, self._data_version())
        wake = shared.wake
        if wake is None:
            version = 0  # in memory: every writer is in this process and wakes the others
        elif wake.listening:
            now = time.monotonic()
            polled = getattr(self._local, "work_poll", None)
            if polled is None or now - polled[0] >= WORK_POLL_S:
                polled = self._local.work_poll = (now, self._data_version())
            version = polled[1]
        else:
            version = self._data_version()
        return WorkToken((shared.orchestrations, version), (shared.activities, version))

    def _data_version(self) -> int:
        """``PRAGMA data_version`` of this thread's connection: it moves when another
        connection committed."""
        conn = self._conn()
        try:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite error on {self.url}: {exc}") from exc

    def wait_for_work(
        self, timeout_s: float, since: object = None, work_only: bool = False
    ) -> object:
        """Block until the change token differs from ``since`` or ``timeout_s`` passed.

        Commits that others act on wake the waiter at once, in this process and in others
        on the same file (a datagram, see :mod:`treadle.store.sqlite_wake`); any commit of
        another connection is also seen within 20 ms (``PRAGMA data_version``), or within
        :data:`WORK_POLL_S` by a ``work_only`` waiter that has the wake-ups. Returns the
        current token (of the kind ``work_only`` says, as :meth:`change_token`).
        """
        deadline = time.monotonic() + timeout_s
        shared = self._shared
        if shared.wake is not None:
            shared.wake.listen()
        while True:
            generation = shared.generation  # every wake-up moves it
            token = self.change_token(work_only)
            if since is not None and token != since:
                return token
            since = token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return token
            with shared.changed:
                if shared.generation == generation:
                    shared.changed.wait(min(remaining, 0.02))


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


def migrate(url: str) -> int:
    """Create or upgrade the schema; return the version now in the database.

    Raises:
        SchemaVersionError: the database is newer than this code.
        StoreUnavailableError: the file cannot be opened.
    """
    SqliteStore(url).close()  # opening a store applies the migrations
    return schema_status(url)[0]


STORE_CLASS = SqliteStore
"""The store class of this backend (for :func:`treadle.store.open_store`)."""
