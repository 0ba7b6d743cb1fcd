"""SqliteStore: the embedded default backend (stdlib sqlite3, WAL, one writer at a time).

Durability: WAL with ``synchronous=FULL`` by default, so every acknowledged commit survives a
power cut; ``?synchronous=normal`` in the URL trades that for speed (a crash of the process
still loses nothing, a crash of the machine may lose the last commits).

Each thread gets its own connection (:mod:`.connection`). Writers in one process queue on a
Python lock before ``BEGIN IMMEDIATE`` (no busy-wait); writers in other processes wait on
SQLite's busy timeout. Other processes' commits are noticed cheaply with
``PRAGMA data_version``, and announced by datagrams (:mod:`.wake`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from treadle.core.history import HistoryEvent, OrchestrationStatus
from treadle.errors import (
    FailureDetails,
    InvalidInputError,
    StoreUnavailableError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.store.apps import WaitingWork, WorkerInfo, WorkerRecord
from treadle.store.base import (
    ActivityResult,
    ActivityWorkItem,
    CommitOutcome,
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    NewInstance,
    NewMessage,
    OrchestrationWorkItem,
    TurnCommit,
    WorkToken,
)
from treadle.store.serde import (
    INSTANCE_COLUMNS,
    decode_event,
    from_epoch,
    instance_from_row,
    to_epoch,
)
from treadle.store.sqlite import apps as app_rows
from treadle.store.sqlite.chores import ChoreMethods
from treadle.store.sqlite.claims import (
    claim_activities,
    claim_orchestrations,
    heartbeat_activity,
    release_leases,
    renew_activity_leases,
    renew_leases,
)
from treadle.store.sqlite.commit import commit_turns
from treadle.store.sqlite.connection import Connections, parse_sqlite_url
from treadle.store.sqlite.prefix import prefix_filter
from treadle.store.sqlite.rows import (
    TERMINAL_NAMES,
    clear_own_task,
    create_instance,
    delete_instance,
    insert_message,
)
from treadle.store.sqlite.schema import apply_migrations, schema_status
from treadle.store.sqlite.shared import acquire, release

__all__ = ["RECLAIM_PAGES", "STORE_CLASS", "WORK_POLL_S", "SqliteStore", "migrate"]

RECLAIM_PAGES = 256
"""A purge that leaves at least this many free pages in the file (1 MiB of 4 KiB pages)
gives them back to the disk, up to eight times as many at a time."""

WORK_POLL_S = 0.25
"""How often a worker's change token looks at other connections' commits while wake-ups
arrive (see :meth:`SqliteStore.change_token`)."""


class SqliteStore(ChoreMethods):
    """The embedded SQLite store.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, or ``memory://`` for a
            private in-memory database shared by the threads of this process.
        clock: seconds since the epoch (injected by tests).
    """

    groups_starts: Literal[True] = True
    """Turns that create their instance are committed in a group with others (see
    :class:`~treadle.store.capabilities.StartGrouping`)."""

    def __init__(
        self, url: str = "sqlite:///treadle.db", *, clock: Callable[[], float] | None = None
    ):
        self.url = url
        database, is_uri, synchronous = parse_sqlite_url(url)
        self._clock = clock or time.time
        self._local = threading.local()  # this thread's last look at data_version
        key = database if is_uri else os.path.abspath(database)
        self._shared = acquire(key, is_file=not is_uri)  # released by close
        try:
            self._db = Connections(url, database, is_uri, synchronous, self._shared)
        except BaseException:
            release(self._shared)
            raise
        try:
            with self._db.errors(), self._db.write() as conn:
                apply_migrations(conn, database)
        except BaseException:
            self.close()
            raise

    def connect_thread(self) -> None:
        """Open the calling thread's connection now, if it has none (see
        :class:`~treadle.store.capabilities.ThreadConnections`)."""
        with self._db.errors():
            self._db.conn()

    def close(self) -> None:
        """Close the store: every later call raises StoreUnavailableError (see
        :meth:`.Connections.close`). The last store of this process on a database closes
        what they shared (see :mod:`.shared`)."""
        if self._db.closed:
            return
        self._db.close()
        release(self._shared)

    def now(self) -> datetime:
        """The store's clock."""
        return from_epoch(self._clock())

    # ---- clients ------------------------------------------------------------------------
    def create_instance(self, new: NewInstance) -> None:
        """Create an instance and queue its ExecutionStarted message (see Store)."""
        now = self._clock()
        # a rerun may come with activity tasks to run; a start only with an instance to claim
        with self._db.errors(), self._db.write(kinds=(True, bool(new.activities))) as conn:
            create_instance(conn, new, now)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        with self._db.errors():
            row = (
                self._db.conn()
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
        order = "created_at DESC, instance_id DESC"
        if query.id_prefix:
            with self._db.errors():
                clause, more_params, order = prefix_filter(self._db.conn(), query.id_prefix)
            clauses.append(clause)
            params.extend(more_params)
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
        with self._db.errors():
            rows = (
                self._db.conn()
                .execute(
                    f"SELECT {INSTANCE_COLUMNS} FROM instances {where} ORDER BY {order} LIMIT ?",
                    (*params, limit + 1),
                )
                .fetchall()
            )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = f"{rows[-1][8]!r}|{rows[-1][0]}" if more and rows else None
        return InstancePage([instance_from_row(r) for r in rows], cursor)

    def count_instances(self) -> list[tuple[str, OrchestrationStatus, int]]:
        """How many instances each workflow name has in each status (see InstanceCounter)."""
        with self._db.errors():
            rows = (
                self._db.conn()
                .execute(
                    "SELECT name, status, count(*) FROM instances "
                    "GROUP BY name, status ORDER BY name, status"
                )
                .fetchall()
            )
        return [(r[0], OrchestrationStatus[r[1]], r[2]) for r in rows]

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history, oldest first."""
        with self._db.errors():
            rows = (
                self._db.conn()
                .execute(
                    "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
                )
                .fetchall()
            )
        return [decode_event(r[0]) for r in rows]

    def send_message(self, message: NewMessage) -> None:
        """Put a message in an existing instance's inbox (see Store)."""
        self.signal_instance(message)

    def signal_instance(
        self, message: NewMessage, *, shown_status: OrchestrationStatus | None = None
    ) -> bool:
        """Queue a control message; show its status at once if nobody holds the instance
        (see Store)."""
        now = self._clock()
        with self._db.errors(), self._db.write(kinds=(True, False)) as conn:
            row = conn.execute(
                "SELECT status, lease_owner IS NOT NULL AND lease_expires_at >= ? "
                "FROM instances WHERE instance_id = ?",
                (now, message.instance_id),
            ).fetchone()
            if row is None:
                raise WorkflowNotFoundError(
                    f"no workflow instance with id {message.instance_id!r}; "
                    "check the id (list them with `treadle workflow list`)"
                )
            status, leased = row[0], bool(row[1])
            visible = to_epoch(message.visible_at) if message.visible_at else now
            if status == "PENDING" and message.event.KIND != "ExecutionTerminated":
                start = conn.execute(
                    "SELECT MIN(visible_at) FROM inbox WHERE instance_id = ?",
                    (message.instance_id,),
                ).fetchone()
                if start[0] is not None:
                    visible = max(visible, start[0])
            insert_message(conn, message, visible)
            if (
                shown_status is not None
                and not leased
                and status in _SHOWABLE
                and status != shown_status.name
            ):
                conn.execute(
                    "UPDATE instances SET status = ?, version = version + 1, updated_at = ? "
                    "WHERE instance_id = ?",
                    (shown_status.name, now, message.instance_id),
                )
            return leased

    def purge_instance(self, instance_id: str, *, recursive: bool = True) -> int:
        """Delete a finished instance and, if ``recursive``, its finished descendants."""
        # clients waiting on them are woken; workers have nothing to claim
        with self._db.errors(), self._db.write(kinds=(False, False)) as conn:
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
                f"AND status NOT IN ({','.join('?' * len(TERMINAL_NAMES))})",
                (*ids, *TERMINAL_NAMES),
            ).fetchall()
            if running:
                which = ", ".join(f"{r[0]!r} ({r[1]})" for r in running)
                raise WorkflowStateError(
                    f"cannot purge {instance_id!r}: {which} has not finished; "
                    "terminate it first or wait for it to finish"
                )
            for iid in ids:
                delete_instance(conn, iid)
        self._db.reclaim(RECLAIM_PAGES)
        return len(ids)

    def child_instance_ids(self, instance_id: str) -> list[str]:
        """Ids of instances whose parent is ``instance_id``."""
        with self._db.errors():
            rows = (
                self._db.conn()
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
        self,
        owner: str,
        limit: int,
        lease_s: float,
        exclude: Sequence[str] = (),
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible inbox messages, of ``app_id`` and the workflows
        ``names`` (any when None); return them with those messages."""
        return claim_orchestrations(
            self._db, owner, limit, lease_s, exclude, self._clock(), app_id=app_id, names=names
        )

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        """Commit many turns in one transaction; a turn whose fence fails is refused alone.

        Turns that create their instance may be among them (see :attr:`groups_starts`).
        """
        return commit_turns(self._db, owner, turns, self._clock(), lease_s)

    def claim_activities(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
        except_names: Sequence[str] = (),
    ) -> list[ActivityWorkItem]:
        """Lease visible activity tasks that nobody holds (or whose lease expired), of
        ``app_id`` and the activities ``names`` (any when None)."""
        return claim_activities(
            self._db,
            owner,
            limit,
            lease_s,
            self._clock(),
            app_id=app_id,
            names=names,
            except_names=except_names,
        )

    # ---- apps and workers ----------------------------------------------------------------
    def advertise_worker(self, worker: WorkerInfo, *, stopped: bool = False) -> None:
        """Record what ``worker`` takes, heard from now; ``stopped``: it shut down."""
        app_rows.advertise_worker(self._db, worker, stopped, self._clock())

    def list_workers(self) -> list[WorkerRecord]:
        """Every advertisement kept, by owner."""
        return app_rows.list_workers(self._db)

    def waiting_work(self, visible_before: datetime) -> list[WaitingWork]:
        """The work nobody holds, visible before ``visible_before``, in groups."""
        return app_rows.waiting_work(self._db, to_epoch(visible_before), self._clock())

    def fail_waiting(
        self, work: WaitingWork, failure: FailureDetails, visible_before: datetime
    ) -> int:
        """Fail the waiting calls of ``work``'s group; return how many."""
        return app_rows.fail_waiting(
            self._db, work, failure, to_epoch(visible_before), self._clock()
        )

    def note_waiting(self, notes: Sequence[tuple[WaitingWork, str]]) -> None:
        """Set the waiting notes of the groups' instances; clear every other one."""
        now = self._clock()
        app_rows.note_waiting(self._db, notes, now, now)

    def complete_activities(self, owner: str, results: Sequence[ActivityResult]) -> None:
        """Deliver activity results to their inboxes and delete the tasks, atomically."""
        if not results:
            return
        now = self._clock()
        with self._db.errors(), self._db.write(kinds=(True, False)) as conn:
            for result in results:
                if result.task.id < 0:  # an own task: recorded by whoever clears it
                    if not clear_own_task(conn, result.task):
                        continue
                else:
                    cur = conn.execute("DELETE FROM activity_tasks WHERE id = ?", (result.task.id,))
                    if cur.rowcount == 0:
                        continue  # already delivered, or the run finished
                message = NewMessage(
                    result.task.instance_id, result.event, execution_id=result.task.execution_id
                )
                insert_message(conn, message, now)

    def renew_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int], lease_s: float
    ) -> list[str]:
        """Extend leases; return the instance ids this owner no longer holds."""
        return renew_leases(self._db, owner, instance_ids, activity_ids, lease_s, self._clock())

    def release_leases(self, owner: str, instance_ids: Sequence[str] | None = None) -> None:
        """Give up this owner's leases (all of them when ``instance_ids`` is None)."""
        release_leases(self._db, owner, instance_ids, self._clock())

    def renew_activity_leases(
        self, owner: str, activity_ids: Sequence[int], lease_s: float
    ) -> list[int]:
        """Extend activity leases (see :meth:`Store.renew_activity_leases`)."""
        if not activity_ids:
            return []
        return renew_activity_leases(self._db, owner, activity_ids, lease_s, self._clock())

    def heartbeat_activity(
        self, owner: str, activity_id: int, details: str | None, lease_s: float
    ) -> bool:
        """Record an activity's heartbeat (see :meth:`Store.heartbeat_activity`)."""
        return heartbeat_activity(self._db, owner, activity_id, details, lease_s, self._clock())

    def lease_owners(self) -> list[str]:
        """Owners currently holding any lease."""
        with self._db.errors():
            rows = (
                self._db.conn()
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
        with self._db.errors():
            conn = self._db.conn()
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

    def work_outlook(self) -> tuple[bool, float | None]:
        """Whether work is due or running now (a message visible, an activity task in the
        table or in an instance's row), and the earliest future time a message becomes
        visible (None: none).

        What :class:`treadle.testing.WorkflowTestEnvironment` reads to jump its virtual
        clock to the next timer when nothing else is left to do.
        """
        now = self._clock()
        with self._db.errors():
            conn = self._db.conn()
            busy = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE visible_at <= ?) "
                "OR EXISTS (SELECT 1 FROM activity_tasks) "
                "OR EXISTS (SELECT 1 FROM instances WHERE own_task IS NOT NULL)",
                (now,),
            ).fetchone()[0]
            due = conn.execute(
                "SELECT MIN(visible_at) FROM inbox WHERE visible_at > ?", (now,)
            ).fetchone()[0]
        return bool(busy), due

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
        here = self._shared
        if not work_only:
            return (here.generation, self._db.data_version())
        wake = here.wake
        if wake is None:
            version = 0  # in memory: every writer is in this process and wakes the others
        elif wake.listening:
            now = time.monotonic()
            polled = getattr(self._local, "work_poll", None)
            if polled is None or now - polled[0] >= WORK_POLL_S:
                polled = self._local.work_poll = (now, self._db.data_version())
            version = polled[1]
        else:
            version = self._db.data_version()
        return WorkToken((here.orchestrations, version), (here.activities, version))

    def wait_for_work(
        self, timeout_s: float, since: object = None, work_only: bool = False
    ) -> object:
        """Block until the change token differs from ``since`` or ``timeout_s`` passed.

        Commits that others act on wake the waiter at once, in this process and in others
        on the same file (a datagram, see :mod:`.wake`): a ``work_only`` waiter only those
        that give work; any commit of another connection is also seen within 20 ms
        (``PRAGMA data_version``), or within :data:`WORK_POLL_S` by a ``work_only`` waiter
        that has the wake-ups. Returns the current token (of the kind ``work_only`` says,
        as :meth:`change_token`).
        """
        if self._db.closed:
            raise StoreUnavailableError(f"the store {self.url!r} was closed")
        deadline = time.monotonic() + timeout_s
        here = self._shared
        if here.wake is not None:
            here.wake.listen()
        # A worker waits for wake-ups that give work only (see Shared.work_changed).
        changed = here.work_changed if work_only else here.changed
        while True:
            generation = self._generation(work_only)
            token = self.change_token(work_only)
            if since is not None and token != since:
                return token
            since = token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return token
            with changed:
                if self._generation(work_only) == generation:
                    changed.wait(min(remaining, 0.02))

    def _generation(self, work_only: bool) -> int:
        """The count of this process's wake-ups a waiter of that kind hears of."""
        here = self._shared
        return here.work_generation if work_only else here.generation


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


# The statuses a control message may show at once (see Store.signal_instance).
_SHOWABLE = frozenset({"RUNNING", "SUSPENDED"})
