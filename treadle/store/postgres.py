"""PostgresStore: the scale-out backend (psycopg 3, a connection pool, SKIP LOCKED, NOTIFY).

Many worker processes on many hosts share one database. Work is claimed with
``FOR [NO KEY] UPDATE SKIP LOCKED`` under a lease whose expiry is computed on the database's
clock (never a worker's), and every turn commit is fenced by lease owner, lease expiry and
the instance's version, exactly as in :class:`~treadle.store.sqlite.SqliteStore`.

Round trips: nearly every operation is one statement in autocommit mode, a transaction of its
own, so one round trip with its COMMIT: creating an instance, sending an event, claiming
instances with their messages (:mod:`.postgres_claims`), a group commit of simple turns
(:mod:`.postgres_commit`), claiming and completing activities, renewing and releasing leases.
Times come from ``now()`` in the statements, never from a separate query. The rest (a commit
that creates children or continues as new, reusing an instance id, purging) is a pipelined
transaction of two or three round trips (:mod:`.postgres_turns`). The busy statements are
prepared on first use and planned generically (see
:func:`~treadle.store.postgres_schema.configure_session`); the busiest (turn commits, claims,
starts, reading one instance) go through libpq directly (:mod:`.postgres_raw`), and a turn
committed alone that touches only its own instance (a chain's step, a first or last turn)
has a statement of its own (:func:`~treadle.store.postgres_commit.single_commit`).

URL: ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) with any libpq
parameter in the query string, plus ``?schema=NAME`` to keep treadle's tables in their own
PostgreSQL schema (created if missing). The schema is created and migrated on open, under an
advisory lock, so any number of workers may start at once; :func:`schema_status` and
:func:`migrate` serve ``treadle db status`` and ``treadle db migrate``.

Wake-ups: writes that another worker or a waiting client may act on send
``NOTIFY treadle_work`` in the same statement (others, such as a turn that keeps its lease and
status and only enqueues activities it runs itself, stay silent, as in SqliteStore), and a
:class:`~treadle.store.postgres_listener.ChangeListener` turns them into change tokens.

Errors: every psycopg error becomes a :class:`~treadle.errors.StoreError` in
:meth:`PostgresStore._attempt`: :class:`~treadle.errors.StoreUnavailableError` when the server
cannot be reached (after waiting 10 s for it). Connections the server closed (a restart) are
noticed before use and replaced; a call that fails on a broken connection is retried once
when that is safe: when it cannot have committed, or repeating it is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from treadle.core.history import HistoryEvent, OrchestrationStatus
from treadle.errors import (
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
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
    check_creating,
)
from treadle.store.postgres_claims import claim_orchestrations_in
from treadle.store.postgres_commit import (
    commit_rows,
    committed_record,
    is_simple,
    outcomes_from_rows,
    refusal_reasons,
    simple_commit,
    single_commit,
)
from treadle.store.postgres_instances import (
    CREATE_SQL,
    GET_SQL,
    adopt_history,
    create_params,
    decode_cursor,
    encode_cursor,
    instance_from_text,
)
from treadle.store.postgres_listener import ChangeListener
from treadle.store.postgres_schema import (
    SCHEMA_VERSION,
    configure_session,
    migrate,
    open_schema,
    parse_postgres_url,
    schema_status,
    translate_error,
)
from treadle.store.postgres_turns import (
    NOSYNC,
    Conn,
    Db,
    commit_turns_in,
    create_instances_in,
    enqueue_own_sql,
    raise_if_refused,
    utc,
)
from treadle.store.serde import (
    INSTANCE_COLUMNS,
    decode_event,
    encode_event,
    from_epoch,
    instance_from_row,
)

__all__ = [
    "SCHEMA_VERSION",
    "STORE_CLASS",
    "PostgresStore",
    "migrate",
    "parse_postgres_url",
    "schema_status",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_ACQUIRE_TIMEOUT_S = 10.0  # how long a call waits for the server before StoreUnavailableError
_ACQUIRE_SLICE_S = 1.0
_RECONNECT_TIMEOUT_S = 2.0  # then the pool's backoff restarts from 1 s at our next call
_DEADLOCK_RETRIES = 5


def _commit_result(result: pq.abc.PGresult) -> tuple[list[Any], InstanceRecord | None]:
    """A commit statement's rows, and the instance's row it returned (see
    :func:`~treadle.store.postgres_commit.committed_record`)."""
    return commit_rows(result), committed_record(result)


def _said_goodbye(conn: Conn) -> bool:
    """Whether an idle pooled connection has something to read: the server closed it.

    That is what a restart or pg_terminate_backend leaves behind. One poll(2) of the socket,
    no round trip, so a write that is not safe to retry never starts on a dead connection.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class _Progress:
    """How far a transaction got: once COMMIT is on its way its outcome may be unknown."""

    committing = False


