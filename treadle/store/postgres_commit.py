"""The one-statement group commit of PostgresStore: fence and write simple turns at once.

Most turns only append history, consume inbox messages and activity results, enqueue
activities and send messages (timers to themselves, events and results to others). A group
of such turns, of distinct instances, is committed by one SQL statement in autocommit mode,
so one round trip to the server, COMMIT included:

- ``done``: the fence and the instance update in one ``UPDATE ... WHERE lease_owner = owner
  AND lease_expires_at >= now() AND version = expected``; the turns it returns are accepted,
  and every other write of the statement joins it, so a refused turn writes nothing;
- history, inbox deletes, activity deletes and inserts, messages: one data-modifying CTE each;
- the NOTIFY, only if an accepted turn is one another worker or a client may act on.

The turns travel as one JSON document (``orjson``; events as pre-encoded fragments, stored
byte for byte as :func:`~treadle.store.serde.encode_event` wrote them).

Turns that create child instances or reset their history (continue-as-new), groups with two
turns of one instance, and messages to another instance of the same group take the general
path of :mod:`treadle.store.postgres_turns` (a statement cannot see its own CTEs' writes, and
could not lock a row that another of its CTEs updates).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from treadle.store.base import CommitOutcome, TurnCommit
from treadle.store.serde import encode_event, encode_failure

__all__ = [
    "DELIVERED",
    "SIMPLE_COMMIT_SQL",
    "is_simple",
    "outcomes_from_rows",
    "simple_commit_params",
]

DELIVERED = "an activity result in the turn was already delivered (its task is gone)"
_LEASE = "{now} + make_interval(secs => %(lease_s)s)"

SIMPLE_COMMIT_SQL = (
    "WITH t AS (SELECT * FROM json_to_recordset(%(turns)s::json) AS t(k integer, iid text, "
    "  v bigint, st text, eid text, inp text, res text, fail text, cs text, hs integer, "
    "  hl integer, keep boolean, wakes boolean, cancel boolean, ev json, cm bigint[], "
    "  ca bigint[], na json, nm json)), "
    # A result is recorded by whoever deletes its task row: lock the rows still there.
    "present AS (SELECT id FROM activity_tasks WHERE id = ANY(ARRAY(SELECT unnest(t.ca) "
    "  FROM t)) ORDER BY id FOR UPDATE), "
    "done AS (UPDATE instances i SET status = t.st, execution_id = t.eid, "
    "  input = COALESCE(t.inp, i.input), output = t.res, failure = t.fail, "
    "  custom_status = t.cs, updated_at = {now}, history_len = t.hl, version = i.version + 1, "
    "  lease_owner = CASE WHEN t.keep THEN %(owner)s END, "
    f"  lease_expires_at = CASE WHEN t.keep THEN {_LEASE} END "
    "  FROM t WHERE i.instance_id = t.iid AND i.instance_id = ANY(ARRAY(SELECT iid FROM t)) "
    "  AND (i.lease_owner = %(owner)s) IS TRUE "
    "  AND i.lease_expires_at >= {now} AND i.version = t.v "
    "  AND NOT EXISTS (SELECT 1 FROM unnest(t.ca) AS c(id) WHERE c.id NOT IN "
    "  (SELECT id FROM present)) RETURNING t.k, i.version), "
    "ok AS (SELECT t.* FROM t JOIN done ON done.k = t.k), "
    "hist AS (INSERT INTO history (instance_id, seq, event) "
    "  SELECT ok.iid, ok.hs + e.n - 1, e.ev::text "
    "  FROM ok, json_array_elements(ok.ev) WITH ORDINALITY AS e(ev, n)), "
    "consumed AS (DELETE FROM inbox WHERE id = ANY(ARRAY(SELECT unnest(ok.cm) FROM ok))), "
    "finished AS (DELETE FROM activity_tasks WHERE id = ANY(ARRAY(SELECT unnest(ok.ca) "
    "  FROM ok))), "
    "cancelled AS (DELETE FROM activity_tasks "
    "  WHERE instance_id = ANY(ARRAY(SELECT ok.iid FROM ok WHERE ok.cancel))), "
    # Identity values rise in insertion order, which is (turn, task) order.
    "acts AS (INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
    "  task_execution_id, visible_at, lease_owner, lease_expires_at) "
    "  SELECT a.j->>0, a.j->>1, (a.j->>2)::integer, a.j->>3, a.j->>4, a.j->>5, {now}, "
    "  CASE WHEN (a.j->>6)::boolean THEN %(owner)s END, "
    f"  CASE WHEN (a.j->>6)::boolean THEN {_LEASE} END "
    "  FROM ok, json_array_elements(ok.na) WITH ORDINALITY AS a(j, n) ORDER BY ok.k, a.n "
    "  RETURNING id, instance_id, lease_owner IS NOT NULL AS leased), "
    "sent AS (SELECT ok.k, ok.iid AS sender, m.n, m.j->>0 AS iid, m.j->>1 AS eid, "
    "  m.j->2 AS ev, (m.j->>3)::timestamptz AS visible_at "
    "  FROM ok, json_array_elements(ok.nm) WITH ORDINALITY AS m(j, n)), "
    # To itself: the instance exists (it was just updated, and so is locked).
    "to_self AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
    "  SELECT s.iid, s.eid, s.ev::text, COALESCE(s.visible_at, {now}) FROM sent s "
    "  WHERE s.iid = s.sender ORDER BY s.k, s.n), "
    # To others: only if they exist, which FOR KEY SHARE keeps true until we commit.
    "to_others AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
    "  SELECT s.iid, s.eid, s.ev::text, COALESCE(s.visible_at, {now}) FROM sent s "
    "  JOIN instances i ON i.instance_id = s.iid WHERE s.iid <> s.sender "
    "  AND i.instance_id = ANY(ARRAY(SELECT iid FROM sent WHERE iid <> sender)) "
    "  ORDER BY s.k, s.n FOR KEY SHARE OF i), "
    # The main query's reads of instances see the rows as they were before this statement.
    "woken AS (SELECT {notify} WHERE EXISTS (SELECT 1 FROM ok WHERE ok.wakes OR "
    "  ok.st <> (SELECT b.status FROM instances b WHERE b.instance_id = ok.iid))) "
    "SELECT t.k, done.version, b.instance_id IS NOT NULL, b.lease_owner, "
    "  b.lease_expires_at >= {now}, b.version = t.v, NOT EXISTS (SELECT 1 "
    "  FROM unnest(t.ca) AS c(id) WHERE c.id NOT IN (SELECT id FROM present)), "
    "  (SELECT string_agg(a.id::text, ',' ORDER BY a.id) "
    "  FROM acts a WHERE a.instance_id = t.iid AND a.leased), (SELECT count(*) FROM woken) "
    "FROM t LEFT JOIN done ON done.k = t.k LEFT JOIN LATERAL (SELECT * FROM instances b "
    "  WHERE b.instance_id = t.iid OFFSET 0) b ON true ORDER BY t.k"
)


def is_simple(turns: Sequence[TurnCommit]) -> bool:
    """Whether one :data:`SIMPLE_COMMIT_SQL` statement commits ``turns`` as applying them
    one after the other would."""
    ids = {t.instance_id for t in turns}
    if len(ids) != len(turns):
        return False
    consumed = [a for t in turns for a in t.consumed_activities]
    if len(set(consumed)) != len(consumed):
        return False
    for turn in turns:
        if turn.new_instances or turn.reset_history:
            return False
        for message in turn.new_messages:
            if message.instance_id != turn.instance_id and message.instance_id in ids:
                return False
        for task in turn.new_activities:
            if task.instance_id != turn.instance_id:
                return False
    return True


def _wakes_others(turn: TurnCommit) -> bool:
    """Whether another worker or a waiting client may act on this turn, whatever the
    instance's status was (a change of status wakes them too, decided in SQL)."""
    return (
        not turn.keep_lease
        or bool(turn.new_messages)
        or bool(turn.new_instances)
        or any(not a.leased for a in turn.new_activities)
    )


