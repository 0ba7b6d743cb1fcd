"""The one-statement commits of PostgresStore: a single turn, and a group of simple turns.

Most turns only append history, consume inbox messages and activity results, enqueue
activities and send messages (timers to themselves, events and results to others). A group
of such turns, of distinct instances, is committed by one SQL statement in autocommit mode,
so one round trip to the server, COMMIT included:

- ``ok``: the fence and the instance update in one ``UPDATE ... WHERE lease_owner = owner
  AND lease_expires_at >= now() AND version = expected`` (and every activity result's task
  row still there); the turns it returns are accepted, and every other write of the
  statement reads them, so a refused turn writes nothing;
- history, inbox deletes, activity deletes and inserts, messages: one data-modifying CTE
  each, only those the group needs;
- the NOTIFY, only if an accepted turn is one another worker or a client may act on (a
  change of status alone is marked for clients only).

Why a turn was refused is read afterwards, only when one was (:mod:`.commit`).

The turns travel as one JSON document (``orjson``; events as pre-encoded fragments, stored
byte for byte as :func:`~treadle.store.serde.encode_event` wrote them).

Turns that create child instances or reset their history (continue-as-new), groups with two
turns of one instance, and messages to another instance of the same group take the general
path of :mod:`.commit_transaction` (a statement cannot see its own CTEs' writes, and could not
lock a row that another of its CTEs updates); :mod:`.commit` chooses.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from psycopg import pq

from treadle.store.base import (
    InstanceRecord,
    TurnCommit,
    gives_activity_work,
    gives_orchestration_work,
)
from treadle.store.own_tasks import own_task_orphaned, own_task_update
from treadle.store.postgres.instances import RECORD_COLUMNS, instance_from_text
from treadle.store.postgres.listener import (
    ACTIVITIES_SUFFIX,
    CHANNEL,
    ORCHESTRATIONS_SUFFIX,
    STATUS_SUFFIX,
    SUFFIXES,
)
from treadle.store.postgres.sql import orphans_sql
from treadle.store.serde import encode_event, encode_failure, encode_propagation

__all__ = [
    "commit_rows",
    "committed_record",
    "fits_single",
    "simple_commit",
    "simple_commit_sql",
    "single_commit",
]

_LEASE = "{now} + make_interval(secs => %(lease_s)s)"
# A kept lease with more than half its time left stays as it is (renewals extend it): the
# row's indexed columns then do not change, and the update can be HOT (no new index entries),
# which keeps a long chain of steps on one instance from bloating its indexes.
_KEPT_LEASE = (
    "WHEN i.lease_expires_at > {now} + make_interval(secs => %(lease_s)s / 2) "
    f"THEN i.lease_expires_at ELSE {_LEASE} END"
)
# finished_at as a turn of status `st` leaves it: now if the status is a finished one, else
# NULL. Only the turn that ends an instance changes it (no index holds updated_at, which
# every turn writes): a running instance's turn changes no indexed column, and can be HOT.
_TERMINAL = "('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED')"


def _finished_at(st: str) -> str:
    """SQL for finished_at after a write of the status ``st`` (SQL)."""
    return f"CASE WHEN {st} IN {_TERMINAL} THEN {{now}} END"


# The columns a turn that creates its instance (TurnCommit.create) fills.
_CREATED_COLUMNS = (
    "instances (instance_id, name, status, execution_id, input, output, failure, "
    "  custom_status, created_at, updated_at, history_len, version, own_task, lease_owner, "
    "  lease_expires_at, app_id, finished_at)"
)

# The parts of the statement, each used only by the groups that need it (a data-modifying
# CTE costs its setup even when it writes nothing). Every write reads `ok`, the accepted
# turns. Nothing joins two CTEs: the planner would make that a nested loop (it takes `t` for
# one row), quadratic in the size of the group.
_TURNS = (
    "t AS (SELECT * FROM json_to_recordset(%(turns)s::json) AS t(k integer, iid text, "
    "  v bigint, st text, eid text, inp text, res text, fail text, cs text, hs integer, "
    "  hl integer, keep boolean, wo boolean, wa boolean, cancel boolean, so boolean, "
    "  own text, orph boolean, ev json, cm json, ca json, na json, nm json) "
    # (Ids travel as JSON arrays: json_to_recordset fills bigint[] columns slowly.)
    # Always true; it tells the planner that there are few turns (a set-returning function
    # counts as 100 rows), so that it looks instances up by key instead of scanning them.
    "  WHERE t.k >= 0 AND t.k < %(n)s)"
)
# A result is recorded by whoever deletes its task row: lock the rows still there.
_PRESENT = (
    "present AS (SELECT a.id FROM t, json_array_elements_text(t.ca) AS c(id), "
    "  LATERAL (SELECT id FROM activity_tasks WHERE id = c.id::bigint FOR UPDATE) a)"
)
_ALL_PRESENT = (
    "NOT EXISTS (SELECT 1 FROM json_array_elements_text(t.ca) AS c(id) "
    "  WHERE c.id::bigint NOT IN (SELECT id FROM present))"
)
_OK = (
    "ok AS (UPDATE instances i SET status = t.st, execution_id = t.eid, "
    "  input = COALESCE(t.inp, i.input), output = t.res, failure = t.fail, "
    "  custom_status = t.cs, updated_at = {now}, history_len = t.hl, version = i.version + 1, "
    f"  finished_at = {_finished_at('t.st')}, "
    # the own task (OWN_TASK_RULES): set, cleared (consumed, cancelled) or left
    "  own_task = CASE WHEN t.so THEN t.own ELSE i.own_task END, "
    "  lease_owner = CASE WHEN t.keep THEN %(owner)s END, "
    f"  lease_expires_at = CASE WHEN NOT t.keep THEN NULL {_KEPT_LEASE} "
    # IS TRUE: not an index condition, so the planner cannot pick the lease index over the key
    "  FROM t WHERE i.instance_id = t.iid AND (i.lease_owner = %(owner)s) IS TRUE "
    "  AND i.lease_expires_at >= {now} AND i.version = t.v{present} "
    "  RETURNING t.*, i.version AS new_version)"
)
# A turn that creates its instance (TurnCommit.create; alone in its group): the row is
# inserted as the turn leaves it, unless the id is taken (then nothing is written).
_CREATED = (
    f"created AS (INSERT INTO {_CREATED_COLUMNS} "
    "  SELECT t.iid, %(name)s, t.st, t.eid, COALESCE(t.inp, %(input)s), t.res, t.fail, t.cs, "
    "  {now}, {now}, t.hl, 1, CASE WHEN t.so THEN t.own END, "
    f"  CASE WHEN t.keep THEN %(owner)s END, CASE WHEN t.keep THEN {_LEASE} END, %(app)s, "
    f"  {_finished_at('t.st')} FROM t "
    "  ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id, version), "
    "ok AS (SELECT t.*, c.version AS new_version FROM t JOIN created c ON c.instance_id = t.iid)"
)
_HISTORY = (
    "hist AS (INSERT INTO history (instance_id, seq, event) "
    "  SELECT ok.iid, ok.hs + e.n - 1, e.ev::text "
    "  FROM ok, json_array_elements(ok.ev) WITH ORDINALITY AS e(ev, n))"
)
# `c.n BETWEEN`: always true, to say that a turn has few ids (as for `t` above).
_CONSUMED = (
    "consumed AS (DELETE FROM inbox m USING ok, json_array_elements_text(ok.cm) "
    "  WITH ORDINALITY AS c(id, n) WHERE m.id = c.id::bigint AND c.n BETWEEN 1 AND %(n_max)s)"
)
_FINISHED = (
    "finished AS (DELETE FROM activity_tasks a USING ok, json_array_elements_text(ok.ca) "
    "  WITH ORDINALITY AS c(id, n) WHERE a.id = c.id::bigint AND c.n BETWEEN 1 AND %(n_max)s)"
)
_CANCELLED = (
    "cancelled AS (DELETE FROM activity_tasks a USING ok "
    "  WHERE ok.cancel AND a.instance_id = ok.iid)"
)
# Identity values rise in insertion order, which is (turn, task) order.
_ACTIVITIES = (
    "acts AS (INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
    "  task_execution_id, visible_at, lease_owner, lease_expires_at, propagated, app_id, "
    "  heartbeat_s, deliveries, timeout_s) "
    "  SELECT a.iid, a.eid, a.tid, a.name, a.inp, a.teid, {now}, "
    "  CASE WHEN a.leased THEN %(owner)s END, "
    f"  CASE WHEN a.leased THEN {_LEASE} END, a.prop, a.app, a.hb, "
    "  CASE WHEN a.leased THEN 1 ELSE 0 END, a.tmo "
    "  FROM ok, ROWS FROM (json_to_recordset(ok.na) AS (iid text, eid text, tid integer, "
    "  name text, inp text, teid text, leased boolean, prop text, app text, "
    "  hb double precision, tmo double precision)) WITH ORDINALITY "
    "  AS a(iid, eid, tid, name, inp, teid, leased, prop, app, hb, tmo, n) ORDER BY ok.k, a.n "
    "  RETURNING id, instance_id, lease_owner IS NOT NULL AS leased)"
)
_SENT = (
    "sent AS (SELECT ok.k, ok.iid AS sender, m.* FROM ok, ROWS FROM (json_to_recordset(ok.nm) "
    "  AS (iid text, eid text, ev json, visible_at timestamptz)) WITH ORDINALITY "
    "  AS m(iid, eid, ev, visible_at, n))"
)
# To itself: the instance exists (it was just updated, and so is locked).
_TO_SELF = (
    "to_self AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
    "  SELECT s.iid, s.eid, s.ev::text, COALESCE(s.visible_at, {now}) FROM sent s "
    "  WHERE s.iid = s.sender ORDER BY s.k, s.n)"
)
# To others: only if they exist, which FOR KEY SHARE keeps true until we commit.
_TO_OTHERS = (
    "to_others AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
    "  SELECT s.iid, s.eid, s.ev::text, COALESCE(s.visible_at, {now}) FROM sent s, "
    "  LATERAL (SELECT 1 FROM instances i WHERE i.instance_id = s.iid FOR KEY SHARE) i "
    "  WHERE s.iid <> s.sender ORDER BY s.k, s.n)"
)
# The main query's reads of instances see the rows as they were before this statement.
# New work wakes workers (of its kind) and clients; a change of status alone, clients only
# (the payload's suffix says which, see .listener).
_STATUS_CHANGED = "ok.st <> (SELECT b.status FROM instances b WHERE b.instance_id = ok.iid)"
_WOKEN = (
    f"flags AS (SELECT bool_or(ok.wo) AS o, bool_or(ok.wa) AS a, bool_or({_STATUS_CHANGED}) "
    "  AS s FROM ok), "
    f"woken AS (SELECT pg_notify('{CHANNEL}', %(notify_payload)s || CASE "
    f"  WHEN f.o AND f.a THEN '' WHEN f.o THEN '{ORCHESTRATIONS_SUFFIX}' "
    f"  WHEN f.a THEN '{ACTIVITIES_SUFFIX}' ELSE '{STATUS_SUFFIX}' END) "
    "  FROM flags f WHERE f.o OR f.a OR f.s)"
)
# (see orphans_sql)
_ORPHANS_WOKEN = " UNION ALL SELECT 'n', NULL, count(*){nulls} FROM orphans_woken"
# One row per accepted turn ('k'), per task enqueued leased ('a'), and one for the NOTIFY.
_RESULT = (
    "SELECT 'k', ok.k, ok.new_version FROM ok{leased} "
    "UNION ALL SELECT 'n', NULL, count(*) FROM woken"
)
_LEASED = " UNION ALL SELECT 'a', NULL, a.id FROM acts a WHERE a.leased"


@functools.lru_cache(maxsize=64)
def simple_commit_sql(parts: frozenset[str]) -> str:
    """The statement for a group of simple turns that needs ``parts``.

    Args:
        parts: which kinds of rows the group writes (see :func:`simple_commit`).
    """
    has_present = "ca" in parts
    ctes = [_TURNS]
    if has_present:
        ctes.append(_PRESENT)
    if "create" in parts:
        ctes.append(_CREATED)
    else:
        ctes.append(_OK.replace("{present}", f" AND {_ALL_PRESENT}" if has_present else ""))
    for part, cte in (
        ("ev", _HISTORY),
        ("cm", _CONSUMED),
        ("ca", _FINISHED),
        ("cancel", _CANCELLED),
        ("na", _ACTIVITIES),
    ):
        if part in parts:
            ctes.append(cte)
    if "self" in parts or "others" in parts:
        ctes.append(_SENT)
    if "self" in parts:
        ctes.append(_TO_SELF)
    if "others" in parts:
        ctes.append(_TO_OTHERS)
    if "orph" in parts:
        ctes.append(orphans_sql("ok.orph AND b.instance_id = ok.iid"))
    # no client waits on an instance that did not exist: a creating turn wakes workers only
    ctes.append(_WOKEN.replace(_STATUS_CHANGED, "false") if "create" in parts else _WOKEN)
    result = _RESULT.replace("{leased}", _LEASED if "na" in parts else "")
    if "orph" in parts:
        result += _ORPHANS_WOKEN.replace("{nulls}", "")
    return "WITH " + ", ".join(ctes) + " " + result


# One turn of the commonest shapes (a chain's step, a first or last turn, an event's turn):
# it writes or creates its instance's row and its history, and may consume inbox messages
# and cancel its tasks. Its values travel as scalar parameters and its events as a text
# array: no JSON document to parse, no CTE of turns to join (measured: 60-80 µs less per
# commit than the group statement for the same turn).
_SINGLE_OK = (
    "ok AS (UPDATE instances i SET status = %(st)s, execution_id = %(eid)s, "
    "  input = COALESCE(%(inp)s, i.input), output = %(res)s, failure = %(fail)s, "
    "  custom_status = %(cs)s, updated_at = {now}, history_len = %(hl)s, "
    f"  finished_at = {_finished_at('%(st)s::text')}, "
    "  version = i.version + 1{own}, lease_owner = {owner}, lease_expires_at = {expires} "
    "  WHERE i.instance_id = %(iid)s AND (i.lease_owner = %(owner)s) IS TRUE "
    "  AND i.lease_expires_at >= {now} AND i.version = %(v)s "
    "  RETURNING i.version AS new_version, i.status AS st{record})"
)
# A turn that creates its instance (TurnCommit.create): the row inserted as the turn leaves
# it, unless the id is taken (then nothing is written and the turn is refused).
_SINGLE_CREATED = (
    f"ok AS (INSERT INTO {_CREATED_COLUMNS} VALUES (%(iid)s, %(name)s, %(st)s, %(eid)s, "
    "  COALESCE(%(inp)s, %(input)s), %(res)s, %(fail)s, %(cs)s, {now}, {now}, %(hl)s, 1, "
    f"  {{own}}, {{owner}}, {{expires}}, %(app)s, {_finished_at('%(st)s::text')}) "
    "  ON CONFLICT (instance_id) DO NOTHING "
    "  RETURNING version AS new_version, status AS st{record})"
)
# A turn that ends its instance returns the row as it wrote it (as get_instance reads it), for
# this process's clients waiting on it (ChangeListener.echo_record): columns r0, r1...
_RECORD = [f"{column} AS r{k}" for k, column in enumerate(RECORD_COLUMNS.split(", "))]
_SINGLE_CONSUMED = "consumed AS (DELETE FROM inbox m USING ok WHERE m.id = ANY(%(cm)s::bigint[]))"
_SINGLE_CANCELLED = (
    "cancelled AS (DELETE FROM activity_tasks a USING ok WHERE a.instance_id = %(iid)s)"
)
_SINGLE_HISTORY = (
    "hist AS (INSERT INTO history (instance_id, seq, event) "
    "  SELECT %(iid)s, %(hs)s + e.n - 1, e.ev FROM ok, "
    "  unnest(%(events)s::text[]) WITH ORDINALITY AS e(ev, n))"
)


@functools.lru_cache(maxsize=32)
def _single_sql(
    sets_own: bool,
    keep: bool,
    history: bool,
    consumes: bool,
    cancels: bool,
    suffix: str | None,
    create: bool,
    record: bool,
    orphans: bool = False,
) -> str:
    """The statement of :func:`single_commit`; ``suffix``: the NOTIFY payload's suffix when
    the turn gives work, None to notify clients only if the status changed (never, for a
    turn that creates its instance: nobody can wait on an instance that did not exist);
    ``record``: return the instance's row too (see :func:`committed_record`); ``orphans``:
    queue an own task the row held that the turn leaves (see :func:`own_task_orphaned`)."""
    returned = "".join(", " + c for c in _RECORD) if record else ""
    if create:
        ok = (
            _SINGLE_CREATED.replace("{record}", returned)
            .replace("{own}", "%(own)s" if sets_own else "NULL")
            .replace("{owner}", "%(owner)s" if keep else "NULL")
            .replace("{expires}", _LEASE if keep else "NULL")
        )
    else:
        ok = (
            _SINGLE_OK.replace("{record}", returned)
            .replace("{own}", ", own_task = %(own)s" if sets_own else "")
            .replace("{owner}", "%(owner)s" if keep else "NULL")
            .replace("{expires}", f"CASE {_KEPT_LEASE}" if keep else "NULL")
        )
    ctes = [ok, _SINGLE_HISTORY] if history else [ok]
    if consumes:
        ctes.append(_SINGLE_CONSUMED)
    if cancels:
        ctes.append(_SINGLE_CANCELLED)
    if orphans:
        ctes.append(orphans_sql("b.instance_id = %(iid)s"))
    notify = f"SELECT pg_notify('{CHANNEL}', %(notify_payload)s || '{suffix or STATUS_SUFFIX}')"
    if suffix is not None:
        ctes.append(f"woken AS ({notify} FROM ok)")
    elif create:
        ctes.append("woken AS (SELECT 1 WHERE false)")
    else:  # the row as it was before this statement: a change of status wakes clients
        ctes.append(
            f"woken AS ({notify} FROM ok "
            "  WHERE ok.st <> (SELECT b.status FROM instances b WHERE b.instance_id = %(iid)s))"
        )
    columns = "".join(f", ok.r{k}" for k in range(len(_RECORD))) if record else ""
    nulls = ", NULL" * len(_RECORD) if record else ""
    woken = _ORPHANS_WOKEN.replace("{nulls}", nulls) if orphans else ""
    return (
        "WITH " + ", ".join(ctes) + f" SELECT 'k', 0, ok.new_version{columns} FROM ok "
        f"UNION ALL SELECT 'n', NULL, count(*){nulls} FROM woken{woken}"
    )


def fits_single(turn: TurnCommit) -> bool:
    """Whether :func:`single_commit` can commit ``turn`` alone: it only writes (or creates)
    its instance's row and history, consumes inbox messages, cancels its activities or keeps
    an own task (it sends no messages, queues or consumes no activity rows, creates no other
    instance and keeps its history)."""
    if turn.new_messages or turn.new_instances or turn.reset_history:
        return False
    for activity_id in turn.consumed_activities:  # (plain loops: this is every turn)
        if activity_id > 0:
            return False
    for task in turn.new_activities:  # noqa: SIM110
        if not task.own:
            return False
    return True


def single_commit(turn: TurnCommit, owner: str, lease_s: float) -> tuple[str, dict[str, Any]]:
    """The statement that commits ``turn`` alone (see :func:`fits_single`), and its
    parameters."""
    sets_own, own_value = own_task_update(turn)
    gives = (gives_orchestration_work(turn), gives_activity_work(turn))
    suffix = None if gives == (False, False) else SUFFIXES[gives]
    params: dict[str, Any] = {
        "st": turn.status.name,
        "eid": turn.execution_id,
        "inp": turn.input,
        "res": turn.output,
        "fail": encode_failure(turn.failure),
        "cs": turn.custom_status,
        "hl": turn.history_start + len(turn.new_events),
        "iid": turn.instance_id,
        "owner": owner,
        "v": turn.expected_version,
    }
    if sets_own:
        params["own"] = own_value
    if turn.keep_lease:
        params["lease_s"] = float(lease_s)
    if turn.new_events:
        params["hs"] = turn.history_start
        params["events"] = [encode_event(e) for e in turn.new_events]
    if turn.consumed_messages:
        params["cm"] = list(turn.consumed_messages)
    created = turn.create
    if created is not None:
        params["name"] = created.name
        params["input"] = created.input
        params["app"] = created.app_id
    sql = _single_sql(
        sets_own,
        turn.keep_lease,
        bool(turn.new_events),
        bool(turn.consumed_messages),
        turn.cancel_activities,
        suffix,
        created is not None,
        turn.status.is_terminal,
        own_task_orphaned(turn),
    )
    return sql, params


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a time (naive ones are taken as UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def simple_commit(
    turns: Sequence[TurnCommit], owner: str, lease_s: float
) -> tuple[str, dict[str, Any]]:
    """The statement that commits ``turns`` (see :func:`is_simple`), and its parameters."""
    fragment = orjson.Fragment
    parts: set[str] = set()
    docs = []
    for k, t in enumerate(turns):
        sets_own, own_value = own_task_update(t)
        orphans = own_task_orphaned(t)
        if orphans:
            parts.add("orph")
        queued = [a for a in t.new_activities if not a.own]
        rows = [a for a in t.consumed_activities if a > 0]  # negative: the own task
        for part, present in (
            ("ev", t.new_events),
            ("cm", t.consumed_messages),
            ("ca", rows),
            ("cancel", t.cancel_activities),
            ("na", queued),
        ):
            if present:
                parts.add(part)
        for m in t.new_messages:
            parts.add("self" if m.instance_id == t.instance_id else "others")
        docs.append(
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
                "wo": gives_orchestration_work(t),
                "wa": gives_activity_work(t),
                "cancel": t.cancel_activities,
                "so": sets_own,
                "own": own_value,
                "orph": orphans,
                # events are stored as encode_event wrote them: JSON fragments, not strings
                "ev": [fragment(encode_event(e)) for e in t.new_events],
                "cm": list(t.consumed_messages),
                "ca": rows,
                "na": [
                    {
                        "iid": a.instance_id,
                        "eid": a.execution_id,
                        "tid": a.task_id,
                        "name": a.name,
                        "inp": a.input,
                        "teid": a.task_execution_id,
                        "leased": a.leased,
                        "prop": encode_propagation(a.propagated),
                        "app": a.app_id,
                        "hb": a.heartbeat_s,
                        "tmo": a.timeout_s,
                    }
                    for a in queued
                ],
                "nm": [
                    {
                        "iid": m.instance_id,
                        "eid": m.execution_id,
                        "ev": fragment(encode_event(m.event)),
                        "visible_at": _iso(m.visible_at),
                    }
                    for m in t.new_messages
                ],
            }
        )
    created = turns[0].create if len(turns) == 1 else None
    if created is not None:
        parts.add("create")
    params = {
        "turns": orjson.dumps(docs).decode(),
        "n": len(docs),
        "n_max": 2**31 - 1,
        "owner": owner,
        "lease_s": float(lease_s),
    }
    if created is not None:
        params["name"] = created.name
        params["input"] = created.input
        params["app"] = created.app_id
    return simple_commit_sql(frozenset(parts)), params


def commit_rows(result: pq.abc.PGresult) -> list[tuple[str, int | None, int]]:
    """The rows of :func:`simple_commit`'s or :func:`single_commit`'s statement, from its
    text result."""
    rows: list[tuple[str, int | None, int]] = []
    value = result.get_value
    for i in range(result.ntuples):
        kind, k, number = value(i, 0), value(i, 1), value(i, 2)
        assert kind is not None and number is not None
        rows.append((kind.decode(), None if k is None else int(k), int(number)))
    return rows


def committed_record(result: pq.abc.PGresult) -> InstanceRecord | None:
    """The instance's row that :func:`single_commit`'s statement returned (a turn that
    ended its instance, and was accepted), else None."""
    if result.nfields <= 3:
        return None
    for row in range(result.ntuples):
        if result.get_value(row, 0) == b"k":
            return instance_from_text(result, row, 3)
    return None
