"""Apps and workers on SqliteStore (see :mod:`treadle.store.apps`): workers' advertisements,
the work that waits for a worker, failing the calls another app cannot take, waiting notes.

Times are seconds since the epoch on the store's clock; every write is a transaction of its
own. Advertisements and notes are bookkeeping: written without an fsync and waking nobody.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from treadle.core.history import (
    ExecutionStarted,
    SubOrchestrationInstanceFailed,
    TaskFailed,
)
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
from treadle.store.serde import decode_event, encode_event, encode_failure, from_epoch
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.rows import TERMINAL_NAMES

__all__ = ["advertise_worker", "fail_waiting", "list_workers", "note_waiting", "waiting_work"]

_UNFINISHED = f"i.status NOT IN ({','.join(repr(s) for s in TERMINAL_NAMES)})"
_FREE = "({t}.lease_owner IS NULL OR {t}.lease_expires_at < ?)"


def advertise_worker(db: Connections, worker: WorkerInfo, stopped: bool, now: float) -> None:
    """Record ``worker``'s advertisement, heard from at ``now``; forget old ones."""
    with db.errors(), db.write(notify=False, durable=False) as conn:
        conn.execute(
            "INSERT INTO workers (owner, app_id, workflows, activities, seen_at, stopped) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET app_id = "
            "excluded.app_id, workflows = excluded.workflows, activities = excluded.activities, "
            "seen_at = excluded.seen_at, stopped = excluded.stopped",
            (
                worker.owner,
                worker.app_id,
                names_json(worker.workflows),
                names_json(worker.activities),
                now,
                int(stopped),
            ),
        )
        conn.execute("DELETE FROM workers WHERE seen_at < ?", (now - WORKER_RETENTION_S,))


def list_workers(db: Connections) -> list[WorkerRecord]:
    """Every advertisement kept, by owner."""
    with db.errors():
        rows = (
            db.conn()
            .execute(
                "SELECT owner, app_id, workflows, activities, seen_at, stopped FROM workers "
                "ORDER BY owner"
            )
            .fetchall()
        )
    return [
        WorkerRecord(
            WorkerInfo(r[0], r[1], names_from_json(r[2]), names_from_json(r[3])),
            seen_at=from_epoch(r[4]),
            stopped=bool(r[5]),
        )
        for r in rows
    ]


def waiting_work(db: Connections, before: float, now: float) -> list[WaitingWork]:
    """The groups of work nobody holds, visible before ``before`` (Store.waiting_work)."""
    with db.errors():
        conn = db.conn()
        activities = conn.execute(
            "SELECT t.app_id, t.name, i.app_id, MIN(t.visible_at), COUNT(*) "
            "FROM activity_tasks t JOIN instances i ON i.instance_id = t.instance_id "
            f"WHERE t.visible_at <= ? AND {_FREE.format(t='t')} "
            "GROUP BY t.app_id, t.name, i.app_id ORDER BY 1, 2, 3",
            (before, now),
        ).fetchall()
        instances = conn.execute(
            "SELECT i.app_id, i.name, p.app_id, i.history_len > 0, MIN(m.visible_at), "
            "COUNT(DISTINCT i.instance_id) FROM inbox m "
            "JOIN instances i ON i.instance_id = m.instance_id "
            "LEFT JOIN instances p ON p.instance_id = i.parent_instance_id "
            f"WHERE m.visible_at <= ? AND {_FREE.format(t='i')} AND {_UNFINISHED} "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            (before, now),
        ).fetchall()
    work = [
        WaitingWork(WorkKind.ACTIVITY, r[0], r[1], r[2], False, from_epoch(r[3]), r[4])
        for r in activities
    ]
    work.extend(
        WaitingWork(WorkKind.WORKFLOW, r[0], r[1], r[2], bool(r[3]), from_epoch(r[4]), r[5])
        for r in instances
    )
    return work


def _group(work: WaitingWork, before: float, now: float) -> tuple[str, list[object]]:
    """FROM and WHERE clauses (and parameters) selecting the rows of ``work``'s group: task
    rows ``t`` with their callers ``i``, or instances ``i`` with their parents ``p``."""
    if work.kind is WorkKind.ACTIVITY:
        return (
            "FROM activity_tasks t JOIN instances i ON i.instance_id = t.instance_id "
            "WHERE t.app_id = ? AND t.name = ? AND i.app_id = ? AND t.visible_at <= ? "
            f"AND {_FREE.format(t='t')}",
            [work.app_id, work.name, work.caller_app_id or "", before, now],
        )
    caller = "p.app_id IS NULL" if work.caller_app_id is None else "p.app_id = ?"
    return (
        "FROM instances i LEFT JOIN instances p ON p.instance_id = i.parent_instance_id "
        f"WHERE i.app_id = ? AND i.name = ? AND {caller} AND (i.history_len > 0) = ? "
        f"AND {_UNFINISHED} AND {_FREE.format(t='i')} AND EXISTS (SELECT 1 FROM inbox m "
        "WHERE m.instance_id = i.instance_id AND m.visible_at <= ?)",
        [
            work.app_id,
            work.name,
            *([] if work.caller_app_id is None else [work.caller_app_id]),
            int(work.started),
            now,
            before,
        ],
    )


