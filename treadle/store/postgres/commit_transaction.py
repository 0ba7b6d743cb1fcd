"""The general group commit of PostgresStore: any turns, in one pipelined transaction.

Row locks: claims and commits lock instance rows FOR NO KEY UPDATE (in instance id order),
then commits lock the activity task rows whose results they carry FOR UPDATE (in id order),
messages lock their target FOR KEY SHARE (it must not be deleted meanwhile), deletes take
FOR UPDATE. So two instances that message each other commit concurrently without deadlock,
and a purge cannot race a message into a deleted instance's inbox.

A group commit reads and locks every instance it touches in one statement, checks each
turn's fence in Python, then writes all accepted turns with one statement per kind of row
(history, inbox deletes, activity tasks, children, messages, instance updates), pipelined:
a commit of any number of turns costs two round trips (three when it creates children).
Groups of simple turns are committed by one statement instead (:mod:`.commit_statements`).
Turns are applied in "batches" of distinct instances so that the result is the one
SqliteStore gets by applying the turns one after the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from treadle.store.base import (
    CommitOutcome,
    NewMessage,
    TurnCommit,
    gives_activity_work,
    gives_orchestration_work,
)
from treadle.store.fencing import Fence, refusal
from treadle.store.own_tasks import next_own_task_id, own_task_orphaned, own_task_update
from treadle.store.postgres.instances import create_instances_in, insert_messages
from treadle.store.postgres.sql import Conn, Db, enqueue_own_sql
from treadle.store.serde import (
    child_refused,
    encode_event,
    encode_failure,
    encode_propagation,
    to_epoch,
)

__all__ = ["commit_turns_in"]


@dataclasses.dataclass
class _Fence:
    """An instance's fence as the turns of the group before leave it."""

    version: int
    owner: str | None
    expires: datetime | None
    own_task: str | None = None

    def seen(self, now: datetime) -> Fence:
        """The fence a turn is checked against (see :func:`~treadle.store.fencing.refusal`)."""
        live = self.expires is not None and self.expires >= now
        return Fence(version=self.version, lease_owner=self.owner, lease_live=live)


@dataclasses.dataclass
class _Batch:
    """Accepted turns of distinct instances, written together."""

    turns: list[tuple[int, TurnCommit]] = dataclasses.field(default_factory=list)
    instance_ids: set[str] = dataclasses.field(default_factory=set)
    child_ids: set[str] = dataclasses.field(default_factory=set)
    messaged_ids: set[str] = dataclasses.field(default_factory=set)

    def admits(self, turn: TurnCommit) -> bool:
        """Whether ``turn`` can join without changing what applying turns in order gives
        (a batch creates its children before it writes its messages)."""
        own = turn.instance_id
        return (
            own not in self.instance_ids
            and own not in self.child_ids
            and not any(
                c.instance_id in self.instance_ids or c.instance_id in self.messaged_ids
                for c in turn.new_instances
            )
            and not any(m.instance_id in self.child_ids for m in turn.new_messages)
        )

    def add(self, index: int, turn: TurnCommit) -> None:
        self.turns.append((index, turn))
        self.instance_ids.add(turn.instance_id)
        self.child_ids.update(c.instance_id for c in turn.new_instances)
        self.messaged_ids.update(m.instance_id for m in turn.new_messages)


