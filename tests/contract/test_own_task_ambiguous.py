"""Store contract: an own task whose commit the worker did not see succeed is still run.

A worker commits a turn that keeps an activity as the instance's own task (OWN_TASK_RULES in
treadle.store.base), but sees an error (the commit succeeded; the answer was lost) and drops
the turn. It claims the instance again (it still holds the lease, so the own task stays in
the row) and, not knowing of the task, commits a turn that gives the lease up, or that keeps
another own task. Either turn must queue the task the row held, or nobody would ever run it
and the instance would stay RUNNING for ever. Every commit path of every store is checked.
"""

from __future__ import annotations

import pytest
from conftest import FakeClock

from treadle.core.history import (
    EventRaised,
    ExecutionCompleted,
    TaskScheduled,
)
from treadle.store.base import (
    CommitOutcome,
    NewActivity,
    NewMessage,
    OrchestrationWorkItem,
    Store,
    TurnCommit,
)

from .helpers import COMPLETED, claim_one, start, started_events, turn

OWNER = "w1"
PATHS = [None, "single turn", "simple group", "general group"]


def _own(task_id: int, name: str) -> NewActivity:
    return NewActivity(
        "o-1", "o-1-e1", task_id, name, f'"{name}"', f"te-{task_id}", leased=True, own=True
    )


def _commit(store: Store, path: str | None, new_turn: TurnCommit) -> CommitOutcome:
    """Commit ``new_turn`` by ``path`` (a PostgresStore's; None: as the store chooses)."""
    if path is None:
        (outcome,) = store.commit_turns(OWNER, [new_turn])
        return outcome
    from treadle.store.postgres import PostgresStore
    from treadle.store.postgres.commit import CommitPath, commit_paths

    if not isinstance(store, PostgresStore):
        pytest.skip("only PostgresStore has more than one commit path")
    chosen = CommitPath(path)
    if chosen not in commit_paths([new_turn]):
        pytest.skip(f"the {path} path cannot commit this turn")
    (outcome,) = store.commit_turns(OWNER, [new_turn], path=chosen)
    return outcome


def _lost_answer(store: Store) -> None:
    """Start "o-1" and commit its first turn, which keeps activity "a" as its own task; the
    worker then drops the turn as if the commit had failed."""
    start(store, "o-1")
    item = claim_one(store, OWNER)
    task = _own(0, "a")
    scheduled = TaskScheduled(name="a", input='"a"', task_execution_id="te-0")
    (outcome,) = store.commit_turns(
        OWNER,
        [turn(item, [*started_events(item), scheduled], new_activities=[task], keep_lease=True)],
    )
    assert outcome.ok, outcome


def _reclaim(store: Store) -> OrchestrationWorkItem:
    """An event comes; the worker, holding the lease still, claims the instance again."""
    store.send_message(NewMessage("o-1", EventRaised(name="poke")))
    item = claim_one(store, OWNER)
    assert item.instance.instance_id == "o-1"
    return item


def _queued_names(store: Store) -> list[str]:
    return sorted(task.name for task in store.claim_activities("w2", 10, 30))


@pytest.mark.parametrize("path", PATHS)
def test_a_turn_giving_the_lease_up_queues_an_own_task_it_did_not_know(
    store: Store, path: str | None
) -> None:
    _lost_answer(store)
    item = _reclaim(store)
    outcome = _commit(store, path, turn(item, started_events(item), keep_lease=False))
    assert outcome.ok, outcome
    assert store.lease_owners() == []
    assert _queued_names(store) == ["a"], "the own task the row held was not queued"
    assert store.claim_activities("w3", 10, 30) == []  # queued once


@pytest.mark.parametrize("path", PATHS)
def test_a_turn_keeping_another_own_task_queues_the_one_it_did_not_know(
    store: Store, path: str | None
) -> None:
    _lost_answer(store)
    item = _reclaim(store)
    following = _own(1, "b")
    scheduled = TaskScheduled(name="b", input='"b"', task_execution_id="te-1")
    outcome = _commit(
        store,
        path,
        turn(
            item,
            [*started_events(item), scheduled],
            new_activities=[following],
            keep_lease=True,
        ),
    )
    assert outcome.ok, outcome
    assert len(outcome.new_activity_ids) == 1 and outcome.new_activity_ids[0] < 0
    assert _queued_names(store) == ["a"], "the replaced own task was not queued"
    store.release_leases(OWNER)
    assert _queued_names(store) == ["b"]  # the new one is the row's own task


@pytest.mark.parametrize("path", PATHS)
def test_a_turn_ending_the_run_drops_an_own_task_it_did_not_know(
    store: Store, clock: FakeClock, path: str | None
) -> None:
    _lost_answer(store)
    item = _reclaim(store)
    done = ExecutionCompleted(status=COMPLETED, result='"done"')
    outcome = _commit(store, path, turn(item, [*started_events(item), done], status=COMPLETED))
    assert outcome.ok, outcome
    clock.advance(31)
    assert store.claim_activities("w2", 10, 30) == []


def test_a_turn_keeping_the_lease_leaves_the_own_task_to_its_holder(
    store: Store, clock: FakeClock
) -> None:
    _lost_answer(store)
    item = _reclaim(store)
    (outcome,) = store.commit_turns(OWNER, [turn(item, started_events(item), keep_lease=True)])
    assert outcome.ok, outcome
    assert store.claim_activities("w2", 10, 30) == []  # still the holder's
    clock.advance(31)
    assert _queued_names(store) == ["a"]  # its lease lapsed: anyone's
