"""SQL text helpers shared by PostgresStore's statements: ``{now}`` and ``{notify}``
placeholders, the operation's time, NOTIFY flags, and CTEs several statements use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import pq

from treadle.core.history import OrchestrationStatus
from treadle.store.postgres.libpq import execute_raw
from treadle.store.postgres.listener import (
    ACTIVITIES_SUFFIX,
    CHANNEL,
    ORCHESTRATIONS_SUFFIX,
    SUFFIXES,
)

__all__ = ["NOSYNC", "Conn", "Db", "enqueue_own_sql", "orphans_sql", "utc"]

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
    ``source``: a CTE or table with ``instance_id`` and ``own_task`` (JSON text or NULL).
    Each was handed to its worker once already: one delivery."""
    return (
        "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
        "  task_execution_id, visible_at, app_id, deliveries) "
        "SELECT m.instance_id, o.eid, o.tid, o.name, o.inp, o.teid, {now}, COALESCE(o.app, ''), 1 "
        f"FROM {source} m, json_to_record(m.own_task::json) "
        "  AS o(eid text, tid integer, name text, inp text, teid text, app text) "
        "WHERE m.own_task IS NOT NULL"
    )


def orphans_sql(which: str) -> str:
    """The CTEs ``orphans`` and ``orphans_woken`` of a commit statement (see
    :mod:`.commit_statements`): queue the own tasks that its accepted turns (CTE ``ok``)
    leave with nobody to run them (see :func:`~treadle.store.own_tasks.own_task_orphaned`),
    as a release of the lease would, and wake activity workers if there were any.

    Args:
        which: the condition on ``b``, the rows of ``instances`` as they were before the
            statement (holding the own task a turn's update replaced or cleared).
    """
    return (
        "orphans AS ("
        + enqueue_own_sql(f"(SELECT b.instance_id, b.own_task FROM ok, instances b WHERE {which})")
        + " RETURNING 1), "
        f"orphans_woken AS (SELECT {_NOTIFY_ACTIVITIES_SQL} WHERE EXISTS (SELECT 1 FROM orphans))"
    )


class Db:
    """SQL helpers bound to one operation: the ``{now}`` placeholder and the operation's time.

    SQL text may say ``{now}``: the database's ``now()`` (the transaction's start time on the
    server's clock), or an injected test clock's reading, fixed for the whole operation.

    SQL text may also say ``{notify}``: a ``pg_notify`` call that wakes the store's waiters,
    for statements that notify only when they changed something, or ``{notify_orch}`` for
    statements that only give instances to claim (starts, messages); the statement's
    parameter ``notify_payload`` is the store's payload (see
    :mod:`.listener`).

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
        (see :mod:`.libpq`); its values come back as text."""
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
