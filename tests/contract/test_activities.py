"""Store contract: activity tasks, from enqueue through claim to a delivered result."""

from __future__ import annotations

import pytest
from conftest import FakeClock

from treadle.core.history import EventRaised, OrchestratorStarted, TaskCompleted, TaskFailed
from treadle.errors import FailureDetails
from treadle.store.base import (
    ActivityResult,
    ActivityWorkItem,
    NewActivity,
    NewMessage,
    Store,
    TurnCommit,
)

from .helpers import COMPLETED, RUNNING, claim_one, kinds, start, started_events, turn


def _schedule(store: Store, count: int = 2, *, leased: bool = False) -> list[int]:
    """Start "o-1" and commit a turn scheduling ``count`` activities; return leased row ids."""
    start(store, "o-1")
    item = claim_one(store)
    tasks = [
        NewActivity("o-1", "o-1-e1", n, f"act{n}", f'"in{n}"', f"te-{n}", leased=leased)
        for n in range(count)
    ]
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_activities=tasks)])
    assert outcome.ok
    return outcome.new_activity_ids


def _done(task: ActivityWorkItem, result: str = '"ok"') -> ActivityResult:
    event = TaskCompleted(
        task_scheduled_id=task.task_id, result=result, task_execution_id=task.task_execution_id
    )
    return ActivityResult(task, event)


def test_claim_activities_returns_enqueued_tasks_in_order(store: Store) -> None:
    assert _schedule(store, 3) == []
    tasks = store.claim_activities("w1", 2, 30)
    assert [(t.task_id, t.name, t.input, t.task_execution_id) for t in tasks] == [
        (0, "act0", '"in0"', "te-0"),
        (1, "act1", '"in1"', "te-1"),
    ]
    assert all((t.instance_id, t.execution_id) == ("o-1", "o-1-e1") for t in tasks)
    assert tasks[0].id < tasks[1].id
    assert [t.task_id for t in store.claim_activities("w2", 10, 30)] == [2]
    assert store.claim_activities("w3", 10, 30) == []
    assert store.claim_activities("w3", 0, 30) == []
    assert store.lease_owners() == ["w1", "w2"]


def test_a_claimed_activity_is_reclaimable_only_after_its_lease(
    store: Store, clock: FakeClock
) -> None:
    _schedule(store, 1)
    (task,) = store.claim_activities("w1", 10, 5)
    clock.advance(5)
    assert store.claim_activities("w2", 10, 5) == []
    clock.advance(0.01)
    (again,) = store.claim_activities("w2", 10, 5)
    assert again.id == task.id


def test_leased_activities_belong_to_the_committing_owner(store: Store, clock: FakeClock) -> None:
    ids = _schedule(store, 2, leased=True)
    assert len(ids) == 2 and ids[0] < ids[1]
    assert store.claim_activities("w2", 10, 30) == []
    assert store.lease_owners() == ["w1"]
    clock.advance(31)  # commit_turns' default lease
    assert sorted(t.id for t in store.claim_activities("w2", 10, 30)) == ids


def test_leased_and_queued_activities_mix(store: Store) -> None:
    start(store, "o-1")
    item = claim_one(store)
    tasks = [
        NewActivity("o-1", "o-1-e1", 0, "mine", None, "t0", leased=True),
        NewActivity("o-1", "o-1-e1", 1, "anyone", None, "t1"),
        NewActivity("o-1", "o-1-e1", 2, "mine", None, "t2", leased=True),
    ]
    (outcome,) = store.commit_turns("w1", [turn(item, new_activities=tasks)])
    (free,) = store.claim_activities("w2", 10, 30)
    assert free.name == "anyone"
    assert len(outcome.new_activity_ids) == 2 and free.id not in outcome.new_activity_ids
    assert outcome.new_activity_ids[0] < free.id < outcome.new_activity_ids[1]


def test_a_result_is_delivered_once(store: Store) -> None:
    _schedule(store, 1)
    (task,) = store.claim_activities("w1", 10, 30)
    store.complete_activities("w1", [_done(task), _done(task, '"dup"')])
    store.complete_activities("w2", [_done(task, '"late"')])
    assert store.claim_activities("w3", 10, 30) == []
    item = claim_one(store)
    (message,) = item.messages
    assert isinstance(message.event, TaskCompleted)
    assert (message.event.result, message.execution_id) == ('"ok"', "o-1-e1")


def test_results_of_several_instances_in_one_call(store: Store) -> None:
    _schedule(store, 2)
    tasks = store.claim_activities("w1", 10, 30)
    failure = FailureDetails("no", "ValueError")
    store.complete_activities(
        "w1",
        [
            _done(tasks[1], '"second"'),
            ActivityResult(tasks[0], TaskFailed(task_scheduled_id=0, failure=failure)),
        ],
    )
    item = claim_one(store)
    assert kinds([m.event for m in item.messages]) == ["TaskCompleted", "TaskFailed"]
    store.complete_activities("w1", [])


