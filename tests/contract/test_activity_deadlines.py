"""Store contract: start-to-close activity timeouts. A task's deadline starts at the claim
that first takes it (not when it was scheduled), survives its worker's death (a claim after
the lease lapsed keeps it), and an attempt past it is failed by the store: its task is
deleted and a TaskFailed (TimeoutError) goes to the instance, and a late result is dropped."""

from __future__ import annotations

from conftest import FakeClock

from treadle.core.history import TaskCompleted, TaskFailed
from treadle.store.base import ActivityResult, ActivityWorkItem, NewActivity, Store
from treadle.store.deadlines import ActivityDeadlines

from .helpers import claim_one, start, started_events, turn


def _schedule(store: Store, timeout_s: float | None, name: str = "call") -> None:
    start(store, "o-1")
    item = claim_one(store)
    task = NewActivity("o-1", "o-1-e1", 1, name, '"in"', "te-1", timeout_s=timeout_s)
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_activities=[task])])
    assert outcome.ok


def _expire(store: Store) -> int:
    assert isinstance(store, ActivityDeadlines)
    return store.expire_activity_deadlines()


def _inbox(store: Store, clock: FakeClock) -> list[object]:
    """The events waiting for o-1 (claimed past the first turn's instance lease)."""
    clock.advance(31)
    items = store.claim_orchestrations("reader", 10, 30)
    return [m.event for i in items for m in i.messages]


def _late(task: ActivityWorkItem) -> ActivityResult:
    return ActivityResult(task, TaskCompleted(task_scheduled_id=1, result='"late"'))


def test_time_waiting_to_be_claimed_does_not_count(store: Store, clock: FakeClock) -> None:
    _schedule(store, timeout_s=2.0)
    clock.advance(100)  # waiting (a queue's limit, no free worker): not started
    assert _expire(store) == 0
    (task,) = store.claim_activities("w1", 10, 30)
    clock.advance(1.9)
    assert _expire(store) == 0
    clock.advance(0.2)  # 2.1 s after the claim
    assert _expire(store) == 1
    assert _expire(store) == 0  # (once)
    store.complete_activities("w1", [_late(task)])  # its late result: dropped
    (event,) = _inbox(store, clock)
    assert isinstance(event, TaskFailed) and event.task_scheduled_id == 1
    assert event.failure.error_type == "TimeoutError"
    assert "'call' (step 1) did not finish within its timeout of 0:00:02" in event.failure.message
    assert event.task_execution_id == "te-1"


def test_a_claim_after_its_worker_died_keeps_the_deadline(store: Store, clock: FakeClock) -> None:
    _schedule(store, timeout_s=5.0)
    (task,) = store.claim_activities("w1", 10, 1)
    clock.advance(2)  # w1 died: its lease lapsed
    (again,) = store.claim_activities("w2", 10, 30)
    assert (again.id, again.deliveries) == (task.id, 2)
    clock.advance(2.9)  # 4.9 s after the first claim
    assert _expire(store) == 0
    clock.advance(0.2)
    assert _expire(store) == 1
    store.complete_activities("w2", [_late(again)])
    (event,) = _inbox(store, clock)
    assert isinstance(event, TaskFailed) and event.failure.error_type == "TimeoutError"


def test_no_claim_takes_an_attempt_past_its_deadline(store: Store, clock: FakeClock) -> None:
    _schedule(store, timeout_s=2.0)
    store.claim_activities("w1", 10, 1)
    clock.advance(2.5)  # its lease and its deadline both passed, not yet expired
    assert store.claim_activities("w2", 10, 30) == []
    assert _expire(store) == 1


def test_a_result_in_time_is_recorded_and_nothing_expires(store: Store, clock: FakeClock) -> None:
    _schedule(store, timeout_s=2.0)
    (task,) = store.claim_activities("w1", 10, 30)
    clock.advance(1)
    store.complete_activities("w1", [_late(task)])
    clock.advance(10)
    assert _expire(store) == 0
    (event,) = _inbox(store, clock)
    assert isinstance(event, TaskCompleted)


def test_a_task_without_a_timeout_never_expires(store: Store, clock: FakeClock) -> None:
    _schedule(store, timeout_s=None)
    store.claim_activities("w1", 10, 1)
    clock.advance(10_000)
    assert _expire(store) == 0
    (again,) = store.claim_activities("w2", 10, 30)
    assert again.deliveries == 2
