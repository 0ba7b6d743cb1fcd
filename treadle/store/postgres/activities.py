"""Activity tasks of PostgresStore: claiming and completing them, and rescuing the own tasks
of instances whose lease lapsed (their worker died).

Each is one statement in autocommit mode; a claim commits without waiting for the WAL flush
(:data:`~.sql.NOSYNC`: losing it in a crash is the same as its lease expiring).
"""

from __future__ import annotations

from collections.abc import Sequence

from treadle.store.base import ActivityResult, ActivityWorkItem
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.deadlines import NOT_OVERDUE, START_DEADLINE
from treadle.store.postgres.sql import NOSYNC, enqueue_own_sql
from treadle.store.serde import decode_propagation, encode_event

__all__ = ["claim_activities", "complete_activities", "rescue_own_tasks"]


def claim_activities(
    connections: Connections,
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
    if names is not None and not names:
        return []
    by_name = "" if names is None else "  AND name = ANY(%(names)s::text[]) "
    if except_names:  # (an empty list would make the condition NULL)
        by_name += "  AND NOT (name = ANY(%(except)s::text[])) "
    rows = connections.statement(
        "WITH picked AS (SELECT id FROM activity_tasks WHERE visible_at <= {now} "
        "  AND (lease_owner IS NULL OR lease_expires_at < {now}) AND app_id = %(app)s "
        f"{by_name}  AND {NOT_OVERDUE} ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
        f"{NOSYNC} "
        "UPDATE activity_tasks a SET lease_owner = %(owner)s, deliveries = a.deliveries + 1, "
        f"  {START_DEADLINE}, "
        # (a task with a heartbeat timeout: leased for at most that long)
        "  lease_expires_at = {now} + make_interval(secs => "
        "    LEAST(%(lease_s)s, COALESCE(a.heartbeat_s, %(lease_s)s))) "
        "FROM picked p, nosync WHERE a.id = p.id RETURNING a.id, a.instance_id, "
        "  a.execution_id, a.task_id, a.name, a.input, a.task_execution_id, a.propagated, "
        "  a.heartbeat_s, a.heartbeat_details, a.deliveries",
        {
            "limit": limit,
            "owner": owner,
            "lease_s": float(lease_s),
            "app": app_id,
            "names": list(names or ()),
            "except": list(except_names),
        },
    )
    return [
        ActivityWorkItem(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            decode_propagation(r[7]),
            r[8],
            r[9],
            r[10],
        )
        for r in sorted(rows)
    ]


def renew_activity_leases(
    connections: Connections, owner: str, activity_ids: Sequence[int], lease_s: float
) -> list[int]:
    """Extend this owner's leases of activity tasks; return the ids it no longer holds."""
    rows = connections.statement(
        f"WITH {NOSYNC} UPDATE activity_tasks SET lease_expires_at = {{now}} + "
        "  make_interval(secs => %(lease_s)s) FROM nosync "
        "WHERE id = ANY(%(ids)s::bigint[]) AND lease_owner = %(owner)s RETURNING id",
        {"lease_s": float(lease_s), "ids": list(activity_ids), "owner": owner},
    )
    held = {r[0] for r in rows}
    return [a for a in activity_ids if a not in held]


def heartbeat_activity(
    connections: Connections, owner: str, activity_id: int, details: str | None, lease_s: float
) -> bool:
    """Keep an activity's heartbeat details and extend its lease, if ``owner`` holds it."""
    rows = connections.statement(
        f"WITH {NOSYNC} UPDATE activity_tasks SET heartbeat_details = %(details)s, "
        "  lease_expires_at = {now} + make_interval(secs => %(lease_s)s) FROM nosync "
        "WHERE id = %(id)s AND lease_owner = %(owner)s AND lease_expires_at >= {now} "
        "RETURNING id",
        {"details": details, "lease_s": float(lease_s), "id": activity_id, "owner": owner},
    )
    return bool(rows)


def rescue_own_tasks(connections: Connections) -> None:
    """Queue the own tasks of instances whose lease lapsed (their worker died)."""
    connections.statement(
        "WITH lapsed AS (SELECT instance_id, own_task FROM instances "
        "  WHERE lease_owner IS NOT NULL AND lease_expires_at < {now} "
        "  AND own_task IS NOT NULL FOR NO KEY UPDATE SKIP LOCKED), "
        "cleared AS (UPDATE instances i SET own_task = NULL, version = i.version + 1 "
        "  FROM lapsed l WHERE i.instance_id = l.instance_id "
        "  RETURNING l.instance_id, l.own_task), "
        f"moved AS ({enqueue_own_sql('cleared')} RETURNING 1) "
        "SELECT {notify_act} WHERE EXISTS (SELECT 1 FROM moved)"
    )


def complete_activities(connections: Connections, results: Sequence[ActivityResult]) -> None:
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
    connections.statement(
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
