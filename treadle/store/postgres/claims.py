"""Claiming orchestration work for PostgresStore: lease instances and read their messages.

One statement leases the instances (``FOR NO KEY UPDATE SKIP LOCKED``, oldest waiting message
first) and returns them with their visible messages, in autocommit mode: one round trip, with
an asynchronous commit (see :data:`~.sql.NOSYNC`).

Its messages come from the statement's snapshot, which may predate the commit that released
an instance (we wait for no lock, but a commit can land between our snapshot and our lock).
Such a commit consumed messages that the snapshot still shows, and it always bumped the
instance's version: so an instance whose locked version differs from its version in the
snapshot has its messages read again, by a statement whose snapshot follows our lock.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from treadle.core import codec
from treadle.core.history import event_from_dict
from treadle.store.base import (
    TERMINATION_PREFIX,
    InboxMessage,
    InstanceRecord,
    OrchestrationWorkItem,
)
from treadle.store.postgres.libpq import load_rows
from treadle.store.postgres.sql import NOSYNC, Conn, Db, enqueue_own_sql
from treadle.store.serde import INSTANCE_COLUMNS, instance_from_row

__all__ = ["claim_orchestrations_in"]

_PREFIXED = ", ".join(f"i.{c.strip()}" for c in INSTANCE_COLUMNS.split(","))
_MESSAGES = (
    "SELECT json_agg(json_build_array(m.id, m.execution_id, m.event::json) ORDER BY m.id)::text "
    "FROM inbox m WHERE m.instance_id = c.instance_id AND (m.visible_at <= {now}) IS TRUE"
)
_CLAIMABLE = "(i.lease_owner IS NULL OR i.lease_owner = %(owner)s OR i.lease_expires_at < {now})"
_KEPT = "(i.lease_owner = %(owner)s AND i.lease_expires_at >= {now}) IS TRUE"
# The work of the claiming worker: of its app, and of one of its names (see _claim_sql).
_MINE = "i.app_id = %(app)s{by_name}"
_BY_NAME = (  # (an instance asked to terminate is any worker's of its app: see the protocol)
    " AND (i.name = ANY(%(names)s::text[]) OR EXISTS (SELECT 1 FROM inbox x "
    f"WHERE x.instance_id = i.instance_id AND x.event LIKE '{TERMINATION_PREFIX}%%'))"
)
_CLAIM_SQL = (
    # The first `scan` visible messages of claimable instances, in id order (an index scan
    # that stops early, rather than grouping the whole inbox).
    "WITH seen AS (SELECT m.id, m.instance_id FROM inbox m WHERE m.id > %(after)s "
    "  AND m.visible_at <= {now} AND m.instance_id <> ALL(%(exclude)s::text[]) "
    "  AND EXISTS (SELECT 1 FROM instances i WHERE i.instance_id = m.instance_id "
    f"  AND {_CLAIMABLE} AND {_MINE}) ORDER BY m.id LIMIT %(scan)s), "
    # Oldest first, each locked by a lookup of its own, until `limit` are held: the ordered
    # subquery is the outer side of a nested loop, which keeps its order.
    "picked AS (SELECT p.* FROM (SELECT instance_id, MIN(id) AS first_id FROM seen "
    "  GROUP BY instance_id ORDER BY first_id OFFSET 0) r, LATERAL (SELECT i.instance_id, "
    "  r.first_id, i.lease_owner AS old_owner, i.lease_expires_at AS old_expires, "
    # taken over (from another owner, or from a lapsed lease): its own task goes to the queue
    f"  CASE WHEN NOT {_KEPT} THEN i.own_task END AS own_task "
    f"  FROM instances i WHERE i.instance_id = r.instance_id AND {_CLAIMABLE} AND {_MINE} "
    "  FOR NO KEY UPDATE SKIP LOCKED) p LIMIT %(limit)s), "
    f"{NOSYNC}, "
    "claimed AS (UPDATE instances i SET lease_owner = %(owner)s, "
    "  lease_expires_at = {now} + make_interval(secs => %(lease_s)s), waiting = NULL, "
    "  own_task = CASE WHEN p.own_task IS NULL THEN i.own_task END, "
    "  version = CASE WHEN p.own_task IS NULL THEN i.version ELSE i.version + 1 END "
    "  FROM picked p, nosync WHERE i.instance_id = p.instance_id "
    f"  RETURNING p.first_id, p.old_owner, p.old_expires, {_PREFIXED}), "
    f"moved AS ({enqueue_own_sql('picked')} RETURNING 1), "
    "woken AS (SELECT {notify_act} WHERE EXISTS (SELECT 1 FROM moved)) "
    # s: the instance in this statement's snapshot (the main query does not see `claimed`).
    # One row even when nothing was claimed, for how far the scan went.
    f"SELECT c.*, s.version, ({_MESSAGES}), x.seen, x.last_id "
    "FROM (SELECT count(*) AS seen, MAX(id) AS last_id FROM seen) x, "
    "  (SELECT count(*) FROM woken) w "
    "LEFT JOIN claimed c ON true LEFT JOIN LATERAL (SELECT version FROM instances s "
    "  WHERE s.instance_id = c.instance_id OFFSET 0) s ON true ORDER BY c.first_id"
)
_REREAD_SQL = (
    "SELECT c.instance_id, (" + _MESSAGES + ") FROM unnest(%(ids)s::text[]) AS c(instance_id)"
)
_RESTORE_SQL = (
    f"WITH {NOSYNC} UPDATE instances i SET lease_owner = o.owner, lease_expires_at = o.expires "
    "FROM nosync, unnest(%(ids)s::text[], %(owners)s::text[], %(expires)s::timestamptz[]) "
    "AS o(iid, owner, expires) WHERE i.instance_id = o.iid AND i.lease_owner = %(owner)s"
)
_N_COLUMNS = 3 + len(INSTANCE_COLUMNS.split(","))


def _messages(instance_id: str, text: str | None) -> list[InboxMessage]:
    """Messages from a ``[[id, execution_id, event], ...]`` JSON text (None: no messages)."""
    if not text:
        return []
    return [
        InboxMessage(
            id=m[0], instance_id=instance_id, event=event_from_dict(m[2]), execution_id=m[1]
        )
        for m in codec.loads(text)
    ]


def claim_orchestrations_in(
    db: Db,
    conn: Conn,
    owner: str,
    limit: int,
    lease_s: float,
    exclude: Sequence[str],
    *,
    app_id: str = "",
    names: Sequence[str] | None = None,
    admitted: bool = False,
) -> list[OrchestrationWorkItem]:
    """Claim instances (see Store.claim_orchestrations) in autocommit statements;
    ``admitted``: only those that started or that their queue admitted (see
    :mod:`treadle.store.queues`).

    Each statement looks at a bounded number of messages; while that bound cuts the scan
    short and fewer than ``limit`` instances were claimed, another one continues after it.
    """
    claim_sql = _claim_sql(names is not None, admitted)
    excluded = list(exclude)
    claimed: list[tuple[Any, InstanceRecord, list[InboxMessage]]] = []
    after = 0
    while True:
        scan = 2 * (limit - len(claimed)) + 64
        params = {
            "owner": owner,
            "exclude": excluded,
            "limit": limit - len(claimed),
            "lease_s": float(lease_s),
            "after": after,
            "scan": scan,
            "app": app_id,
            "names": list(names or ()),
        }
        rows = load_rows(conn, db.execute_raw(conn, claim_sql, params))
        seen, last_id = rows[0][-2:]
        found = _read_claims(db, conn, owner, [r for r in rows if r[0] is not None])
        claimed.extend(found)
        if seen < scan or len(claimed) >= limit:
            return [
                OrchestrationWorkItem(rec, msgs, _taken_from(row, owner))
                for row, rec, msgs in claimed
                if msgs
            ]
        after = last_id
        excluded.extend(rec.instance_id for _, rec, _ in found)


def _taken_from(row: Any, owner: str) -> str | None:
    """The owner a claim statement's row took the instance from, if another one held it."""
    previous: str | None = row[1]
    return previous if previous is not None and previous != owner else None


