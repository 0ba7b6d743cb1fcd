"""PostgresStore: the scale-out backend (psycopg 3, a connection pool, SKIP LOCKED, NOTIFY).

Many worker processes on many hosts share one database. Work is claimed with
``FOR [NO KEY] UPDATE SKIP LOCKED`` under a lease whose expiry is computed on the database's
clock (never a worker's), and every turn commit is fenced by lease owner, lease expiry and
the instance's version, exactly as in :class:`~treadle.store.sqlite.SqliteStore`.

Round trips: nearly every operation is one statement in autocommit mode, a transaction of its
own, so one round trip with its COMMIT: creating an instance, sending an event, claiming
instances with their messages (:mod:`.claims`), a group commit of simple turns
(:mod:`.commit`), claiming and completing activities (:mod:`.activities`), renewing and
releasing leases. Times come from ``now()`` in the statements, never from a separate query.
The rest (a commit that creates children or continues as new, reusing an instance id,
purging) is a pipelined transaction of two or three round trips. The busy statements are
prepared on first use and planned generically (see
:func:`~.connection.configure_session`); the busiest (turn commits, claims, starts, reading
one instance) go through libpq directly (:mod:`.libpq`).

URL: ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) with any libpq
parameter in the query string, plus ``?schema=NAME`` to keep treadle's tables in their own
PostgreSQL schema (created if missing). The schema is created and migrated on open, under an
advisory lock, so any number of workers may start at once (:mod:`.schema`).

Wake-ups: writes that another worker or a waiting client may act on send
``NOTIFY treadle_work`` in the same statement (others, such as a turn that keeps its lease and
status and only enqueues activities it runs itself, stay silent, as in SqliteStore), and a
:class:`~.listener.ChangeListener` turns them into change tokens.

Errors: every psycopg error becomes a :class:`~treadle.errors.StoreError` in the connection
layer (:mod:`.connection`), which also replaces broken connections and retries what is safe.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from treadle.core.history import HistoryEvent, OrchestrationStatus
from treadle.errors import (
    FailureDetails,
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
from treadle.store.postgres import apps as app_rows
from treadle.store.postgres.activities import (
    claim_activities,
    complete_activities,
    heartbeat_activity,
    renew_activity_leases,
    rescue_own_tasks,
)
from treadle.store.postgres.chores import ChoreMethods
from treadle.store.postgres.claims import claim_orchestrations_in
from treadle.store.postgres.commit import CommitPath, commit_turns
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.instances import (
    CREATE_SQL,
    GET_SQL,
    adopt_history,
    create_instances_in,
    create_params,
    decode_cursor,
    encode_cursor,
    instance_from_text,
    raise_if_refused,
)
from treadle.store.postgres.listener import ChangeListener
from treadle.store.postgres.schema import open_schema, parse_postgres_url
from treadle.store.postgres.sql import NOSYNC, Conn, Db, enqueue_own_sql, utc
from treadle.store.serde import (
    INSTANCE_COLUMNS,
    decode_event,
    encode_event,
    instance_from_row,
)

__all__ = ["STORE_CLASS", "PostgresStore"]


class PostgresStore(ChoreMethods):
    """The PostgreSQL store, for many workers on many hosts.

    Args:
        url: ``postgresql://user@host:5432/db``, optionally with ``?schema=NAME``.
        min_size: connections the pool keeps open.
        max_size: connections the pool opens at most.
        clock: seconds since the epoch, for tests only; by default every time (leases,
            visibility, timestamps) comes from the database's clock.

    Raises:
        StoreUnavailableError: the server cannot be reached.
        SchemaVersionError: the database's schema is newer than this treadle.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.url = url
        conninfo, schema, self._display = parse_postgres_url(url)
        self._clock = clock
        self._next_rescue = 0.0  # when claim_activities next looks for lapsed own tasks
        schema_name, _version = open_schema(conninfo, schema, self._display, apply=True)
        self._db = Connections(
            conninfo,
            schema,
            schema_name,
            self._display,
            min_size=min_size,
            max_size=max_size,
            clock=clock,
        )
        self._listener = ChangeListener(conninfo, {}, schema_name, self._display)

    def close(self) -> None:
        """Close the pool and the listening connection."""
        if self._db.closed:
            return
        self._db.closed = True
        self._listener.close()
        self._db.close()

    def now(self) -> datetime:
        """The store's clock: the database server's time (or the injected test clock)."""
        return self._db.now()

    # ---- clients ------------------------------------------------------------------------
    def create_instance(self, new: NewInstance) -> None:
        """Create an instance and queue its ExecutionStarted message (see Store).

        A new id costs one statement; an id in use takes a transaction that locks the
        instance, to replace it (finished) or refuse (unfinished).

        Raises:
            WorkflowAlreadyExistsError: an unfinished instance has this id.
        """
        params = create_params(new)
        if params is not None and self._db.raw_statement(
            CREATE_SQL, params, lambda result: result.ntuples > 0, idempotent=False
        ):
            return

        def work(db: Db, conn: Conn) -> Callable[[], None]:
            locked = db.lock_statuses(conn, [new.instance_id])
            now = db.now(conn)  # fetched with the lock: one round trip
            statuses = locked()
            refused, conflicts = create_instances_in(db, conn, [new], statuses, now)
            raise_if_refused(refused)
            if new.history:
                adopt_history(db, conn, new)
            return lambda: raise_if_refused(conflicts())  # nothing was written for these

        self._db.write(work, notify=True, idempotent=False)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        return self._db.raw_statement(GET_SQL, {"iid": instance_id}, instance_from_text)

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        """A page of instances matching ``query``, newest first.

        Raises:
            InvalidInputError: the cursor is not one this store returned.
        """
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if query.statuses:
            clauses.append("status = ANY(%(statuses)s::text[])")
            params["statuses"] = [s.name for s in query.statuses]
        if query.name:
            clauses.append("name = %(name)s")
            params["name"] = query.name
        if query.created_from:
            clauses.append("created_at >= %(created_from)s")
            params["created_from"] = utc(query.created_from)
        if query.created_to:
            clauses.append("created_at < %(created_to)s")
            params["created_to"] = utc(query.created_to)
        if query.id_prefix:
            clauses.append("starts_with(instance_id, %(id_prefix)s)")
            params["id_prefix"] = query.id_prefix
        if query.cursor:
            params["after_at"], params["after_id"] = decode_cursor(query.cursor)
            clauses.append("(created_at, instance_id) < (%(after_at)s, %(after_id)s)")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = max(1, min(query.limit, 10_000))
        params["limit"] = limit + 1
        rows = self._db.run(
            lambda db, conn: conn.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances {where} "
                "ORDER BY created_at DESC, instance_id DESC LIMIT %(limit)s",
                params,
            ).fetchall()
        )
        more = len(rows) > limit
        records = [instance_from_row(r) for r in rows[:limit]]
        cursor = encode_cursor(records[-1]) if more and records else None
        return InstancePage(records, cursor)

    def count_instances(self) -> list[tuple[str, OrchestrationStatus, int]]:
        """How many instances each workflow name has in each status (see InstanceCounter)."""
        rows = self._db.run(
            lambda db, conn: conn.execute(
                "SELECT name, status, count(*) FROM instances "
                "GROUP BY name, status ORDER BY name, status"
            ).fetchall()
        )
        return [(r[0], OrchestrationStatus[r[1]], int(r[2])) for r in rows]

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history, oldest first."""
        rows = self._db.run(
            lambda db, conn: conn.execute(
                "SELECT event FROM history WHERE instance_id = %s ORDER BY seq", (instance_id,)
            ).fetchall()
        )
        return [decode_event(r[0]) for r in rows]

    def send_message(self, message: NewMessage) -> None:
        """Put a message in an existing instance's inbox (see Store).

        Messages for a PENDING instance with a future start become visible at its start
        (except terminate requests).

        Raises:
            WorkflowNotFoundError: no instance has that id.
        """
        # (a share lock, unlike signal_instance: events do not wait for a commit under way)
        rows = self._db.statement(
            "WITH target AS (SELECT instance_id, status FROM instances "
            "  WHERE instance_id = %(iid)s FOR KEY SHARE), "
            "sent AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
            "  SELECT t.instance_id, %(eid)s, %(event)s, CASE WHEN t.status = 'PENDING' "
            "  AND %(delay)s THEN GREATEST(COALESCE(%(visible)s, {now}), (SELECT "
            "  MIN(m.visible_at) FROM inbox m WHERE m.instance_id = t.instance_id)) "
            "  ELSE COALESCE(%(visible)s, {now}) END FROM target t RETURNING 1) "
            "SELECT {notify_orch} FROM sent",
            _message_params(message),
            idempotent=False,
        )
        if not rows:  # nothing was written
            raise WorkflowNotFoundError(
                f"no workflow instance with id {message.instance_id!r}; "
                "check the id (list them with `treadle workflow list`)"
            )

    def signal_instance(
        self, message: NewMessage, *, shown_status: OrchestrationStatus | None = None
    ) -> bool:
        """Queue a control message; show its status at once if nobody holds the instance
        (see Store). One statement: the instance's row is locked while it decides.

        Raises:
            WorkflowNotFoundError: no instance has that id.
        """
        rows = self._db.statement(
            "WITH target AS (SELECT instance_id, status, "
            "  lease_owner IS NOT NULL AND lease_expires_at >= {now} AS leased "
            "  FROM instances WHERE instance_id = %(iid)s FOR NO KEY UPDATE), "
            "sent AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
            "  SELECT t.instance_id, %(eid)s, %(event)s, CASE WHEN t.status = 'PENDING' "
            "  AND %(delay)s THEN GREATEST(COALESCE(%(visible)s, {now}), (SELECT "
            "  MIN(m.visible_at) FROM inbox m WHERE m.instance_id = t.instance_id)) "
            "  ELSE COALESCE(%(visible)s, {now}) END FROM target t RETURNING 1), "
            "shown AS (UPDATE instances i SET status = %(shown)s::text, "
            "  version = i.version + 1, updated_at = {now} FROM target t "
            "  WHERE i.instance_id = t.instance_id AND %(shown)s::text IS NOT NULL "
            "  AND NOT t.leased AND t.status IN ('RUNNING', 'SUSPENDED') "
            "  AND t.status <> %(shown)s::text "
            "  RETURNING 1) "
            "SELECT t.leased, {notify_orch} FROM target t, sent",
            {
                **_message_params(message),
                "shown": shown_status.name if shown_status is not None else None,
            },
            idempotent=False,
        )
        if not rows:  # nothing was written
            raise WorkflowNotFoundError(
                f"no workflow instance with id {message.instance_id!r}; "
                "check the id (list them with `treadle workflow list`)"
            )
        return bool(rows[0][0])

    def purge_instance(self, instance_id: str, *, recursive: bool = True) -> int:
        """Delete a finished instance and, if ``recursive``, its finished descendants.

        Raises:
            WorkflowStateError: the instance or a descendant has not finished.
        """
        children = (
            "UNION SELECT c.instance_id FROM instances c JOIN tree t "
            "ON c.parent_instance_id = t.instance_id"
            if recursive
            else ""
        )

        def work(db: Db, conn: Conn) -> Callable[[], int]:
            rows = conn.execute(
                f"WITH RECURSIVE tree(instance_id) AS (SELECT %(iid)s::text {children}) "
                "SELECT instance_id, status FROM instances "
                "WHERE instance_id IN (SELECT instance_id FROM tree) "
                "ORDER BY instance_id FOR UPDATE",
                {"iid": instance_id},
            ).fetchall()
            if instance_id not in {r[0] for r in rows}:
                return lambda: 0
            running = [r for r in rows if r[1] not in Db.TERMINAL_NAMES]
            if running:
                which = ", ".join(f"{r[0]!r} ({r[1]})" for r in running)
                raise WorkflowStateError(
                    f"cannot purge {instance_id!r}: {which} has not finished; "
                    "terminate it first or wait for it to finish"
                )
            db.delete_instances(conn, [r[0] for r in rows])
            db.status_changed = True  # clients waiting on them; no work for workers
            return lambda: len(rows)

        return self._db.write(work)

    def child_instance_ids(self, instance_id: str) -> list[str]:
        """Ids of instances whose parent is ``instance_id``."""
        rows = self._db.run(
            lambda db, conn: conn.execute(
                "SELECT instance_id FROM instances WHERE parent_instance_id = %s "
                "ORDER BY instance_id",
                (instance_id,),
            ).fetchall()
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
        ``names`` (any when None); return them with those messages.

        Instances come oldest waiting message first; instances another worker holds are
        skipped, not waited for.
        """
        if limit <= 0:
            return []
        return self._db.run(
            lambda db, conn: claim_orchestrations_in(
                db, conn, owner, limit, lease_s, exclude, app_id=app_id, names=names
            )
        )

    def commit_turns(
        self,
        owner: str,
        turns: Sequence[TurnCommit],
        lease_s: float = 30.0,
        *,
        path: CommitPath | None = None,
    ) -> list[CommitOutcome]:
        """Commit many turns in one transaction; a turn whose fence fails is refused alone.

        A turn is accepted only if ``owner`` holds the instance's unexpired lease (on the
        database clock) and its version is ``expected_version``; see the Store protocol.

        Args:
            path: commit by this path; by default the fastest that can commit the turns.
                An internal detail, for the contract tests that check that every path
                leaves the same rows (see :mod:`.commit`).

        Raises:
            ValueError: ``path`` cannot commit these turns.
        """
        return commit_turns(self._db, self._listener, owner, turns, lease_s, path=path)

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
        if limit <= 0:
            return []
        # once a second (every time under a test clock, which jumps)
        if self._clock is not None or time.monotonic() >= self._next_rescue:
            self._next_rescue = time.monotonic() + 1.0
            rescue_own_tasks(self._db)
        return claim_activities(
            self._db,
            owner,
            limit,
            lease_s,
            app_id=app_id,
            names=names,
            except_names=except_names,
        )

    # ---- apps and workers ----------------------------------------------------------------
    def advertise_worker(self, worker: WorkerInfo, *, stopped: bool = False) -> None:
        """Record what ``worker`` takes, heard from now; ``stopped``: it shut down."""
        app_rows.advertise_worker(self._db, worker, stopped)

    def list_workers(self) -> list[WorkerRecord]:
        """Every advertisement kept, by owner."""
        return app_rows.list_workers(self._db)

    def waiting_work(self, visible_before: datetime) -> list[WaitingWork]:
        """The work nobody holds, visible before ``visible_before``, in groups."""
        return app_rows.waiting_work(self._db, utc(visible_before))

    def fail_waiting(
        self, work: WaitingWork, failure: FailureDetails, visible_before: datetime
    ) -> int:
        """Fail the waiting calls of ``work``'s group; return how many."""
        return app_rows.fail_waiting(self._db, work, failure, utc(visible_before))

    def note_waiting(self, notes: Sequence[tuple[WaitingWork, str]]) -> None:
        """Set the waiting notes of the groups' instances; clear every other one."""
        app_rows.note_waiting(self._db, notes)

    def complete_activities(self, owner: str, results: Sequence[ActivityResult]) -> None:
        """Deliver activity results to their inboxes and delete the tasks, atomically.

        A result whose task row is gone (already delivered, or the run finished) is dropped.
        """
        complete_activities(self._db, results)

    def renew_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int], lease_s: float
    ) -> list[str]:
        """Extend leases; return the instance ids this owner no longer holds."""
        if not instance_ids and not activity_ids:
            return []
        params = {
            "owner": owner,
            "lease_s": float(lease_s),
            "iids": list(instance_ids),
            "aids": [a for a in activity_ids if a > 0],  # own tasks: under the instance's
        }

        rows = self._db.statement(
            f"WITH {NOSYNC}, tasks AS (UPDATE activity_tasks SET lease_expires_at = {{now}} + "
            "  make_interval(secs => %(lease_s)s) FROM nosync WHERE id = ANY(%(aids)s::bigint[]) "
            "  AND lease_owner = %(owner)s) "
            "UPDATE instances SET lease_expires_at = {now} + make_interval(secs => "
            "%(lease_s)s) FROM nosync WHERE instance_id = ANY(%(iids)s::text[]) "
            "AND lease_owner = %(owner)s AND lease_expires_at >= {now} RETURNING instance_id",
            params,
        )
        held = {r[0] for r in rows}
        return [iid for iid in instance_ids if iid not in held]

    def renew_activity_leases(
        self, owner: str, activity_ids: Sequence[int], lease_s: float
    ) -> list[int]:
        """Extend activity leases (see :meth:`Store.renew_activity_leases`)."""
        if not activity_ids:
            return []
        return renew_activity_leases(self._db, owner, activity_ids, lease_s)

    def heartbeat_activity(
        self, owner: str, activity_id: int, details: str | None, lease_s: float
    ) -> bool:
        """Record an activity's heartbeat (see :meth:`Store.heartbeat_activity`)."""
        return heartbeat_activity(self._db, owner, activity_id, details, lease_s)

    def release_leases(self, owner: str, instance_ids: Sequence[str] | None = None) -> None:
        """Give up this owner's leases (all of them when ``instance_ids`` is None)."""
        if instance_ids is not None and not instance_ids:
            return
        where = "lease_owner = %(owner)s"
        if instance_ids is not None:
            where += " AND instance_id = ANY(%(iids)s::text[])"
        activities = (
            "UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = NULL "
            "FROM nosync WHERE lease_owner = %(owner)s RETURNING 1"
            if instance_ids is None
            else "SELECT 1 WHERE false"
        )
        params = {"owner": owner, "iids": list(instance_ids or ())}

        # NOTIFY only if something was given back.
        # Own tasks of the instances let go go to the queue (OWN_TASK_RULES).
        self._db.statement(
            f"WITH {NOSYNC}, released AS (SELECT instance_id, own_task FROM instances "
            f"  WHERE {where} FOR NO KEY UPDATE), "
            "i AS (UPDATE instances x SET lease_owner = NULL, lease_expires_at = NULL, "
            "  own_task = NULL, version = CASE WHEN r.own_task IS NULL THEN x.version "
            "  ELSE x.version + 1 END FROM nosync, released r "
            "  WHERE x.instance_id = r.instance_id RETURNING r.instance_id, r.own_task), "
            f"moved AS ({enqueue_own_sql('i')}), "
            f"  a AS ({activities}) "
            "SELECT {notify} WHERE EXISTS (SELECT 1 FROM i) OR EXISTS (SELECT 1 FROM a)",
            params,
        )

    def lease_owners(self) -> list[str]:
        """Owners currently holding any lease."""
        rows = self._db.run(
            lambda db, conn: conn.execute(
                "SELECT lease_owner FROM instances WHERE lease_owner IS NOT NULL UNION "
                "SELECT lease_owner FROM activity_tasks WHERE lease_owner IS NOT NULL"
            ).fetchall()
        )
        return sorted(r[0] for r in rows)

    def next_wakeup(self) -> datetime | None:
        """The earliest future visible time of a message or task, if any (database clock)."""
        row = self._db.run(
            lambda db, conn: db.execute(
                conn,
                "SELECT LEAST("
                "(SELECT MIN(visible_at) FROM inbox WHERE visible_at > {now}), "
                "(SELECT MIN(lease_expires_at) FROM activity_tasks "
                "  WHERE lease_expires_at > {now}), "
                # driven by the inbox (pending messages only), not by every instance ever run
                "(SELECT MIN(i.lease_expires_at) FROM instances i WHERE i.instance_id IN "
                "  (SELECT m.instance_id FROM inbox m) AND i.lease_expires_at > {now}))",
            ).fetchone()
        )
        return None if row is None or row[0] is None else utc(row[0])

    def change_token(self, work_only: bool = False) -> int | WorkToken:
        """An opaque value that changes whenever another transaction may have changed work.

        It counts this schema's NOTIFY messages (see :mod:`.listener`);
        ``work_only`` counts those of new work for workers, one count per kind (a
        :class:`~treadle.store.base.WorkToken`), not those of status changes.
        """
        if self._db.closed:
            raise StoreUnavailableError(f"the store for {self._display} was closed")
        return self._listener.token(work_only)

    @contextlib.contextmanager
    def watching(
        self, instance_id: str
    ) -> Iterator[Callable[[], tuple[InstanceRecord | None, bool]]]:
        """While open, a commit of this process (a runtime on the same schema) that ends
        ``instance_id`` hands over the row as it wrote it, as soon as it returns: the function
        yielded gives the latest such row (None until then), and whether such a commit is
        under way (its notification may wake a waiter before it returns: better wait for the
        row than read it). A client waiting for the end of a workflow that a runtime of its
        own process runs needs no read after its last wake-up."""
        self._listener.watch(instance_id)
        try:
            yield lambda: self._listener.watched(instance_id)
        finally:
            self._listener.unwatch(instance_id)

    def on_work(self, callback: Callable[[bool, bool], None]) -> Callable[[], None]:
        """Call ``callback(orchestrations, activities)`` as soon as a notification says new
        work may be there (on the listening thread: it must be quick); returns the function
        that stops it. Lets a worker wake its dispatcher without a waiting thread's hop."""
        if self._db.closed:
            raise StoreUnavailableError(f"the store for {self._display} was closed")
        return self._listener.on_work(callback)

    def wait_for_work(
        self, timeout_s: float, since: object = None, work_only: bool = False
    ) -> object:
        """Block until the change token differs from ``since`` or ``timeout_s`` passed.

        Wakes within milliseconds of a commit in any process; idles without polling.
        Returns the current token (of the kind ``work_only`` says, as :meth:`change_token`).
        """
        if self._db.closed:
            raise StoreUnavailableError(f"the store for {self._display} was closed")
        return self._listener.wait(timeout_s, since, work_only)


STORE_CLASS = PostgresStore
"""The store class of this backend (for :func:`treadle.store.open_store`)."""


def _message_params(message: NewMessage) -> dict[str, Any]:
    """The parameters of the statements that put ``message`` in its instance's inbox."""
    return {
        "iid": message.instance_id,
        "eid": message.execution_id,
        "event": encode_event(message.event),
        "delay": message.event.KIND != "ExecutionTerminated",
        "visible": utc(message.visible_at) if message.visible_at else None,
    }
