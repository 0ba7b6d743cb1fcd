"""Apps and workers on PostgresStore (see :mod:`treadle.store.apps`): workers'
advertisements, the work that waits for a worker, failing the calls another app cannot take,
waiting notes.

Advertisements and notes are bookkeeping: their statements commit without waiting for the WAL
flush (:data:`~.sql.NOSYNC`) and wake nobody. Failing calls is a transaction that locks the
rows it fails (``SKIP LOCKED``: a row a claim holds at that moment is being taken, not failed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from treadle.core.history import ExecutionStarted, SubOrchestrationInstanceFailed, TaskFailed
from treadle.errors import FailureDetails
from treadle.store.apps import (
    NOTED_PER_GROUP,
    WORKER_RETENTION_S,
    WaitingWork,
    WorkerInfo,
    WorkerRecord,
    WorkKind,
    names_from_json,
    names_json,
)
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.sql import NOSYNC, Conn, Db
from treadle.store.serde import decode_event, encode_event, encode_failure

__all__ = ["advertise_worker", "fail_waiting", "list_workers", "note_waiting", "waiting_work"]

_UNFINISHED = "NOT (i.status = ANY(%(terminal)s::text[]))"
_FREE = "({t}.lease_owner IS NULL OR {t}.lease_expires_at < {{now}})"


def advertise_worker(connections: Connections, worker: WorkerInfo, stopped: bool) -> None:
    """Record ``worker``'s advertisement, heard from now; forget old ones."""
    connections.statement(
        f"WITH {NOSYNC}, gone AS (DELETE FROM workers WHERE seen_at < "
        "  {now} - make_interval(secs => %(retention)s)) "
        "INSERT INTO workers (owner, app_id, workflows, activities, seen_at, stopped) "
        "SELECT %(owner)s, %(app)s, %(workflows)s, %(activities)s, {now}, %(stopped)s "
        "FROM nosync ON CONFLICT (owner) DO UPDATE SET app_id = excluded.app_id, "
        "workflows = excluded.workflows, activities = excluded.activities, "
        "seen_at = excluded.seen_at, stopped = excluded.stopped",
        {
            "owner": worker.owner,
            "app": worker.app_id,
            "workflows": names_json(worker.workflows),
            "activities": names_json(worker.activities),
            "stopped": stopped,
            "retention": WORKER_RETENTION_S,
        },
    )


def list_workers(connections: Connections) -> list[WorkerRecord]:
    """Every advertisement kept, by owner."""
    rows = connections.run(
        lambda db, conn: conn.execute(
            "SELECT owner, app_id, workflows, activities, seen_at, stopped FROM workers "
            "ORDER BY owner"
        ).fetchall()
    )
    return [
        WorkerRecord(
            WorkerInfo(r[0], r[1], names_from_json(r[2]), names_from_json(r[3])),
            seen_at=r[4],
            stopped=bool(r[5]),
        )
        for r in rows
    ]