def fail_waiting(
    db: Connections, work: WaitingWork, failure: FailureDetails, before: float, now: float
) -> int:
    """Fail the waiting calls of ``work``'s group (Store.fail_waiting)."""
    if work.kind is WorkKind.WORKFLOW and (work.started or work.caller_app_id is None):
        return 0  # only calls fail: children that have not started
    clauses, params = _group(work, before, now)
    with db.errors(), db.write() as conn:
        if work.kind is WorkKind.ACTIVITY:
            failed = _fail_tasks(conn, clauses, params, failure, now)
        else:
            failed = _fail_children(conn, clauses, params, failure, now)
        if failed:
            db.gives(orchestrations=True, status=work.kind is WorkKind.WORKFLOW)
    return failed


def _fail_tasks(
    conn: sqlite3.Connection,
    clauses: str,
    params: list[object],
    failure: FailureDetails,
    now: float,
) -> int:
    rows = conn.execute(
        f"SELECT t.id, t.instance_id, t.execution_id, t.task_id, t.task_execution_id {clauses} "
        "ORDER BY t.id",
        params,
    ).fetchall()
    for row_id, iid, eid, task_id, teid in rows:
        event = TaskFailed(
            timestamp=from_epoch(now),
            task_scheduled_id=task_id,
            failure=failure,
            task_execution_id=teid,
        )
        conn.execute(
            "INSERT INTO inbox (instance_id, execution_id, event, visible_at) VALUES (?, ?, ?, ?)",
            (iid, eid, encode_event(event), now),
        )
        conn.execute("DELETE FROM activity_tasks WHERE id = ?", (row_id,))
    return len(rows)


def _fail_children(
    conn: sqlite3.Connection,
    clauses: str,
    params: list[object],
    failure: FailureDetails,
    now: float,
) -> int:
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT i.instance_id {clauses} AND i.status = 'PENDING' ORDER BY i.instance_id",
            params,
        )
    ]
    for iid in ids:
        started = next(
            (
                event
                for (text,) in conn.execute(
                    "SELECT event FROM inbox WHERE instance_id = ? ORDER BY id", (iid,)
                )
                if isinstance(event := decode_event(text), ExecutionStarted)
            ),
            None,
        )
        conn.execute(
            "UPDATE instances SET status = 'FAILED', failure = ?, updated_at = ?, "
            "finished_at = ?, version = version + 1, waiting = NULL WHERE instance_id = ?",
            (encode_failure(failure), now, now, iid),
        )
        conn.execute("DELETE FROM inbox WHERE instance_id = ?", (iid,))
        parent = started.parent if started is not None else None
        if parent is not None:
            told = SubOrchestrationInstanceFailed(
                timestamp=from_epoch(now),
                task_scheduled_id=parent.task_scheduled_id,
                failure=failure,
            )
            conn.execute(
                "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
                "SELECT instance_id, ?, ?, ? FROM instances WHERE instance_id = ?",
                (parent.execution_id, encode_event(told), now, parent.instance_id),
            )
    return len(ids)


def note_waiting(
    db: Connections, notes: Sequence[tuple[WaitingWork, str]], before: float, now: float
) -> None:
    """Set the waiting notes of the groups' instances, clear the others (Store.note_waiting)."""
    with db.errors(), db.write(notify=False, durable=False) as conn:
        noted: dict[str, str] = {}
        for work, text in notes:
            clauses, params = _group(work, before, now)
            column = "t.instance_id" if work.kind is WorkKind.ACTIVITY else "i.instance_id"
            for (iid,) in conn.execute(
                f"SELECT DISTINCT {column} {clauses} ORDER BY 1 LIMIT ?",
                (*params, NOTED_PER_GROUP),
            ):
                noted.setdefault(iid, text)
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS noted (instance_id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM noted")
        conn.executemany("INSERT INTO noted (instance_id) VALUES (?)", [(i,) for i in noted])
        conn.execute(
            "UPDATE instances SET waiting = NULL WHERE waiting IS NOT NULL "
            "AND instance_id NOT IN (SELECT instance_id FROM noted)"
        )
        conn.executemany(
            "UPDATE instances SET waiting = ? WHERE instance_id = ? AND waiting IS NOT ?",
            [(text, iid, text) for iid, text in noted.items()],
        )
