"""Queued activity tasks on every backend: claims stay within a queue's concurrency and rate
limits whoever claims, take higher priorities first, and leave other tasks to plain claims."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from conftest import FakeClock

from treadle.core.history import OrchestrationStatus, TaskCompleted
from treadle.store.base import ActivityResult, ActivityWorkItem, NewActivity, Store
from treadle.store.queues import Queue, QueuedNames, QueueStore

from .helpers import claim_one, start, started_events, turn


def _schedule(store: Store, names: list[str]) -> None:
    """Start "o-1" and commit a turn scheduling one task per name, in order."""
    start(store, "o-1")
    item = claim_one(store)
    tasks = [NewActivity("o-1", "o-1-e1", n, name, None, f"te-{n}") for n, name in enumerate(names)]
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_activities=tasks)])
    assert outcome.ok


def _done(task: ActivityWorkItem) -> ActivityResult:
    event = TaskCompleted(
        task_scheduled_id=task.task_id, result='"ok"', task_execution_id=task.task_execution_id
    )
    return ActivityResult(task, event)


def test_a_concurrency_limit_holds_across_claimers_until_tasks_finish(
    store: Store, clock: FakeClock
) -> None:
    assert isinstance(store, QueueStore)
    _schedule(store, ["mail"] * 5 + ["other"])
    mail = QueuedNames(Queue("mail", concurrency=2), {"mail": 0})
    first = store.claim_queued("w1", mail, 10, 30)
    assert [i.task_id for i in first.items] == [0, 1]
    assert first.retry_after_s is not None  # three wait
    second = store.claim_queued("w2", mail, 10, 30)
    assert second.items == [] and second.retry_after_s is not None
    plain = store.claim_activities("w3", 10, 30, names=["other"])
    assert [i.name for i in plain] == ["other"]  # other tasks go on
    store.complete_activities("w1", [_done(first.items[0])])
    assert [i.task_id for i in store.claim_queued("w2", mail, 10, 30).items] == [2]
    clock.advance(31)  # the leases expired: they count no more, and are taken again
    again = store.claim_queued("w2", mail, 10, 30)
    assert sorted(i.task_id for i in again.items) == [1, 2]


def test_a_rate_limit_counts_starts_in_a_sliding_window(store: Store, clock: FakeClock) -> None:
    assert isinstance(store, QueueStore)
    _schedule(store, ["api"] * 7)
    api = QueuedNames(Queue("api", rate_limit=3, period=timedelta(seconds=10)), {"api": 0})
    claim = store.claim_queued("w1", api, 10, 300)
    assert len(claim.items) == 3
    assert claim.retry_after_s is not None and 9.9 < claim.retry_after_s < 10.1
    for task in claim.items:
        store.complete_activities("w1", [_done(task)])
    clock.advance(5)
    held = store.claim_queued("w2", api, 10, 300)
    assert held.items == [] and held.retry_after_s is not None and 4.9 < held.retry_after_s < 5.1
    clock.advance(5)
    assert len(store.claim_queued("w2", api, 10, 300).items) == 3
    assert len(store.claim_queued("w1", api, 10, 300).items) == 0


def test_higher_priorities_are_claimed_first_then_the_oldest(store: Store) -> None:
    assert isinstance(store, QueueStore)
    _schedule(store, ["low", "high", "low", "high", "mid"])
    queued = QueuedNames(Queue("q", concurrency=10), {"low": 0, "high": 5, "mid": 1})
    taken = []
    for _ in range(5):
        (item,) = store.claim_queued("w1", queued, 1, 30).items
        taken.append((item.name, item.task_id))
    assert taken == [("high", 1), ("high", 3), ("mid", 4), ("low", 0), ("low", 2)]


def test_racing_claimers_never_exceed_the_limit(make_store: Callable[..., Store]) -> None:
    stores = [make_store() for _ in range(4)]
    _schedule(stores[0], ["job"] * 40)
    queued = QueuedNames(Queue("jobs", concurrency=3), {"job": 0})
    barrier = threading.Barrier(len(stores))
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claim(store: Store, owner: str) -> None:
        try:
            assert isinstance(store, QueueStore)
            barrier.wait()
            for _ in range(5):
                claimed.extend(i.id for i in store.claim_queued(owner, queued, 2, 30).items)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(s, f"w{n}")) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(claimed) == 3 == len(set(claimed))  # never more than the limit leased


def test_a_workflow_queue_admits_instances_within_its_limit(store: Store, clock: FakeClock) -> None:
    assert isinstance(store, QueueStore)
    for n in range(4):
        start(store, f"r-{n}", "report")
        clock.advance(1)
    start(store, "urgent", "alert")
    queued = QueuedNames(Queue("jobs", concurrency=2), {"report": 0, "alert": 9})
    # nothing is admitted yet: the admitted claim takes none of them
    assert store.claim_admitted("w1", 10, 30, names=["report", "alert"]) == []
    assert store.admit_queued(queued) is not None  # two admitted, three wait
    claimed = store.claim_admitted("w1", 10, 30, names=["report", "alert"])
    assert sorted(c.instance.instance_id for c in claimed) == ["r-0", "urgent"]
    assert store.admit_queued(queued) is not None  # still full: nobody else admitted
    assert store.claim_admitted("w2", 10, 30, names=["report", "alert"]) == []
    (outcome,) = store.commit_turns(
        "w1",
        [
            turn(c, started_events(c), status=OrchestrationStatus.COMPLETED)
            for c in claimed
            if c.instance.instance_id == "urgent"
        ],
    )
    assert outcome.ok
    assert store.admit_queued(queued) is not None  # its slot ended: r-1 is admitted
    (next_one,) = store.claim_admitted("w2", 10, 30, names=["report", "alert"])
    assert next_one.instance.instance_id == "r-1"