_ADMITTED = (
    " AND (i.status <> 'PENDING' OR EXISTS (SELECT 1 FROM queue_slots q "
    "WHERE q.instance_id = i.instance_id AND q.admitted_at >= i.created_at))"
)


@functools.lru_cache(maxsize=4)
def _claim_sql(by_name: bool, admitted: bool = False) -> str:
    """The claim statement, for a worker that takes some workflow names or any (and, with
    ``admitted``, only instances that started or that their queue admitted)."""
    return _CLAIM_SQL.replace(
        "{by_name}", (_BY_NAME if by_name else "") + (_ADMITTED if admitted else "")
    )


def _read_claims(
    db: Db, conn: Conn, owner: str, rows: list[Any]
) -> list[tuple[Any, InstanceRecord, list[InboxMessage]]]:
    """The claimed instances of one claim statement's rows, with their messages."""
    claimed: list[tuple[Any, InstanceRecord, list[InboxMessage]]] = []
    stale: list[str] = []
    for row in rows:
        record = instance_from_row(row[3:_N_COLUMNS])
        if row[_N_COLUMNS] != record.version:
            stale.append(record.instance_id)
        claimed.append((row, record, _messages(record.instance_id, row[_N_COLUMNS + 1])))
    if stale:
        fresh = {
            r[0]: _messages(r[0], r[1])
            for r in db.execute(conn, _REREAD_SQL, {"ids": stale}).fetchall()
        }
        claimed = [(row, rec, fresh.get(rec.instance_id, msgs)) for row, rec, msgs in claimed]
    empty = [row for row, _, msgs in claimed if not msgs]
    if empty:  # a concurrent commit consumed them: put the lease back as it was
        db.execute(
            conn,
            _RESTORE_SQL,
            {
                "ids": [r[3] for r in empty],
                "owners": [r[1] for r in empty],
                "expires": [r[2] for r in empty],
                "owner": owner,
            },
        )
    return claimed
