"""The general group commit of PostgresStore, and instance creation.

Row locks: claims and commits lock instance rows FOR NO KEY UPDATE (in instance id order),
then commits lock the activity task rows whose results they carry FOR UPDATE (in id order),
messages lock their target FOR KEY SHARE (it must not be deleted meanwhile), deletes take
FOR UPDATE. So two instances that message each other commit concurrently without deadlock,
and a purge cannot race a message into a deleted instance's inbox.

A group commit reads and locks every instance it touches in one statement, checks each
turn's fence in Python, then writes all accepted turns with one statement per kind of row
(history, inbox deletes, activity tasks, messages, children, instance updates), pipelined:
a commit of any number of turns costs two round trips (three when it creates children).
Groups of simple turns are committed by one statement instead (:mod:`.postgres_commit`).
Turns are applied in "batches" of distinct instances so that the result is the one
SqliteStore gets by applying the turns one after the other.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg import pq

from treadle.core.history import OrchestrationStatus
from treadle.errors import WorkflowAlreadyExistsError
from treadle.store.base import (
    CommitOutcome,
    NewInstance,
    NewMessage,
    TurnCommit,
    gives_activity_work,
    gives_orchestration_work,
    next_own_task_id,
    own_task_update,
)
from treadle.store.postgres_listener import (
    ACTIVITIES_SUFFIX,
    CHANNEL,
    ORCHESTRATIONS_SUFFIX,
    SUFFIXES,
)
from treadle.store.postgres_raw import execute_raw
from treadle.store.serde import (
    child_refused,
    encode_event,
    encode_failure,
    to_epoch,
)

__all__ = [
    "Conn",
    "Db",
    "Refusals",
    "commit_turns_in",
    "create_instances_in",
    "enqueue_own_sql",
    "insert_messages",
    "raise_if_refused",
    "utc",
]

Conn = psycopg.Connection[Any]
_NOTIFY_SQL = f"pg_notify('{CHANNEL}', %(notify_payload)s)"
_NOTIFY_ORCHESTRATIONS_SQL = (
    f"pg_notify('{CHANNEL}', %(notify_payload)s || '{ORCHESTRATIONS_SUFFIX}')"
)
NOSYNC = "nosync AS (SELECT set_config('synchronous_commit', 'off', true))"
"""A CTE for statements that only move leases (claims, renewals, releases): joined into their
UPDATE, it makes that statement's own commit asynchronous (no wait for the WAL flush). Losing
such a commit in a crash of the server is the same as the lease expiring, and the next
durable commit flushes it anyway; everything else keeps ``synchronous_commit=on``."""
_NOTIFY_ACTIVITIES_SQL = f"pg_notify('{CHANNEL}', %(notify_payload)s || '{ACTIVITIES_SUFFIX}')"


def enqueue_own_sql(source: str) -> str:
    """An INSERT that queues, as ordinary unleased tasks, the own tasks (OWN_TASK_RULES) of
    ``source``: a CTE or table with ``instance_id`` and ``own_task`` (JSON text or NULL)."""
    return (
        "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
        "  task_execution_id, visible_at) "
        "SELECT m.instance_id, o.eid, o.tid, o.name, o.inp, o.teid, {now} "
        f"FROM {source} m, json_to_record(m.own_task::json) "
        "  AS o(eid text, tid integer, name text, inp text, teid text) "
        "WHERE m.own_task IS NOT NULL"
    )


_DELIVERED = "an activity result in the turn was already delivered (its task is gone)"


class Db:
    """SQL helpers bound to one operation: the ``{now}`` placeholder and the operation's time.

    SQL text may say ``{now}``: the database's ``now()`` (the transaction's start time on the
    server's clock), or an injected test clock's reading, fixed for the whole operation.

    SQL text may also say ``{notify}``: a ``pg_notify`` call that wakes the store's waiters,
    for statements that notify only when they changed something, or ``{notify_orch}`` for
    statements that only give instances to claim (starts, messages); the statement's
    parameter ``notify_payload`` is the store's payload (see
    :mod:`treadle.store.postgres_listener`).

    Args:
        now_sql: what ``{now}`` becomes in SQL text.
        fixed_now: the test clock's time for this operation, or None for the database clock.
        payload: the NOTIFY payload (the store's schema).

    Attributes:
        notify: send NOTIFY when the transaction commits (work may set or clear it): there
            may be new work of any kind for workers to claim.
        orchestrations: there are instances to claim (NOTIFY of that kind).
        activities: there are activity tasks nobody holds (NOTIFY of that kind).
        status_changed: an instance's status changed (clients waiting on it are woken even
            without new work).
    """

    TERMINAL_NAMES = frozenset(s.name for s in OrchestrationStatus if s.is_terminal)

    def __init__(self, now_sql: str, fixed_now: datetime | None, payload: str) -> None:
        self._now_sql = now_sql
        self._fixed_now = fixed_now
        self._now: datetime | None = fixed_now
        self._payload = payload
        self.notify = False
        self.orchestrations = False
        self.activities = False
        self.status_changed = False

    def execute(
        self,
        conn: Conn,
        text: str,
        params: dict[str, Any] | None = None,
        *,
        prepare: bool | None = None,
    ) -> psycopg.Cursor[Any]:
        """Execute ``text`` with ``{now}`` filled in; return the cursor (fetch it later).

        Args:
            prepare: prepare it on the server at once (True: a statement run over and over),
                or after psycopg's default number of executions (None).
        """
        sql_text, args = self._statement(text, params)
        return conn.execute(sql_text, args, prepare=prepare)

    def execute_raw(
        self, conn: Conn, text: str, params: dict[str, Any] | None = None
    ) -> pq.abc.PGresult:
        """Like :meth:`execute` (one statement, outside a transaction), through libpq directly
        (see :mod:`.postgres_raw`); its values come back as text."""
        sql_text, args = self._statement(text, params)
        return execute_raw(conn, sql_text, args)

    def _statement(self, text: str, params: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """``text`` rendered, and ``params`` with the ones it says it takes (the test clock's
        time, the NOTIFY payload)."""
        sql_text, notifies = _render(text, self._now_sql)
        args = dict(params or {})
        if self._fixed_now is not None:
            args["now"] = self._fixed_now
        if notifies:
            args["notify_payload"] = self._payload
        return sql_text, args

    def send_notify(self, conn: Conn) -> None:
        """NOTIFY the store's waiters (delivered when the transaction commits) of what the
        flags say changed, if anything."""
        orchestrations = self.notify or self.orchestrations
        activities = self.notify or self.activities
        if not (orchestrations or activities or self.status_changed):
            return
        suffix = SUFFIXES[(orchestrations, activities)]
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._payload + suffix))

    def now(self, conn: Conn) -> datetime:
        """The operation's time: the transaction's start on the server (or the test clock)."""
        if self._now is None:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            self._now = row[0]
        return self._now

    @staticmethod
    def lock_statuses(conn: Conn, ids: Sequence[str]) -> Callable[[], dict[str, str]]:
        """Lock the existing instances among ``ids`` (in id order) to replace or refuse them.

        Returns:
            a function returning their statuses by id (it waits for the result).
        """
        cursor = conn.execute(
            "SELECT instance_id, status FROM instances WHERE instance_id = ANY(%s::text[]) "
            "ORDER BY instance_id FOR UPDATE",
            (sorted(set(ids)),),
        )
        return lambda: {r[0]: r[1] for r in cursor.fetchall()}

    @staticmethod
    def delete_instances(conn: Conn, ids: Sequence[str]) -> None:
        """Delete everything stored for these instances."""
        for table in ("history", "inbox", "activity_tasks", "instances"):
            conn.execute(f"DELETE FROM {table} WHERE instance_id = ANY(%s::text[])", (list(ids),))


@functools.lru_cache(maxsize=256)
def _render(text: str, now_sql: str) -> tuple[str, bool]:
    """``text`` with ``{now}`` and the ``{notify...}`` markers filled in, and whether it
    takes the ``notify_payload`` parameter (statements are few: rendered once each)."""
    notifies = "{notify" in text or "%(notify_payload)s" in text
    sql_text = (
        text.replace("{now}", now_sql)
        .replace("{notify}", _NOTIFY_SQL)
        .replace("{notify_orch}", _NOTIFY_ORCHESTRATIONS_SQL)
        .replace("{notify_act}", _NOTIFY_ACTIVITIES_SQL)
    )
    return sql_text, notifies


def utc(value: datetime) -> datetime:
    """An aware datetime (naive ones are taken as UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _already_exists(instance_id: str, status: str) -> str:
    return (
        f"workflow instance {instance_id!r} already exists and is {status}; "
        "wait for it to finish, terminate it, or choose another instance id"
    )


def raise_if_refused(refused: Sequence[tuple[NewInstance, str]]) -> None:
    """Raise WorkflowAlreadyExistsError for the first refused instance, if any."""
    if refused:
        raise WorkflowAlreadyExistsError(refused[0][1])


Refusals = list[tuple[NewInstance, str]]


def create_instances_in(
    db: Db,
    conn: Conn,
    news: Sequence[NewInstance],
    statuses: dict[str, str],
    now: datetime,
) -> tuple[Refusals, Callable[[], Refusals]]:
    """Create instances with their ExecutionStarted messages.

    Args:
        statuses: the locked statuses of existing instances with these ids; updated with the
            instances created here.

    Returns:
        (instance, reason) for each id an unfinished instance already has; and a function
        that returns those another transaction created meanwhile (nothing was written for
        them), to call once the results are wanted (it waits for them).
    """
    refused: Refusals = []
    create: list[NewInstance] = []
    replace: list[str] = []
    for new in news:
        status = statuses.get(new.instance_id)
        if status is not None and status not in Db.TERMINAL_NAMES:
            refused.append((new, _already_exists(new.instance_id, status)))
            continue
        if status is not None:
            replace.append(new.instance_id)
        statuses[new.instance_id] = "PENDING"
        create.append(new)
    if replace:
        db.delete_instances(conn, replace)
    if not create:
        return refused, lambda: []
    events = [encode_event(n.started_event(now)) for n in create]
    cursor = db.execute(
        conn,
        "WITH new AS (SELECT * FROM unnest(%(ids)s::text[], %(names)s::text[], "
        "  %(eids)s::text[], %(inputs)s::text[], %(parents)s::text[], %(events)s::text[], "
        "  %(visible)s::timestamptz[]) WITH ORDINALITY "
        "  AS n(instance_id, name, execution_id, input, parent, event, visible_at, ord)), "
        "ins AS (INSERT INTO instances (instance_id, name, status, execution_id, input, "
        "  created_at, updated_at, parent_instance_id) SELECT instance_id, name, 'PENDING', "
        "  execution_id, input, %(created)s, %(created)s, parent FROM new ORDER BY ord "
        "  ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id) "
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
        "SELECT new.instance_id, new.execution_id, new.event, new.visible_at "
        "FROM new JOIN ins ON ins.instance_id = new.instance_id ORDER BY new.ord "
        "RETURNING instance_id",
        {
            "ids": [n.instance_id for n in create],
            "names": [n.name for n in create],
            "eids": [n.execution_id for n in create],
            "inputs": [n.input for n in create],
            "parents": [n.parent.instance_id if n.parent else None for n in create],
            "events": events,
            "visible": [
                max(now, utc(n.scheduled_start)) if n.scheduled_start else now for n in create
            ],
            "created": now,
        },
    )

    def conflicts() -> Refusals:
        # An id nobody had when we locked, inserted since by a concurrent transaction: it
        # is brand new, so PENDING.
        inserted = {r[0] for r in cursor.fetchall()}
        lost = [n for n in create if n.instance_id not in inserted]
        for new in lost:
            statuses[new.instance_id] = "PENDING"
        return [(n, _already_exists(n.instance_id, "PENDING")) for n in lost]

    return refused, conflicts


def insert_messages(db: Db, conn: Conn, messages: Sequence[NewMessage]) -> None:
    """Insert messages, in order, for instances that exist (others are dropped)."""
    if not messages:
        return
    db.execute(
        conn,
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
        "SELECT m.iid, m.eid, m.event, COALESCE(m.visible_at, {now}) "
        "FROM unnest(%(iids)s::text[], %(eids)s::text[], %(events)s::text[], "
        "  %(visible)s::timestamptz[]) WITH ORDINALITY AS m(iid, eid, event, visible_at, ord) "
        "JOIN instances i ON i.instance_id = m.iid ORDER BY m.ord FOR KEY SHARE OF i",
        {
            "iids": [m.instance_id for m in messages],
            "eids": [m.execution_id for m in messages],
            "events": [encode_event(m.event) for m in messages],
            "visible": [utc(m.visible_at) if m.visible_at else None for m in messages],
        },
    )


@dataclasses.dataclass
class _Fence:
    version: int
    owner: str | None
    expires: datetime | None


@dataclasses.dataclass
class _Batch:
    """Accepted turns of distinct instances, written together."""

    turns: list[tuple[int, TurnCommit]] = dataclasses.field(default_factory=list)
    instance_ids: set[str] = dataclasses.field(default_factory=set)
    child_ids: set[str] = dataclasses.field(default_factory=set)

    def admits(self, turn: TurnCommit) -> bool:
        """Whether ``turn`` can join without changing what applying turns in order gives."""
        own = turn.instance_id
        return (
            own not in self.instance_ids
            and own not in self.child_ids
            and not any(c.instance_id in self.instance_ids for c in turn.new_instances)
            and not any(m.instance_id in self.child_ids for m in turn.new_messages)
        )

    def add(self, index: int, turn: TurnCommit) -> None:
        self.turns.append((index, turn))
        self.instance_ids.add(turn.instance_id)
        self.child_ids.update(c.instance_id for c in turn.new_instances)


def commit_turns_in(
    db: Db, conn: Conn, owner: str, turns: Sequence[TurnCommit], lease_s: float
) -> Callable[[], list[CommitOutcome]]:
    """Fence and write ``turns`` in the caller's transaction (see Store.commit_turns).

    Returns:
        a function that returns the outcomes once the transaction committed.
    """
    ids = {t.instance_id for t in turns} | {c.instance_id for t in turns for c in t.new_instances}
    locked = conn.execute(
        "SELECT instance_id, status, version, lease_owner, lease_expires_at FROM instances "
        "WHERE instance_id = ANY(%s::text[]) ORDER BY instance_id FOR NO KEY UPDATE",
        (sorted(ids),),
    )
    # A result is recorded by whoever deletes its task row: a turn whose row is gone (another
    # execution's result went to the inbox) is refused, or history would get it twice.
    # (negative ids: own tasks, fenced by the instance's version; see OWN_TASK_RULES)
    consumed = sorted({a for t in turns for a in t.consumed_activities if a > 0})
    tasks = (
        conn.execute(
            "SELECT id FROM activity_tasks WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            (consumed,),
        )
        if consumed
        else None
    )
    now = db.now(conn)
    rows = locked.fetchall()
    present = {r[0] for r in tasks.fetchall()} if tasks is not None else set()
    statuses: dict[str, str] = {r[0]: r[1] for r in rows}
    fences = {r[0]: _Fence(r[2], r[3], r[4]) for r in rows}
    lease_until = now + timedelta(seconds=lease_s)
    outcomes: list[CommitOutcome] = []
    batches = [_Batch()]
    for index, turn in enumerate(turns):
        fence = fences.get(turn.instance_id)
        if fence is None:
            outcomes.append(
                CommitOutcome(turn.instance_id, ok=False, error="the instance no longer exists")
            )
            continue
        if fence.owner != owner or fence.expires is None or fence.expires < now:
            outcomes.append(
                CommitOutcome(turn.instance_id, ok=False, error=f"lease held by {fence.owner!r}")
            )
            continue
        if fence.version != turn.expected_version:
            outcomes.append(
                CommitOutcome(
                    turn.instance_id, ok=False, error="the instance changed since it was read"
                )
            )
            continue
        rows = [a for a in turn.consumed_activities if a > 0]
        if not present.issuperset(rows):
            outcomes.append(CommitOutcome(turn.instance_id, ok=False, error=_DELIVERED))
            continue
        present.difference_update(rows)
        if not batches[-1].admits(turn):
            batches.append(_Batch())
        batches[-1].add(index, turn)
        fence.version += 1
        fence.owner, fence.expires = (owner, lease_until) if turn.keep_lease else (None, None)
        own_ids = [next_own_task_id()] if any(a.own for a in turn.new_activities) else []
        outcomes.append(
            CommitOutcome(
                turn.instance_id, ok=True, version=fence.version, new_activity_ids=own_ids
            )
        )
        if statuses.get(turn.instance_id) != turn.status.name:
            db.status_changed = True
        db.orchestrations = db.orchestrations or gives_orchestration_work(turn)
        db.activities = db.activities or gives_activity_work(turn)
    readers = [
        _write_batch(db, conn, batch, owner, now, lease_until, statuses)
        for batch in batches
        if batch.turns
    ]

    def result() -> list[CommitOutcome]:
        for read in readers:
            for index, ids_ in read().items():
                outcome = outcomes[index]  # the own task is first (see build_turn)
                outcomes[index] = dataclasses.replace(
                    outcome, new_activity_ids=[*outcome.new_activity_ids, *ids_]
                )
        return outcomes

    return result


def _write_batch(
    db: Db,
    conn: Conn,
    batch: _Batch,
    owner: str,
    now: datetime,
    lease_until: datetime,
    statuses: dict[str, str],
) -> Callable[[], dict[int, list[int]]]:
    turns = [t for _, t in batch.turns]
    reset = [t.instance_id for t in turns if t.reset_history]
    if reset:
        conn.execute("DELETE FROM history WHERE instance_id = ANY(%s::text[])", (reset,))
    history = [
        (t.instance_id, t.history_start + i, encode_event(e))
        for t in turns
        for i, e in enumerate(t.new_events)
    ]
    if history:
        conn.execute(
            "INSERT INTO history (instance_id, seq, event) "
            "SELECT * FROM unnest(%s::text[], %s::integer[], %s::text[])",
            tuple(list(column) for column in zip(*history, strict=True)),
        )
    consumed = [m for t in turns for m in t.consumed_messages]
    if consumed:
        conn.execute("DELETE FROM inbox WHERE id = ANY(%s::bigint[])", (consumed,))
    done = [a for t in turns for a in t.consumed_activities if a > 0]
    if done:
        conn.execute("DELETE FROM activity_tasks WHERE id = ANY(%s::bigint[])", (done,))
    cancelled = [t.instance_id for t in turns if t.cancel_activities]
    if cancelled:
        conn.execute("DELETE FROM activity_tasks WHERE instance_id = ANY(%s::text[])", (cancelled,))
    read_leased = _insert_activities(conn, batch, owner, now, lease_until)
    insert_messages(db, conn, [m for t in turns for m in t.new_messages])
    children = [c for t in turns for c in t.new_instances]
    if children:
        refused, conflicts = create_instances_in(db, conn, children, statuses, now)
        refused += conflicts()  # the parents hear of these in this same transaction
        insert_messages(db, conn, [child_refused(c, why, to_epoch(now)) for c, why in refused])
    for turn in turns:  # children of later batches see these turns' outcome
        statuses[turn.instance_id] = turn.status.name
    own_updates = [own_task_update(t) for t in turns]  # (sets the column, its value)
    conn.execute(
        "UPDATE instances i SET status = u.status, execution_id = u.eid, "
        "input = COALESCE(u.input, i.input), output = u.output, failure = u.failure, "
        "custom_status = u.custom_status, updated_at = %s, history_len = u.history_len, "
        "version = i.version + 1, lease_owner = u.owner, lease_expires_at = u.expires, "
        "own_task = CASE WHEN u.so THEN u.own ELSE i.own_task END "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
        "  %s::text[], %s::integer[], %s::text[], %s::timestamptz[], %s::boolean[], "
        "  %s::text[]) AS u(iid, status, eid, input, output, failure, custom_status, "
        "  history_len, owner, expires, so, own) "
        "WHERE i.instance_id = u.iid",
        (
            now,
            [t.instance_id for t in turns],
            [t.status.name for t in turns],
            [t.execution_id for t in turns],
            [t.input for t in turns],
            [t.output for t in turns],
            [encode_failure(t.failure) for t in turns],
            [t.custom_status for t in turns],
            [(0 if t.reset_history else t.history_start) + len(t.new_events) for t in turns],
            [owner if t.keep_lease else None for t in turns],
            [lease_until if t.keep_lease else None for t in turns],
            [u[0] for u in own_updates],
            [u[1] for u in own_updates],
        ),
    )
    return read_leased


def _insert_activities(
    conn: Conn, batch: _Batch, owner: str, now: datetime, lease_until: datetime
) -> Callable[[], dict[int, list[int]]]:
    """Enqueue the batch's activity tasks; return a reader of the leased ones' ids by turn."""
    tasks = [
        (index, task) for index, turn in batch.turns for task in turn.new_activities if not task.own
    ]
    if not tasks:
        return lambda: {}
    cursor = conn.execute(
        "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
        "task_execution_id, visible_at, lease_owner, lease_expires_at) "
        "SELECT iid, eid, task_id, name, input, teid, %s, owner, expires "
        "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[], %s::text[], "
        "  %s::text[], %s::text[], %s::timestamptz[]) WITH ORDINALITY "
        "  AS a(iid, eid, task_id, name, input, teid, owner, expires, ord) "
        "ORDER BY ord RETURNING id, lease_owner IS NOT NULL",
        (
            now,
            [t.instance_id for _, t in tasks],
            [t.execution_id for _, t in tasks],
            [t.task_id for _, t in tasks],
            [t.name for _, t in tasks],
            [t.input for _, t in tasks],
            [t.task_execution_id for _, t in tasks],
            [owner if t.leased else None for _, t in tasks],
            [lease_until if t.leased else None for _, t in tasks],
        ),
    )
    leased_turns = [index for index, t in tasks if t.leased]

    def read() -> dict[int, list[int]]:
        # Identity values rise in insertion order, which is task order.
        ids = sorted(r[0] for r in cursor.fetchall() if r[1])
        by_turn: dict[int, list[int]] = {}
        for index, task_row_id in zip(leased_turns, ids, strict=True):
            by_turn.setdefault(index, []).append(task_row_id)
        return by_turn

    return read
