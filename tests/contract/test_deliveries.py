"""Store contract: each activity task counts the times it was handed to a worker
(``ActivityWorkItem.deliveries``), so a runtime can park one whose attempts keep killing their
worker (see treadle.runtime.poison)."""

from __future__ import annotations

from conftest import FakeClock

from treadle.core.history import TaskCompleted
from treadle.store.base import ActivityResult, NewActivity, Store
from treadle.store.queues import Queue, QueuedNames, QueueStore

from .helpers import claim_one, start, started_events, turn


def _schedule(store: Store, *, leased: bool = False, own: bool = False) -> list[int]:
    start(store, "o-1")
    item = claim_one(store, "w1")
    task = NewActivity("o-1", "o-1-e1", 0, "act", '"in"', "te-0", leased=leased, own=own)
    (outcome,) = store.commit_turns(
        "w1", [turn(item, started_events(item), new_activities=[task], keep_lease=own)]
    )
    assert outcome.ok, outcome
    return outcome.new_activity_ids


def test_each_claim_of_a_task_counts_one_delivery(store: Store, clock: FakeClock) -> None:
    _schedule(store)
    seen = []
    for owner in ("w1", "w2", "w3"):
        (task,) = store.claim_activities(owner, 10, 5)
        seen.append(task.deliveries)
        assert store.claim_activities("other", 10, 5) == []  # held: not handed out again
        clock.advance(6)  # its worker died: the lease lapses
    assert seen == [1, 2, 3]


def test_claims_within_a_queue_count_too(store: Store, clock: FakeClock) -> None:
    assert isinstance(store, QueueStore)
    _schedule(store)
    queued = QueuedNames(Queue("q", concurrency=1), {"act": 0})
    seen = []
    for owner in ("w1", "w2"):
        (task,) = store.claim_queued(owner, queued, 10, 5).items
        seen.append(task.deliveries)
        clock.advance(6)
    (task,) = store.claim_activities("w3", 10, 5)
    assert [*seen, task.deliveries] == [1, 2, 3]


def test_a_task_leased_at_its_creation_counts_that_lease(store: Store, clock: FakeClock) -> None:
    _schedule(store, leased=True)
    clock.advance(31)  # commit_turns' default lease lapses: its worker died
    (task,) = store.claim_activities("w2", 10, 30)
    assert task.deliveries == 2


def test_an_own_task_whose_worker_died_counts_its_first_attempt(
    store: Store, clock: FakeClock
) -> None:
    _schedule(store, leased=True, own=True)
    assert store.claim_activities("w2", 10, 30) == []
    clock.advance(31)  # the instance's lease lapses with its worker
    (task,) = store.claim_activities("w2", 10, 30)
    assert (task.name, task.deliveries) == ("act", 2)


def test_a_result_ends_the_count(store: Store) -> None:
    _schedule(store)
    (task,) = store.claim_activities("w1", 10, 30)
    event = TaskCompleted(task_scheduled_id=0, result='"ok"', task_execution_id="te-0")
    store.complete_activities("w1", [ActivityResult(task, event)])
    assert store.claim_activities("w2", 10, 30) == []
