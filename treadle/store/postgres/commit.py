"""Committing turns in PostgresStore: the one entry point every shape of turn goes through.

:func:`commit_turns` commits a group of turns by one of three paths (:class:`CommitPath`),
the fastest that can commit them (:func:`commit_paths`):

- **single turn**: one turn that writes only its own instance's row and history, consumes
  inbox messages and may cancel its tasks or keep one own task (a chain's step, a first or
  last turn, an event's turn): one statement in autocommit mode with scalar parameters
  (:func:`~.commit_statements.single_commit`), one round trip;
- **simple group**: turns of distinct instances that create no instances, keep their history
  and send no message to another instance of the group (:func:`is_simple`): one statement
  with the turns as a JSON document (:func:`~.commit_statements.simple_commit`);
- **general group**: any other group: a pipelined transaction that locks the rows, checks
  the fences in Python and writes each kind of row with one statement
  (:mod:`.commit_transaction`); two or three round trips. It cannot create an instance
  with its first turn (:attr:`~treadle.store.base.TurnCommit.create`): such a turn is
  alone and simple.

Every path leaves the same rows for the same turns, and refuses the same turns with the same
reasons (:mod:`treadle.store.fencing`); the one-statement paths read why a turn was refused
afterwards, only when one was. A path is an internal detail: ``path`` forces one, for the
contract tests that check this.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import pq

from treadle.core.history import OrchestrationStatus
from treadle.store.base import (
    CommitOutcome,
    InstanceRecord,
    TurnCommit,
    check_creating,
)
from treadle.store.fencing import Fence, refused_because
from treadle.store.own_tasks import next_own_task_id
from treadle.store.postgres.commit_statements import (
    commit_rows,
    committed_record,
    fits_single,
    simple_commit,
    single_commit,
)
from treadle.store.postgres.commit_transaction import commit_turns_in
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.listener import ChangeListener
from treadle.store.postgres.sql import Conn, Db

__all__ = ["CommitPath", "choose_path", "commit_paths", "commit_turns", "is_simple"]


class CommitPath(enum.Enum):
    """How PostgresStore commits a group of turns (see the module)."""

    SINGLE_TURN = "single turn"
    SIMPLE_GROUP = "simple group"
    GENERAL_GROUP = "general group"


def commit_paths(turns: Sequence[TurnCommit]) -> list[CommitPath]:
    """The paths that can commit ``turns`` (a valid group: see
    :func:`~treadle.store.base.check_creating`), fastest first: :func:`commit_turns` takes
    the first."""
    paths: list[CommitPath] = []
    if is_simple(turns):
        if len(turns) == 1 and fits_single(turns[0]):
            paths.append(CommitPath.SINGLE_TURN)
        paths.append(CommitPath.SIMPLE_GROUP)
    if all(t.create is None for t in turns):
        paths.append(CommitPath.GENERAL_GROUP)
    return paths


def choose_path(turns: Sequence[TurnCommit]) -> CommitPath:
    """The path :func:`commit_turns` takes by default: ``commit_paths(turns)[0]``, without
    building the list (it runs for every commit)."""
    if is_simple(turns):
        if len(turns) == 1 and fits_single(turns[0]):
            return CommitPath.SINGLE_TURN
        return CommitPath.SIMPLE_GROUP
    return CommitPath.GENERAL_GROUP


def commit_turns(
    connections: Connections,
    listener: ChangeListener,
    owner: str,
    turns: Sequence[TurnCommit],
    lease_s: float,
    *,
    path: CommitPath | None = None,
) -> list[CommitOutcome]:
    """Commit ``turns`` (see :meth:`~treadle.store.base.Store.commit_turns`); a turn whose
    fence fails is refused alone. The store's clients of this process hear of the statuses
    it changed at once (see :class:`~.listener.ChangeListener`).

    Args:
        path: commit by this path (tests); by default the fastest that can.

    Raises:
        ValueError: the group is not one a store commits (see
            :func:`~treadle.store.base.check_creating`), or ``path`` cannot commit it.
    """
    if not turns:
        return []
    check_creating(turns)
    if path is None:
        path = choose_path(turns)
    elif path not in (paths := commit_paths(turns)):
        raise ValueError(
            f"the {path.value} path cannot commit these turns; "
            f"these can: {', '.join(p.value for p in paths)} (see treadle.store.postgres.commit)"
        )
    record: InstanceRecord | None = None
    if path is CommitPath.GENERAL_GROUP:
        outcomes = connections.write(
            lambda db, conn: commit_turns_in(db, conn, owner, turns, lease_s)
        )
    else:
        single = path is CommitPath.SINGLE_TURN
        text, params = (
            single_commit(turns[0], owner, lease_s)
            if single
            else simple_commit(turns, owner, lease_s)
        )
        ending = single and turns[0].status.is_terminal
        with listener.committing(turns[0].instance_id) if ending else contextlib.nullcontext():
            rows, record = connections.raw_statement(text, params, _commit_result)
            if record is not None:  # an ending turn's row: a client here may wait for it
                listener.echo_record(record)
        outcomes = outcomes_from_rows(
            turns,
            rows,
            lambda refused: connections.run(
                lambda db, conn: refusal_reasons(db, conn, refused, owner)
            ),
        )
    if record is None:
        for t, o in zip(turns, outcomes, strict=True):  # (a plain loop: every commit)
            if o.ok and t.create is None and t.status is not OrchestrationStatus.RUNNING:
                listener.echo_status()  # a client of this process may wait for it
                break
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
        count = 0
        own = False
        for task in turn.new_activities:  # (a plain loop: this is every turn)
            if task.own:
                own = True
            elif task.leased:
                count += 1
        ids = leased[taken : taken + count]
        taken += count
        if own:  # the first, and leased
            ids.insert(0, next_own_task_id())
        outcomes.append(
            CommitOutcome(turn.instance_id, ok=True, version=version, new_activity_ids=ids)
        )
    return outcomes


def refusal_reasons(db: Db, conn: Conn, turns: Sequence[TurnCommit], owner: str) -> list[str]:
    """Why each of ``turns`` was refused, read after the fact (a refused turn wrote nothing;
    see :func:`~treadle.store.fencing.refused_because`)."""
    if not turns:
        return []
    fences = {
        r[0]: Fence(version=r[3], lease_owner=r[1], lease_live=bool(r[2]))
        for r in db.execute(
            conn,
            "SELECT instance_id, lease_owner, lease_expires_at >= {now}, version "
            "FROM instances WHERE instance_id = ANY(%(iids)s::text[])",
            {"iids": [t.instance_id for t in turns]},
        ).fetchall()
    }
    wanted = [a for t in turns for a in t.consumed_activities if a > 0]
    present = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM activity_tasks WHERE id = ANY(%s::bigint[])", (wanted,)
        ).fetchall()
    }
    return [
        refused_because(
            turn,
            owner,
            fences.get(turn.instance_id),
            tasks_present=present.issuperset(a for a in turn.consumed_activities if a > 0),
        )
        for turn in turns
    ]
