"""Store contract: an instance's own task, kept in its row under the instance's lease
(see OWN_TASK_RULES in treadle.store.base)."""

from __future__ import annotations

from conftest import FakeClock

from treadle.core.history import EventRaised, OrchestratorStarted, TaskCompleted
from treadle.store.base import (
    ActivityResult,
    ActivityWorkItem,
    NewActivity,
    NewMessage,
    OrchestrationWorkItem,
    Store,
)

from .helpers import claim_one, kinds, start, started_events, turn

OWNER = "w1"


def _own(task_id: int = 0, name: str = "step") -> NewActivity:
    return NewActivity(
        "o-1", "o-1-e1", task_id, name, '"in"', f"te-{task_id}", leased=True, own=True
    )


def _start_with_own(store: Store) -> tuple[OrchestrationWorkItem, ActivityWorkItem, int]:
    """Start "o-1" and commit a turn whose one activity is the instance's own task."""
    start(store, "o-1")
    item = claim_one(store, OWNER)
    task = _own()
    (outcome,) = store.commit_turns(
        OWNER, [turn(item, started_events(item), new_activities=[task], keep_lease=True)]
    )
    assert outcome.ok, outcome
    (task_id,) = outcome.new_activity_ids
    work = ActivityWorkItem(
        task_id, "o-1", "o-1-e1", task.task_id, task.name, task.input, task.task_execution_id
    )
    return item, work, outcome.version


def _completed(work: ActivityWorkItem) -> TaskCompleted:
    return TaskCompleted(
        task_scheduled_id=work.task_id, result='"out"', task_execution_id=work.task_execution_id
    )


def _send_event(store: Store) -> None:
    store.send_message(NewMessage("o-1", EventRaised(name="poke")))


def test_an_own_task_is_not_queued_and_has_a_negative_id(store: Store) -> None:
    _, work, _ = _start_with_own(store)
    assert work.id < 0
    assert store.claim_activities("w2", 10, 30) == []  # nobody else sees it
    assert store.lease_owners() == [OWNER]


def test_a_turn_consumes_the_own_task_and_sets_the_next(store: Store) -> None:
    item, work, version = _start_with_own(store)
    record = item.instance
    following = _own(1, "step2")
    (outcome,) = store.commit_turns(
        OWNER,
        [
            turn(
                item,
                [OrchestratorStarted(), _completed(work)],
                expected_version=version,
                history_start=record.history_len + 2,  # the first turn's two events
                consume=False,
                consumed_activities=[work.id],
                new_activities=[following],
                keep_lease=True,
            )
        ],
    )
    assert outcome.ok, outcome
    assert len(outcome.new_activity_ids) == 1 and outcome.new_activity_ids[0] < 0
    assert outcome.new_activity_ids[0] != work.id
    assert store.claim_activities("w2", 10, 30) == []
    assert kinds(store.get_history("o-1"))[-2:] == ["OrchestratorStarted", "TaskCompleted"]


def test_complete_activities_records_an_own_task_once(store: Store) -> None:
    _, work, _ = _start_with_own(store)
    result = ActivityResult(work, _completed(work))
    store.complete_activities(OWNER, [result])
    store.complete_activities(OWNER, [result])  # cleared already: dropped
    item = claim_one(store, OWNER)
    assert [type(m.event).__name__ for m in item.messages] == ["TaskCompleted"]


def test_a_takeover_queues_the_own_task_and_fences_the_old_holder(
    store: Store, clock: FakeClock
) -> None:
    _, work, version = _start_with_own(store)
    clock.advance(31)  # the holder's lease lapses
    _send_event(store)
    taken = claim_one(store, "w2")
    assert taken.instance.version == version + 1  # moved on: the old holder's turn is refused
    (queued,) = store.claim_activities("w2", 10, 30)
    assert (queued.id > 0, queued.name, queued.input) == (True, "step", '"in"')
    assert (queued.task_id, queued.task_execution_id) == (work.task_id, work.task_execution_id)
    # the old holder's late result is dropped: the queued task records it
    store.complete_activities(OWNER, [ActivityResult(work, _completed(work))])
    again = store.claim_orchestrations("w2", 10, 30)
    assert [type(m.event).__name__ for i in again for m in i.messages] == ["EventRaised"]


def test_the_holder_reclaiming_its_instance_keeps_its_own_task(store: Store) -> None:
    _, _, version = _start_with_own(store)
    _send_event(store)  # an event for an instance the worker holds
    item = claim_one(store, OWNER)
    assert item.instance.version == version
    assert store.claim_activities("w2", 10, 30) == []


def test_a_lapsed_lease_lets_any_worker_claim_the_own_task(store: Store, clock: FakeClock) -> None:
    _, work, _ = _start_with_own(store)
    assert store.claim_activities("w2", 10, 30) == []
    clock.advance(31)
    (queued,) = store.claim_activities("w2", 10, 30)
    assert (queued.name, queued.task_execution_id) == ("step", work.task_execution_id)
    store.complete_activities("w2", [ActivityResult(queued, _completed(queued))])
    item = claim_one(store, "w3")
    assert [type(m.event).__name__ for m in item.messages] == ["TaskCompleted"]


def test_releasing_the_lease_queues_the_own_task(store: Store) -> None:
    _, work, _ = _start_with_own(store)
    store.release_leases(OWNER, ["o-1"])
    (queued,) = store.claim_activities("w2", 10, 30)
    assert queued.task_execution_id == work.task_execution_id
    assert store.lease_owners() == ["w2"]


def test_releasing_all_leases_queues_own_tasks(store: Store) -> None:
    _start_with_own(store)
    store.release_leases(OWNER)
    assert len(store.claim_activities("w2", 10, 30)) == 1


def test_a_cancelling_turn_clears_the_own_task(store: Store, clock: FakeClock) -> None:
    _start_with_own(store)
    _send_event(store)
    item = claim_one(store, OWNER)
    (outcome,) = store.commit_turns(
        OWNER, [turn(item, started_events(item), cancel_activities=True)]
    )
    assert outcome.ok
    clock.advance(31)
    assert store.claim_activities("w2", 10, 30) == []