def test_consumed_and_cancelled_activities_are_gone(store: Store) -> None:
    _schedule(store, 3)
    first, *_ = store.claim_activities("w1", 1, 30)
    store.complete_activities("w1", [_done(first)])
    item = claim_one(store)
    store.commit_turns("w1", [turn(item, status=COMPLETED, cancel_activities=True)])
    assert store.claim_activities("w2", 10, 30) == []


def test_consumed_activities_are_deleted_by_the_commit(store: Store, clock: FakeClock) -> None:
    ids = _schedule(store, 2, leased=True)
    store.send_message(NewMessage("o-1", EventRaised(name="wake")))
    item = claim_one(store)
    result = TaskCompleted(task_scheduled_id=0, result='"ran here"', task_execution_id="te-0")
    (outcome,) = store.commit_turns(
        "w1", [turn(item, [OrchestratorStarted(), result], consumed_activities=ids[:1])]
    )
    assert outcome.ok
    clock.advance(31)
    assert [t.id for t in store.claim_activities("w2", 10, 30)] == ids[1:]


@pytest.mark.parametrize("count", [1, 5])
def test_renewed_activity_leases_hold(store: Store, clock: FakeClock, count: int) -> None:
    _schedule(store, count)
    tasks = store.claim_activities("w1", 10, 10)
    clock.advance(8)
    assert store.renew_leases("w1", [], [t.id for t in tasks], 10) == []
    clock.advance(8)
    assert store.claim_activities("w2", 10, 10) == []
    clock.advance(3)
    assert len(store.claim_activities("w2", 10, 10)) == count


def test_a_turn_with_a_result_already_delivered_is_refused(store: Store, clock: FakeClock) -> None:
    # w1 holds the instance and runs its activity, but the activity's lease ran out (only the
    # instance's was renewed): w2 ran it again and delivered its result first, through the
    # inbox. w1's turn carrying its own result must not record a second TaskCompleted.
    start(store, "o-1")
    item = claim_one(store, "w1", lease_s=10)
    task = NewActivity("o-1", "o-1-e1", 0, "act", None, "te-0", leased=True)
    (first,) = store.commit_turns(
        "w1",
        [turn(item, started_events(item), new_activities=[task], keep_lease=True)],
        lease_s=10,
    )
    (row_id,) = first.new_activity_ids
    clock.advance(8)
    assert store.renew_leases("w1", ["o-1"], [], 10) == []
    clock.advance(3)
    (again,) = store.claim_activities("w2", 10, 10)
    store.complete_activities("w2", [_done(again, '"w2"')])
    record = store.get_instance("o-1")
    assert record is not None
    mine = TaskCompleted(task_scheduled_id=0, result='"w1"', task_execution_id="te-0")
    (late,) = store.commit_turns(
        "w1",
        [
            TurnCommit(
                instance_id="o-1",
                expected_version=record.version,
                new_events=[OrchestratorStarted(), mine],
                history_start=record.history_len,
                status=RUNNING,
                execution_id="o-1-e1",
                consumed_activities=[row_id],
                keep_lease=True,
            )
        ],
        lease_s=10,
    )
    assert not late.ok and "already delivered" in (late.error or "")
    assert "TaskCompleted" not in kinds(store.get_history("o-1"))
    (message,) = claim_one(store, "w1").messages  # the result arrives once, from w2
    assert isinstance(message.event, TaskCompleted) and message.event.result == '"w2"'


def test_a_result_consumed_twice_in_one_group_commit_is_recorded_once(store: Store) -> None:
    ids = _schedule(store, 1, leased=True)
    for _ in range(2):
        store.send_message(NewMessage("o-1", EventRaised(name="wake")))
    item = claim_one(store)
    result = TaskCompleted(task_scheduled_id=0, result='"ok"', task_execution_id="te-0")
    first = turn(item, [OrchestratorStarted(), result], consumed_activities=ids, keep_lease=True)
    second = TurnCommit(
        instance_id="o-1",
        expected_version=item.instance.version + 1,
        new_events=[OrchestratorStarted(), result],
        history_start=item.instance.history_len + 2,
        status=RUNNING,
        execution_id="o-1-e1",
        consumed_activities=ids,
    )
    outcomes = store.commit_turns("w1", [first, second])
    assert [o.ok for o in outcomes] == [True, False]
    assert kinds(store.get_history("o-1")).count("TaskCompleted") == 1