def waiting_work(connections: Connections, before: datetime) -> list[WaitingWork]:
    """The groups of work nobody holds, visible before ``before`` (Store.waiting_work)."""

    def read(db: Db, conn: Conn) -> tuple[list[Any], list[Any]]:
        params = {"before": before, "terminal": sorted(Db.TERMINAL_NAMES)}
        activities = db.execute(
            conn,
            "SELECT t.app_id, t.name, i.app_id, MIN(t.visible_at), COUNT(*) "
            "FROM activity_tasks t JOIN instances i ON i.instance_id = t.instance_id "
            f"WHERE t.visible_at <= %(before)s AND {_FREE.format(t='t')} "
            "GROUP BY t.app_id, t.name, i.app_id ORDER BY 1, 2, 3",
            params,
        ).fetchall()
        instances = db.execute(
            conn,
            "SELECT i.app_id, i.name, p.app_id, i.history_len > 0, MIN(m.visible_at), "
            "COUNT(DISTINCT i.instance_id) FROM inbox m "
            "JOIN instances i ON i.instance_id = m.instance_id "
            "LEFT JOIN instances p ON p.instance_id = i.parent_instance_id "
            f"WHERE m.visible_at <= %(before)s AND {_FREE.format(t='i')} AND {_UNFINISHED} "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            params,
        ).fetchall()
        return activities, instances

    activities, instances = connections.run(read)
    work = [WaitingWork(WorkKind.ACTIVITY, r[0], r[1], r[2], False, r[3], r[4]) for r in activities]
    work.extend(
        WaitingWork(WorkKind.WORKFLOW, r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in instances
    )
    return work


def _group(work: WaitingWork, before: datetime) -> tuple[str, dict[str, Any]]:
    """FROM and WHERE clauses (and parameters) selecting the rows of ``work``'s group: task
    rows ``t`` with their callers ``i``, or instances ``i`` with their parents ``p``."""
    params: dict[str, Any] = {
        "app": work.app_id,
        "name": work.name,
        "caller": work.caller_app_id,
        "before": before,
    }
    if work.kind is WorkKind.ACTIVITY:
        return (
            "FROM activity_tasks t JOIN instances i ON i.instance_id = t.instance_id "
            "WHERE t.app_id = %(app)s AND t.name = %(name)s AND i.app_id = %(caller)s "
            f"AND t.visible_at <= %(before)s AND {_FREE.format(t='t')}",
            params,
        )
    params["started"] = work.started
    params["terminal"] = sorted(Db.TERMINAL_NAMES)
    caller = "p.app_id IS NULL" if work.caller_app_id is None else "p.app_id = %(caller)s"
    return (
        "FROM instances i LEFT JOIN instances p ON p.instance_id = i.parent_instance_id "
        f"WHERE i.app_id = %(app)s AND i.name = %(name)s AND {caller} "
        f"AND (i.history_len > 0) = %(started)s AND {_UNFINISHED} AND {_FREE.format(t='i')} "
        "AND EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = i.instance_id "
        "AND m.visible_at <= %(before)s)",
        params,
    )


def fail_waiting(
    connections: Connections, work: WaitingWork, failure: FailureDetails, before: datetime
) -> int:
    """Fail the waiting calls of ``work``'s group (Store.fail_waiting)."""
    if work.kind is WorkKind.WORKFLOW and (work.started or work.caller_app_id is None):
        return 0  # only calls fail: children that have not started
    clauses, params = _group(work, before)

    def tasks(db: Db, conn: Conn) -> Callable[[], int]:
        rows = db.execute(
            conn,
            "SELECT t.id, t.instance_id, t.execution_id, t.task_id, t.task_execution_id "
            f"{clauses} ORDER BY t.id FOR UPDATE OF t SKIP LOCKED",
            params,
        ).fetchall()
        if not rows:
            return lambda: 0
        now = db.now(conn)
        events = [
            encode_event(
                TaskFailed(
                    timestamp=now, task_scheduled_id=r[3], failure=failure, task_execution_id=r[4]
                )
            )
            for r in rows
        ]
        db.execute(
            conn,
            "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
            "SELECT iid, eid, event, {now} FROM unnest(%(iids)s::text[], %(eids)s::text[], "
            "  %(events)s::text[]) WITH ORDINALITY AS m(iid, eid, event, ord) ORDER BY ord",
            {"iids": [r[1] for r in rows], "eids": [r[2] for r in rows], "events": events},
        )
        db.execute(
            conn,
            "DELETE FROM activity_tasks WHERE id = ANY(%(ids)s::bigint[])",
            {"ids": [r[0] for r in rows]},
        )
        db.orchestrations = True
        return lambda: len(rows)

    def children(db: Db, conn: Conn) -> Callable[[], int]:
        rows = db.execute(
            conn,
            "SELECT i.instance_id, (SELECT string_agg(m.event, chr(10) ORDER BY m.id) "
            "  FROM inbox m WHERE m.instance_id = i.instance_id) "
            f"{clauses} AND i.status = 'PENDING' ORDER BY i.instance_id "
            "FOR NO KEY UPDATE OF i SKIP LOCKED",
            params,
        ).fetchall()
        if not rows:
            return lambda: 0
        now = db.now(conn)
        told: list[tuple[str, str, str]] = []
        for _, events in rows:
            started = next(
                (
                    event
                    for text in (events or "").split("\n")
                    if text and isinstance(event := decode_event(text), ExecutionStarted)
                ),
                None,
            )
            if started is not None and started.parent is not None:
                parent = started.parent
                event = SubOrchestrationInstanceFailed(
                    timestamp=now, task_scheduled_id=parent.task_scheduled_id, failure=failure
                )
                told.append((parent.instance_id, parent.execution_id, encode_event(event)))
        ids = [r[0] for r in rows]
        db.execute(
            conn,
            "UPDATE instances SET status = 'FAILED', failure = %(failure)s, updated_at = {now}, "
            "finished_at = {now}, version = version + 1, waiting = NULL "
            "WHERE instance_id = ANY(%(ids)s::text[])",
            {"ids": ids, "failure": encode_failure(failure)},
        )
        db.execute(conn, "DELETE FROM inbox WHERE instance_id = ANY(%(ids)s::text[])", {"ids": ids})
        if told:
            db.execute(
                conn,
                "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
                "SELECT m.iid, m.eid, m.event, {now} FROM unnest(%(iids)s::text[], "
                "  %(eids)s::text[], %(events)s::text[]) WITH ORDINALITY "
                "  AS m(iid, eid, event, ord) JOIN instances i ON i.instance_id = m.iid "
                "ORDER BY m.ord",
                {
                    "iids": [t[0] for t in told],
                    "eids": [t[1] for t in told],
                    "events": [t[2] for t in told],
                },
            )
        db.orchestrations = True
        db.status_changed = True
        return lambda: len(ids)

    return connections.write(tasks if work.kind is WorkKind.ACTIVITY else children)


def note_waiting(connections: Connections, notes: Sequence[tuple[WaitingWork, str]]) -> None:
    """Set the waiting notes of the groups' instances, clear the others (Store.note_waiting)."""

    def work(db: Db, conn: Conn) -> Callable[[], None]:
        noted: dict[str, str] = {}
        for group, text in notes:
            clauses, params = _group(group, db.now(conn))
            column = "t.instance_id" if group.kind is WorkKind.ACTIVITY else "i.instance_id"
            for (iid,) in db.execute(
                conn,
                f"SELECT DISTINCT {column} {clauses} ORDER BY 1 LIMIT %(limit)s",
                {**params, "limit": NOTED_PER_GROUP},
            ).fetchall():
                noted.setdefault(iid, text)
        db.execute(
            conn,
            f"WITH {NOSYNC}, wanted AS (SELECT * FROM unnest(%(ids)s::text[], %(texts)s::text[]) "
            "  AS w(iid, note)), "
            "cleared AS (UPDATE instances i SET waiting = NULL FROM nosync "
            "  WHERE i.waiting IS NOT NULL AND i.instance_id <> ALL(%(ids)s::text[])) "
            "UPDATE instances i SET waiting = w.note FROM wanted w "
            "WHERE i.instance_id = w.iid AND i.waiting IS DISTINCT FROM w.note",
            {"ids": list(noted), "texts": list(noted.values())},
        )
        return lambda: None

    connections.write(work)