def _visible(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def simple_commit_params(turns: Sequence[TurnCommit], owner: str, lease_s: float) -> dict[str, Any]:
    """The parameters of :data:`SIMPLE_COMMIT_SQL` for ``turns``."""
    fragment = orjson.Fragment
    docs = [
        {
            "k": k,
            "iid": t.instance_id,
            "v": t.expected_version,
            "st": t.status.name,
            "eid": t.execution_id,
            "inp": t.input,
            "res": t.output,
            "fail": encode_failure(t.failure),
            "cs": t.custom_status,
            "hs": t.history_start,
            "hl": t.history_start + len(t.new_events),
            "keep": t.keep_lease,
            "wakes": _wakes_others(t),
            "cancel": t.cancel_activities,
            "ev": [fragment(encode_event(e)) for e in t.new_events],
            "cm": list(t.consumed_messages),
            "ca": list(t.consumed_activities),
            "na": [
                (
                    a.instance_id,
                    a.execution_id,
                    a.task_id,
                    a.name,
                    a.input,
                    a.task_execution_id,
                    a.leased,
                )
                for a in t.new_activities
            ],
            "nm": [
                (
                    m.instance_id,
                    m.execution_id,
                    fragment(encode_event(m.event)),
                    _visible(m.visible_at),
                )
                for m in t.new_messages
            ],
        }
        for k, t in enumerate(turns)
    ]
    return {"turns": orjson.dumps(docs).decode(), "owner": owner, "lease_s": float(lease_s)}


def outcomes_from_rows(
    turns: Sequence[TurnCommit], rows: Sequence[Any], owner: str
) -> list[CommitOutcome]:
    """The outcome of each turn from :data:`SIMPLE_COMMIT_SQL`'s rows (one per turn, in order).

    A refused turn's reason is read from the instance as it was before the statement.
    """
    outcomes: list[CommitOutcome] = []
    for turn, row in zip(turns, rows, strict=True):
        _, version, exists, lease_owner, unexpired, current, delivered, leased, _ = row
        iid = turn.instance_id
        if version is not None:
            ids = [int(x) for x in leased.split(",")] if leased else []
            outcomes.append(CommitOutcome(iid, ok=True, version=version, new_activity_ids=ids))
        elif not exists:
            outcomes.append(CommitOutcome(iid, ok=False, error="the instance no longer exists"))
        elif lease_owner != owner or not unexpired:
            outcomes.append(CommitOutcome(iid, ok=False, error=f"lease held by {lease_owner!r}"))
        elif not current or delivered:
            error = "the instance changed since it was read"
            outcomes.append(CommitOutcome(iid, ok=False, error=error))
        else:
            outcomes.append(CommitOutcome(iid, ok=False, error=DELIVERED))
    return outcomes