class PostgresStore:
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
        self._conninfo, self._schema, self._display = parse_postgres_url(url)
        self._clock = clock
        self._closed = False
        self._next_rescue = 0.0  # when claim_activities next looks for lapsed own tasks
        self._now_sql = "%(now)s::timestamptz" if clock else "now()"
        self._schema_name, _version = open_schema(
            self._conninfo, self._schema, self._display, apply=True
        )
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            self._conninfo,
            min_size=min_size,
            max_size=max(min_size, max_size),
            kwargs={"autocommit": True},
            configure=lambda conn: configure_session(conn, self._schema),
            open=False,
            name="treadle",
            timeout=_ACQUIRE_TIMEOUT_S,
            reconnect_timeout=_RECONNECT_TIMEOUT_S,
        )
        self._pool.open(wait=False)
        self._listener = ChangeListener(self._conninfo, {}, self._schema_name, self._display)

    # ---- connections and errors --------------------------------------------------------
    def _fake_now(self) -> datetime | None:
        return from_epoch(self._clock()) if self._clock else None

    def _translate(self, exc: psycopg.Error, detail: str | None = None) -> StoreError:
        return translate_error(exc, self._display, detail)

    def _db(self) -> Db:
        return Db(self._now_sql, self._fake_now(), self._schema_name)

    def _run(self, work: Callable[[Db, Conn], _T]) -> _T:
        """Run ``work`` on a pooled connection in autocommit mode (each statement commits).

        For reads, and for writes that need no atomicity beyond one statement and are safe to
        repeat: they are retried once on a fresh connection if the connection broke.
        """
        return self._attempt(lambda conn, _progress: work(self._db(), conn), retry_unknown=True)

    def _statement(
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

        def call(conn: Conn, progress: _Progress) -> list[Any]:
            progress.committing = True
            cursor = self._db().execute(conn, text, params, prepare=True)
            # (the result's status, not cursor.description, which builds a column list)
            result = cursor.pgresult
            if result is None or result.status != pq.ExecStatus.TUPLES_OK:
                return []
            return cursor.fetchall()

        return self._attempt(call, retry_unknown=idempotent)

    def _raw_statement(
        self,
        text: str,
        params: dict[str, Any],
        read: Callable[[pq.abc.PGresult], _T],
        *,
        idempotent: bool = True,
    ) -> _T:
        """Like :meth:`_statement`, through libpq directly (see :mod:`.postgres_raw`):
        ``read`` turns its text result into values."""

        def call(conn: Conn, progress: _Progress) -> _T:
            progress.committing = True
            return read(self._db().execute_raw(conn, text, params))

        return self._attempt(call, retry_unknown=idempotent)

    def _write(
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

        def call(conn: Conn, progress: _Progress) -> _T:
            # BEGIN and COMMIT are queued like any statement: conn.transaction() would
            # cost a sync (a round trip) at each end.
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    db = self._db()
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

        return self._attempt(call, retry_unknown=idempotent)

    def _attempt(self, call: Callable[[Conn, _Progress], _T], *, retry_unknown: bool) -> _T:
        """Call ``call`` on a pooled connection; the one place psycopg errors are translated.

        Deadlocks are retried (nothing was written). A broken connection (after a server
        restart, say) is replaced and the call retried once, unless it broke during a COMMIT
        whose outcome is unknown and the call is not safe to repeat. With no connection to
        be had (the server is down) it keeps the pool trying for ``_ACQUIRE_TIMEOUT_S``.
        """
        if self._closed:
            raise StoreUnavailableError(f"the store for {self._display} was closed")
        deadline = time.monotonic() + _ACQUIRE_TIMEOUT_S
        attempt = 0
        while True:
            progress = _Progress()
            try:
                # (getconn/putconn: the pool's connection() context would also run a
                # COMMIT check through psycopg's machinery, a cost on every statement)
                conn = self._pool.getconn(timeout=_ACQUIRE_SLICE_S)
                try:
                    if not _said_goodbye(conn):
                        attempt += 1
                        return call(conn, progress)
                    conn.close()  # the pool replaces closed connections
                finally:
                    self._pool.putconn(conn)
                self._pool.check()  # and the other idle ones are probably dead too
            except PoolTimeout as exc:
                if time.monotonic() >= deadline or self._closed:
                    waited = f"no connection for {_ACQUIRE_TIMEOUT_S:.0f} s"
                    raise self._translate(exc, waited) from exc
                # psycopg_pool backs off for ever longer between attempts to reconnect; this
                # makes it try again now, so we are back within a second of the server.
                self._pool.check()
            except psycopg.errors.TransactionRollback as exc:
                if attempt >= _DEADLOCK_RETRIES:
                    raise self._translate(exc) from exc
                time.sleep(0.005 * attempt)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if attempt >= 2 or (progress.committing and not retry_unknown):
                    self._pool.check()  # spare the next call the other broken connections
                    raise self._translate(exc) from exc
                logger.info("retrying on a fresh connection to %s: %s", self._display, exc)
                self._pool.check()  # a server restart breaks every idle connection at once
            except psycopg.Error as exc:
                raise self._translate(exc) from exc

    def close(self) -> None:
        """Close the pool and the listening connection."""
        if self._closed:
            return
        self._closed = True
        self._listener.close()
        self._pool.close()

    def now(self) -> datetime:
        """The store's clock: the database server's time (or the injected test clock)."""
        fake = self._fake_now()
        if fake is not None:
            return fake
        row = self._run(lambda db, conn: conn.execute("SELECT clock_timestamp()").fetchone())
        assert row is not None
        return utc(row[0])

    # ---- clients ------------------------------------------------------------------------
    def create_instance(self, new: NewInstance) -> None:
        """Create an instance and queue its ExecutionStarted message (see Store).

        A new id costs one statement; an id in use takes a transaction that locks the
        instance, to replace it (finished) or refuse (unfinished).

        Raises:
            WorkflowAlreadyExistsError: an unfinished instance has this id.
        """
        params = create_params(new)
        if params is not None and self._raw_statement(
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

        self._write(work, notify=True, idempotent=False)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        return self._raw_statement(GET_SQL, {"iid": instance_id}, instance_from_text)

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
        if query.cursor:
            params["after_at"], params["after_id"] = decode_cursor(query.cursor)
            clauses.append("(created_at, instance_id) < (%(after_at)s, %(after_id)s)")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = max(1, min(query.limit, 10_000))
        params["limit"] = limit + 1
        rows = self._run(
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

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history, oldest first."""
        rows = self._run(
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
        rows = self._statement(
            "WITH target AS (SELECT instance_id, status FROM instances "
            "  WHERE instance_id = %(iid)s FOR KEY SHARE), "
            "sent AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
            "  SELECT t.instance_id, %(eid)s, %(event)s, CASE WHEN t.status = 'PENDING' "
            "  AND %(delay)s THEN GREATEST(COALESCE(%(visible)s, {now}), (SELECT "
            "  MIN(m.visible_at) FROM inbox m WHERE m.instance_id = t.instance_id)) "
            "  ELSE COALESCE(%(visible)s, {now}) END FROM target t RETURNING 1) "
            "SELECT {notify_orch} FROM sent",
            {
                "iid": message.instance_id,
                "eid": message.execution_id,
                "event": encode_event(message.event),
                "delay": message.event.KIND != "ExecutionTerminated",
                "visible": utc(message.visible_at) if message.visible_at else None,
            },
            idempotent=False,
        )
        if not rows:  # nothing was written
            raise WorkflowNotFoundError(
                f"no workflow instance with id {message.instance_id!r}; "
                "check the id (list them with `treadle workflow list`)"
            )

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

        return self._write(work)

    def child_instance_ids(self, instance_id: str) -> list[str]:
        """Ids of instances whose parent is ``instance_id``."""
        rows = self._run(
            lambda db, conn: conn.execute(
                "SELECT instance_id FROM instances WHERE parent_instance_id = %s "
                "ORDER BY instance_id",
                (instance_id,),
            ).fetchall()
        )
        return [r[0] for r in rows]

    # ---- workers ------------------------------------------------------------------------
    def claim_orchestrations(
        self, owner: str, limit: int, lease_s: float, exclude: Sequence[str] = ()
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible inbox messages; return them with those messages.

        Instances come oldest waiting message first; instances another worker holds are
        skipped, not waited for.
        """
        if limit <= 0:
            return []
        return self._run(
            lambda db, conn: claim_orchestrations_in(db, conn, owner, limit, lease_s, exclude)
        )

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        """Commit many turns in one transaction; a turn whose fence fails is refused alone.

        A turn is accepted only if ``owner`` holds the instance's unexpired lease (on the
        database clock) and its version is ``expected_version``; see the Store protocol.
        """
        if not turns:
            return []
        check_creating(turns)  # and such a turn is simple
        if is_simple(turns):
            single = single_commit(turns[0], owner, lease_s) if len(turns) == 1 else None
            text, params = single or simple_commit(turns, owner, lease_s)
            ending = single is not None and turns[0].status.is_terminal
            with (
                self._listener.committing(turns[0].instance_id)
                if ending
                else contextlib.nullcontext()
            ):
                rows, record = self._raw_statement(text, params, _commit_result)
                if record is not None:  # an ending turn's row: a client here may wait for it
                    self._listener.echo_record(record)
            outcomes = outcomes_from_rows(
                turns,
                rows,
                lambda refused: self._run(lambda db, conn: refusal_reasons(conn, refused, owner)),
            )
        else:
            record = None
            outcomes = self._write(
                lambda db, conn: commit_turns_in(db, conn, owner, turns, lease_s)
            )
        if record is None and any(
            o.ok and t.create is None and t.status is not OrchestrationStatus.RUNNING
            for t, o in zip(turns, outcomes, strict=True)
        ):
            self._listener.echo_status()  # a client of this process may wait for it
        return outcomes

    def claim_activities(self, owner: str, limit: int, lease_s: float) -> list[ActivityWorkItem]:
        """Lease visible activity tasks that nobody holds (or whose lease expired)."""
        if limit <= 0:
            return []
        # once a second (every time under a test clock, which jumps)
        if self._clock is not None or time.monotonic() >= self._next_rescue:
            self._next_rescue = time.monotonic() + 1.0
            self._rescue_own_tasks()

        rows = self._statement(
            "WITH picked AS (SELECT id FROM activity_tasks WHERE visible_at <= {now} "
            "  AND (lease_owner IS NULL OR lease_expires_at < {now}) "
            f"  ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED), {NOSYNC} "
            "UPDATE activity_tasks a SET lease_owner = %(owner)s, "
            "  lease_expires_at = {now} + make_interval(secs => %(lease_s)s) "
            "FROM picked p, nosync WHERE a.id = p.id RETURNING a.id, a.instance_id, "
            "  a.execution_id, a.task_id, a.name, a.input, a.task_execution_id",
            {"limit": limit, "owner": owner, "lease_s": float(lease_s)},
        )
        return [ActivityWorkItem(*r) for r in sorted(rows)]

    def _rescue_own_tasks(self) -> None:
        """Queue the own tasks of instances whose lease lapsed (their worker died)."""
        self._statement(
            "WITH lapsed AS (SELECT instance_id, own_task FROM instances "
            "  WHERE lease_owner IS NOT NULL AND lease_expires_at < {now} "
            "  AND own_task IS NOT NULL FOR NO KEY UPDATE SKIP LOCKED), "
            "cleared AS (UPDATE instances i SET own_task = NULL, version = i.version + 1 "
            "  FROM lapsed l WHERE i.instance_id = l.instance_id "
            "  RETURNING l.instance_id, l.own_task), "
            f"moved AS ({enqueue_own_sql('cleared')} RETURNING 1) "
            "SELECT {notify_act} WHERE EXISTS (SELECT 1 FROM moved)"
        )

    def complete_activities(self, owner: str, results: Sequence[ActivityResult]) -> None:
        """Deliver activity results to their inboxes and delete the tasks, atomically.

        A result whose task row is gone (already delivered, or the run finished) is dropped.
        """
        first: dict[int, ActivityResult] = {}
        for result in results:
            first.setdefault(result.task.id, result)
        if not first:
            return
        chosen = list(first.values())
        params = {
            "ids": [r.task.id for r in chosen],
            "iids": [r.task.instance_id for r in chosen],
            "eids": [r.task.execution_id for r in chosen],
            "tids": [r.task.task_id for r in chosen],
            "teids": [r.task.task_execution_id for r in chosen],
            "events": [encode_event(r.event) for r in chosen],
        }

        # An own task (negative id) is recorded by whoever clears it from its instance.
        self._statement(
            "WITH task_rows AS (DELETE FROM activity_tasks WHERE id = ANY(%(ids)s::bigint[]) "
            "  RETURNING id), "
            "own AS (UPDATE instances i SET own_task = NULL, version = i.version + 1 "
            "  FROM unnest(%(ids)s::bigint[], %(iids)s::text[], %(eids)s::text[], "
            "  %(tids)s::integer[], %(teids)s::text[]) AS r(id, iid, eid, tid, teid) "
            "  WHERE r.id < 0 AND i.instance_id = r.iid AND i.own_task IS NOT NULL "
            "  AND (i.own_task::json->>'tid')::integer = r.tid "
            "  AND i.own_task::json->>'eid' = r.eid AND i.own_task::json->>'teid' = r.teid "
            "  RETURNING r.id), "
            "done AS (SELECT id FROM task_rows UNION ALL SELECT id FROM own), "
            "sent AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
            "  SELECT r.iid, r.eid, r.event, {now} FROM unnest(%(ids)s::bigint[], "
            "  %(iids)s::text[], %(eids)s::text[], %(events)s::text[]) WITH ORDINALITY "
            "  AS r(id, iid, eid, event, ord) JOIN done ON done.id = r.id ORDER BY r.ord "
            "  RETURNING 1) "
            "SELECT {notify_orch} WHERE EXISTS (SELECT 1 FROM sent)",
            params,
        )

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

        rows = self._statement(
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
        self._statement(
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
        rows = self._run(
            lambda db, conn: conn.execute(
                "SELECT lease_owner FROM instances WHERE lease_owner IS NOT NULL UNION "
                "SELECT lease_owner FROM activity_tasks WHERE lease_owner IS NOT NULL"
            ).fetchall()
        )
        return sorted(r[0] for r in rows)

    def next_wakeup(self) -> datetime | None:
        """The earliest future visible time of a message or task, if any (database clock)."""
        row = self._run(
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

        It counts this schema's NOTIFY messages (see :mod:`treadle.store.postgres_listener`);
        ``work_only`` counts those of new work for workers, one count per kind (a
        :class:`~treadle.store.base.WorkToken`), not those of status changes.
        """
        if self._closed:
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
        if self._closed:
            raise StoreUnavailableError(f"the store for {self._display} was closed")
        return self._listener.on_work(callback)

    def wait_for_work(
        self, timeout_s: float, since: object = None, work_only: bool = False
    ) -> object:
        """Block until the change token differs from ``since`` or ``timeout_s`` passed.

        Wakes within milliseconds of a commit in any process; idles without polling.
        Returns the current token (of the kind ``work_only`` says, as :meth:`change_token`).
        """
        if self._closed:
            raise StoreUnavailableError(f"the store for {self._display} was closed")
        return self._listener.wait(timeout_s, since, work_only)


STORE_CLASS = PostgresStore
"""The store class of this backend (for :func:`treadle.store.open_store`)."""
