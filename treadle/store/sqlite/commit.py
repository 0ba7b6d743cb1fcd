"""Committing turns in SqliteStore: every turn, of any shape, the same way.

A group of turns is one write transaction; each turn in it is fenced by one ``UPDATE`` of its
instance's row (``WHERE lease_owner = owner AND lease_expires_at >= now AND version =
expected``) that also writes the instance's new state, then its other rows are written.
SQLite has one writer at a time and no round trips, so one path serves every shape of turn.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

from treadle.core.history import OrchestrationStatus
from treadle.errors import WorkflowAlreadyExistsError
from treadle.store.base import (
    CommitOutcome,
    NewMessage,
    TurnCommit,
    check_creating,
    gives_activity_work,
    gives_orchestration_work,
)
from treadle.store.fencing import Fence, refused_because
from treadle.store.own_tasks import (
    next_own_task_id,
    own_task_from_json,
    own_task_orphaned,
    own_task_update,
)
from treadle.store.serde import child_refused, encode_event, encode_failure, to_epoch
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.rows import (
    create_instance,
    insert_activity,
    insert_instance,
    insert_message,
)

__all__ = ["commit_turns"]


@functools.lru_cache(maxsize=8)
@functools.cache
def _turn_sql(sets_own: bool, lease: str, same_status: bool = False) -> str:
    """A turn's fenced instance update: with the own task column or not; ``lease`` "set"
    assigns the lease columns, "keep" leaves them (its fence asks for half a lease left).
    ``same_status`` (with "keep"): the status is not assigned, and the fence asks for it
    (its first parameter) instead, since assigning it rewrites the entries of the indexes on
    it even when unchanged (instances_status, instances_name_status: pages a step).
    Assigned, the status comes with finished_at (the time, if it is a finished one; else
    NULL): only the turn that ends an instance changes that indexed column."""
    sql = (
        "UPDATE instances SET execution_id = ?, input = COALESCE(?, input), "
        "output = ?, failure = ?, custom_status = ?, updated_at = ?, history_len = ?, "
        "version = version + 1"
    )
    if not same_status:
        sql = sql.replace("SET ", "SET status = ?, finished_at = ?, ", 1)
    if sets_own:
        sql += ", own_task = ?"
    if lease == "set":
        sql += ", lease_owner = ?, lease_expires_at = ?"
    sql += " WHERE instance_id = ? AND lease_owner = ? AND lease_expires_at >= ? AND version = ?"
    return (sql + " AND status = ?") if same_status else sql


def commit_turns(
    db: Connections, owner: str, turns: Sequence[TurnCommit], now: float, lease_s: float
) -> list[CommitOutcome]:
    """Commit ``turns`` in one transaction (see :meth:`~treadle.store.base.Store.commit_turns`);
    a turn whose fence fails is refused alone. Turns that create their instance may be among
    others (see :class:`~treadle.store.capabilities.StartGrouping`)."""
    if not turns:
        return []
    check_creating(turns, grouped=True)
    # (the history rows are encoded before the write lock is taken: the lock, which every
    # writer of the file waits for, a client's start in another process too, is then held
    # for the statements alone)
    histories = [_history_rows(turn) for turn in turns]
    with db.errors(), db.write(notify=False) as conn:
        return [
            _commit_turn(db, conn, owner, turn, now, lease_s, history)
            for turn, history in zip(turns, histories, strict=True)
        ]


def _commit_turn(
    db: Connections,
    conn: sqlite3.Connection,
    owner: str,
    turn: TurnCommit,
    now: float,
    lease_s: float,
    history: list[tuple[str, int, str]],
) -> CommitOutcome:
    iid = turn.instance_id
    created = turn.create
    if created is not None and not insert_instance(
        conn, created, now, lease=(owner, now + lease_s)
    ):  # (leased to the owner, for the turn's update below to find)
        return CommitOutcome(iid, ok=False, error=_refusal(conn, owner, turn, now))
    consumed = turn.consumed_activities
    task_rows = [a for a in consumed if a > 0] if consumed else []  # negative: the own task
    # A result is recorded by whoever deletes its task row; one whose row is gone went to
    # the inbox from another execution: recording it too would repeat it.
    tasks_present = _tasks_exist(conn, task_rows) if task_rows else True
    orphan = _own_task(conn, iid) if tasks_present and own_task_orphaned(turn) else None
    if not (tasks_present and _update_instance(conn, owner, turn, now, lease_s)):
        error = _refusal(conn, owner, turn, now, tasks_present=tasks_present)
        return CommitOutcome(iid, ok=False, error=error)
    _write_rows(conn, turn, task_rows, history)
    if orphan is not None:  # nobody would run it (see own_task_orphaned): queue it
        insert_activity(conn, own_task_from_json(iid, orphan), None, now, 0.0, delivered=True)
    leased_ids: list[int] = []
    for task in turn.new_activities:
        if task.own:
            leased_ids.append(next_own_task_id())
            continue
        row_id = insert_activity(conn, task, owner, now, lease_s)
        if task.leased:
            leased_ids.append(row_id)
    # Children first: the turn's messages to them (a termination of the children of a
    # parent ending in the turn that creates them) reach them, and are not dropped.
    refusals: list[NewMessage] = []
    for child in turn.new_instances:
        try:
            create_instance(conn, child, now)
        except WorkflowAlreadyExistsError as exc:
            refusals.append(child_refused(child, str(exc), now))
    for message in turn.new_messages:
        visible = to_epoch(message.visible_at) if message.visible_at else now
        if message.instance_id == iid or _instance_exists(conn, message.instance_id):
            insert_message(conn, message, visible)
    for refusal in refusals:
        insert_message(conn, refusal, now)
    db.gives(  # woken after the commit (see Connections.write)
        orchestrations=gives_orchestration_work(turn),
        activities=gives_activity_work(turn) or orphan is not None,
        status=(  # its status may have changed: wake clients
            created is None  # (no client waits on an instance that did not exist)
            and (
                turn.status is not OrchestrationStatus.RUNNING
                or turn.history_start == 0
                or turn.reset_history
                or bool(turn.consumed_messages)
            )
        ),
    )
    return CommitOutcome(
        iid, ok=True, version=turn.expected_version + 1, new_activity_ids=leased_ids
    )


def _update_instance(
    conn: sqlite3.Connection, owner: str, turn: TurnCommit, now: float, lease_s: float
) -> bool:
    """The fence and the instance's new state in one statement: nothing is written unless
    ``owner`` holds an unexpired lease on the version the turn was computed from. Returns
    whether it was written."""
    iid = turn.instance_id
    keep = turn.keep_lease
    history_len = (0 if turn.reset_history else turn.history_start) + len(turn.new_events)
    status = (turn.status.name, now if turn.status.is_terminal else None)
    values: tuple[object, ...] = (
        turn.execution_id,
        turn.input,
        turn.output,
        None if turn.failure is None else encode_failure(turn.failure),
        turn.custom_status,
        now,
        history_len,
    )
    sets_own, own_value = own_task_update(turn)
    if sets_own:
        values += (own_value,)
    fence = (iid, owner, now, turn.expected_version)
    cur = None
    if keep and turn.history_start and not turn.reset_history:
        # A lease with more than half its time left is kept as it is: assigning the
        # lease columns rewrites their index even when unchanged (one more page a step).
        # A turn that goes on from an earlier one keeps its status, most often: the fence
        # asks for it unchanged, and it is not assigned (else the "set" update below).
        cur = conn.execute(
            _turn_sql(sets_own, "keep", same_status=True),
            (*values, iid, owner, now + lease_s / 2, fence[3], status[0]),
        )
    elif keep:
        cur = conn.execute(
            _turn_sql(sets_own, "keep"),
            (*status, *values, iid, owner, now + lease_s / 2, fence[3]),
        )
    if cur is None or cur.rowcount == 0:
        lease = (owner, now + lease_s) if keep else (None, None)
        cur = conn.execute(_turn_sql(sets_own, "set"), (*status, *values, *lease, *fence))
    return cur.rowcount == 1


def _history_rows(turn: TurnCommit) -> list[tuple[str, int, str]]:
    """The history rows a turn inserts, if accepted: (instance id, seq, event as JSON)."""
    iid, start = turn.instance_id, turn.history_start
    return [(iid, start + i, encode_event(e)) for i, e in enumerate(turn.new_events)]


def _write_rows(
    conn: sqlite3.Connection,
    turn: TurnCommit,
    task_rows: Sequence[int],
    history: list[tuple[str, int, str]],
) -> None:
    """An accepted turn's history (its rows, encoded) and the inbox and task rows it
    consumed or cancelled."""
    iid = turn.instance_id
    if turn.reset_history:
        conn.execute("DELETE FROM history WHERE instance_id = ?", (iid,))
    if history:
        conn.executemany("INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)", history)
    if turn.consumed_messages:
        conn.executemany("DELETE FROM inbox WHERE id = ?", [(m,) for m in turn.consumed_messages])
    if task_rows:  # (the own task lives in the instance's row, updated with the fence)
        conn.executemany("DELETE FROM activity_tasks WHERE id = ?", [(a,) for a in task_rows])
    if turn.cancel_activities:
        conn.execute("DELETE FROM activity_tasks WHERE instance_id = ?", (iid,))


def _refusal(
    conn: sqlite3.Connection,
    owner: str,
    turn: TurnCommit,
    now: float,
    *,
    tasks_present: bool = True,
) -> str:
    """Why a turn was refused, for the outcome's error (see :mod:`treadle.store.fencing`)."""
    row = conn.execute(
        "SELECT version, lease_owner, lease_expires_at FROM instances WHERE instance_id = ?",
        (turn.instance_id,),
    ).fetchone()
    fence = None
    if row is not None:
        version, lease_owner, lease_expires_at = row
        fence = Fence(version, lease_owner, lease_live=(lease_expires_at or 0) >= now)
    return refused_because(turn, owner, fence, tasks_present=tasks_present)


def _tasks_exist(conn: sqlite3.Connection, task_ids: Sequence[int]) -> bool:
    """Whether every one of these activity task rows still exists."""
    wanted = set(task_ids)
    if not wanted:
        return True
    marks = ", ".join("?" * len(wanted))
    row = conn.execute(
        f"SELECT COUNT(*) FROM activity_tasks WHERE id IN ({marks})", sorted(wanted)
    ).fetchone()
    return int(row[0]) == len(wanted)


def _own_task(conn: sqlite3.Connection, instance_id: str) -> str | None:
    """The own task the instance's row holds (JSON text), if any."""
    row = conn.execute(
        "SELECT own_task FROM instances WHERE instance_id = ?", (instance_id,)
    ).fetchone()
    return None if row is None else row[0]


def _instance_exists(conn: sqlite3.Connection, instance_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        is not None
    )
