"""Committing turns in PostgresStore: the one entry point every shape of turn goes through.

:func:`commit_turns` chooses how a group of turns is committed:

- a group of simple turns (:func:`is_simple`: distinct instances, no children, no reset
  history, no message to another instance of the group) is one statement in autocommit mode
  (:mod:`.commit_statements`), one round trip; a single turn that touches only its own
  instance has a statement of its own, cheaper still;
- any other group is a pipelined transaction that locks, fences in Python and writes each
  kind of row with one statement (:mod:`.commit_transaction`).

Either way a refused turn writes nothing; the one-statement paths read why it was refused
afterwards, only when one was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import pq

from treadle.core.history import OrchestrationStatus
from treadle.store.base import (
    ID_TAKEN,
    CommitOutcome,
    InstanceRecord,
    TurnCommit,
    check_creating,
    next_own_task_id,
)
from treadle.store.postgres.commit_statements import (
    commit_rows,
    committed_record,
    simple_commit,
    single_commit,
)
from treadle.store.postgres.commit_transaction import commit_turns_in
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.listener import ChangeListener
from treadle.store.postgres.sql import Conn

__all__ = ["DELIVERED", "commit_turns", "is_simple"]

DELIVERED = "an activity result in the turn was already delivered (its task is gone)"


def commit_turns(
    connections: Connections,
    listener: ChangeListener,
    owner: str,
    turns: Sequence[TurnCommit],
    lease_s: float,
) -> list[CommitOutcome]:
    """Commit ``turns`` (see :meth:`~treadle.store.base.Store.commit_turns`); a turn whose
    fence fails is refused alone. The store's clients of this process hear of the statuses
    it changed at once (see :class:`~.listener.ChangeListener`)."""
    if not turns:
        return []
    check_creating(turns)  # and such a turn is simple
    if is_simple(turns):
        single = single_commit(turns[0], owner, lease_s) if len(turns) == 1 else None
        text, params = single or simple_commit(turns, owner, lease_s)
        ending = single is not None and turns[0].status.is_terminal
        with listener.committing(turns[0].instance_id) if ending else contextlib.nullcontext():
            rows, record = connections.raw_statement(text, params, _commit_result)
            if record is not None:  # an ending turn's row: a client here may wait for it
                listener.echo_record(record)
        outcomes = outcomes_from_rows(
            turns,
            rows,
            lambda refused: connections.run(lambda db, conn: refusal_reasons(conn, refused, owner)),
        )
    else:
        record = None
        outcomes = connections.write(
            lambda db, conn: commit_turns_in(db, conn, owner, turns, lease_s)
        )
    if record is None and any(
        o.ok and t.create is None and t.status is not OrchestrationStatus.RUNNING
        for t, o in zip(turns, outcomes, strict=True)
    ):
        listener.echo_status()  # a client of this process may wait for it
    return outcomes


def _commit_result(result: pq.abc.PGresult) -> tuple[list[Any], InstanceRecord | None]:
    """A commit statement's rows, and the instance's row it returned (see
    :func:`~.commit_statements.committed_record`)."""
    return commit_rows(result), committed_record(result)


def is_simple(turns: Sequence[TurnCommit]) -> bool:
    """Whether one :func:`simple_commit` statement commits ``turns`` as applying them one
    after the other would."""
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


def outcomes_from_rows(
    turns: Sequence[TurnCommit],
    rows: Sequence[Any],
    read_reasons: Callable[[list[TurnCommit]], list[str]],
) -> list[CommitOutcome]:
    """The outcome of each turn from the rows of :func:`simple_commit`'s statement.

    Args:
        read_reasons: says why each of the turns it is given was refused (see
            :func:`refusal_reasons`); called only if some were.
    """
    versions: dict[int, int] = {}
    leased: list[int] = []
    for kind, k, value in rows:
        if kind == "k":
            versions[k] = value
        elif kind == "a":
            leased.append(value)
    leased.sort()  # identity values rise in (turn, task) order
    refused = [k for k in range(len(turns)) if k not in versions]
    reasons: dict[int, str] = {}
    if refused:  # (reading them takes a round trip)
        reasons = dict(zip(refused, read_reasons([turns[k] for k in refused]), strict=True))
    outcomes: list[CommitOutcome] = []
    taken = 0
    for k, turn in enumerate(turns):
        version = versions.get(k)
        if version is None:
            outcomes.append(CommitOutcome(turn.instance_id, ok=False, error=reasons[k]))
            continue
        count = sum(1 for a in turn.new_activities if a.leased and not a.own)
        ids = leased[taken : taken + count]
        taken += count
        if any(a.own for a in turn.new_activities):  # the first, and leased
            ids.insert(0, next_own_task_id())
        outcomes.append(
            CommitOutcome(turn.instance_id, ok=True, version=version, new_activity_ids=ids)
        )
    return outcomes


def refusal_reasons(conn: Conn, turns: Sequence[TurnCommit], owner: str) -> list[str]:
    """Why each of ``turns`` was refused, read after the fact (a refused turn wrote nothing):
    the checks of the fence, in the order the general path makes them."""
    if not turns:
        return []
    fences = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT instance_id, lease_owner, lease_expires_at >= now(), version "
            "FROM instances WHERE instance_id = ANY(%s::text[])",
            ([t.instance_id for t in turns],),
        ).fetchall()
    }
    wanted = [a for t in turns for a in t.consumed_activities if a > 0]
    present = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM activity_tasks WHERE id = ANY(%s::bigint[])", (wanted,)
        ).fetchall()
    }
    reasons: list[str] = []
    for turn in turns:
        fence = fences.get(turn.instance_id)
        if turn.create is not None:
            reasons.append(ID_TAKEN)
        elif fence is None:
            reasons.append("the instance no longer exists")
        elif fence[0] != owner or not fence[1]:
            reasons.append(f"lease held by {fence[0]!r}")
        elif fence[2] == turn.expected_version and not present.issuperset(
            a for a in turn.consumed_activities if a > 0
        ):
            reasons.append(DELIVERED)
        else:
            reasons.append("the instance changed since it was read")
    return reasons