def commit_turns_in(
    db: Db, conn: Conn, owner: str, turns: Sequence[TurnCommit], lease_s: float
) -> Callable[[], list[CommitOutcome]]:
    """Fence and write ``turns`` in the caller's transaction (see Store.commit_turns).

    Returns:
        a function that returns the outcomes once the transaction committed.
    """
    ids = {t.instance_id for t in turns} | {c.instance_id for t in turns for c in t.new_instances}
    locked = conn.execute(
        "SELECT instance_id, status, version, lease_owner, lease_expires_at, own_task "
        "FROM instances "
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
    fences = {r[0]: _Fence(r[2], r[3], r[4], r[5]) for r in rows}
    orphans: list[tuple[str, str]] = []  # (instance, own task): see own_task_orphaned
    lease_until = now + timedelta(seconds=lease_s)
    outcomes: list[CommitOutcome] = []
    batches = [_Batch()]
    for index, turn in enumerate(turns):
        fence = fences.get(turn.instance_id)
        rows = [a for a in turn.consumed_activities if a > 0]
        why = refusal(
            turn,
            owner,
            None if fence is None else fence.seen(now),
            tasks_present=present.issuperset(rows),
        )
        if why is not None or fence is None:
            outcomes.append(CommitOutcome(turn.instance_id, ok=False, error=why))
            continue
        present.difference_update(rows)
        if not batches[-1].admits(turn):
            batches.append(_Batch())
        batches[-1].add(index, turn)
        fence.version += 1
        fence.owner, fence.expires = (owner, lease_until) if turn.keep_lease else (None, None)
        if own_task_orphaned(turn) and fence.own_task is not None:
            orphans.append((turn.instance_id, fence.own_task))
        sets_own, own_value = own_task_update(turn)
        if sets_own:
            fence.own_task = own_value
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
        _write_batch(db, conn, batch, owner, now, lease_s, statuses)
        for batch in batches
        if batch.turns
    ]
    if orphans:  # nobody would run them: queued, as a release of the lease would
        db.execute(
            conn,
            enqueue_own_sql(
                "(SELECT * FROM unnest(%(iids)s::text[], %(owns)s::text[]) "
                "  AS x(instance_id, own_task))"
            ),
            {"iids": [o[0] for o in orphans], "owns": [o[1] for o in orphans]},
        )
        db.activities = True

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
    lease_s: float,
    statuses: dict[str, str],
) -> Callable[[], dict[int, list[int]]]:
    """Write a batch's accepted turns (one statement per kind of row); return a reader of
    the ids of the tasks enqueued leased, by turn."""
    turns = [t for _, t in batch.turns]
    lease_until = now + timedelta(seconds=lease_s)
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
    # Children first: the turns' messages to them (a termination of the children of a
    # parent ending in the turn that creates them) reach them, and are not dropped.
    children = [c for t in turns for c in t.new_instances]
    refusals: list[NewMessage] = []
    if children:
        refused, conflicts = create_instances_in(db, conn, children, statuses, now)
        refused += conflicts()  # the parents hear of these in this same transaction
        refusals = [child_refused(c, why, to_epoch(now)) for c, why in refused]
    insert_messages(db, conn, [*(m for t in turns for m in t.new_messages), *refusals])
    for turn in turns:  # children of later batches see these turns' outcome
        statuses[turn.instance_id] = turn.status.name
    own_updates = [own_task_update(t) for t in turns]  # (sets the column, its value)
    conn.execute(
        "UPDATE instances i SET status = u.status, execution_id = u.eid, "
        "input = COALESCE(u.input, i.input), output = u.output, failure = u.failure, "
        "custom_status = u.custom_status, updated_at = %s, history_len = u.history_len, "
        "version = i.version + 1, lease_owner = u.owner, "
        # a kept lease with more than half its time left stays as it is (as on the other
        # paths: see commit_statements)
        "lease_expires_at = CASE WHEN u.owner IS NOT NULL AND i.lease_expires_at > %s "
        "  THEN i.lease_expires_at ELSE u.expires END, "
        "own_task = CASE WHEN u.so THEN u.own ELSE i.own_task END "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
        "  %s::text[], %s::integer[], %s::text[], %s::timestamptz[], %s::boolean[], "
        "  %s::text[]) AS u(iid, status, eid, input, output, failure, custom_status, "
        "  history_len, owner, expires, so, own) "
        "WHERE i.instance_id = u.iid",
        (
            now,
            now + timedelta(seconds=lease_s / 2),
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
        "task_execution_id, visible_at, lease_owner, lease_expires_at, propagated, app_id, "
        "heartbeat_s, deliveries, timeout_s) "
        "SELECT iid, eid, task_id, name, input, teid, %s, owner, expires, prop, app, hb, "
        "  CASE WHEN owner IS NULL THEN 0 ELSE 1 END, tmo "
        "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[], %s::text[], "
        "  %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[], "
        "  %s::double precision[], %s::double precision[]) WITH ORDINALITY "
        "  AS a(iid, eid, task_id, name, input, teid, owner, expires, prop, app, hb, tmo, ord) "
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
            [encode_propagation(t.propagated) for _, t in tasks],
            [t.app_id for _, t in tasks],
            [t.heartbeat_s for _, t in tasks],
            [t.timeout_s for _, t in tasks],
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
