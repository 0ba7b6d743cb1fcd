"""Queue limits kept in the store, on every backend: the last registration wins, every claim
(and admission) uses the stored limits whatever the claiming worker registered, and limits an
operator pinned hold against registrations until released."""

from __future__ import annotations

from datetime import timedelta

from conftest import FakeClock

from treadle.store.base import NewActivity, Store
from treadle.store.queues import Queue, QueuedNames, QueueStore

from .helpers import claim_one, start, started_events, turn


def _schedule(store: Store, count: int) -> None:
    start(store, "o-1")
    item = claim_one(store)
    tasks = [NewActivity("o-1", "o-1-e1", n, "mail", None, f"te-{n}") for n in range(count)]
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_activities=tasks)])
    assert outcome.ok


def _queues(store: Store) -> QueueStore:
    assert isinstance(store, QueueStore)
    return store


def test_the_last_registration_wins_and_every_claim_uses_it(store: Store, clock: FakeClock) -> None:
    queues = _queues(store)
    two, one = Queue("mail", concurrency=2), Queue("mail", concurrency=1)
    assert queues.put_queue_limits(two, by="w1", pinned=False) is None
    before = queues.put_queue_limits(one, by="w2", pinned=False)
    assert before is not None and (before.queue, before.updated_by) == (two, "w1")
    _schedule(store, 4)
    # w1 registered concurrency=2, but the store says 1: it takes one
    claim = queues.claim_queued("w1", QueuedNames(two, {"mail": 0}), 10, 30)
    assert len(claim.items) == 1
    assert queues.claim_queued("w2", QueuedNames(one, {"mail": 0}), 10, 30).items == []
    (stored,) = queues.list_queue_limits()
    assert (stored.queue, stored.pinned, stored.updated_by) == (one, False, "w2")
    assert stored.updated_at.timestamp() == clock()


def test_pinned_limits_hold_against_registrations_until_released(
    store: Store, clock: FakeClock
) -> None:
    queues = _queues(store)
    registered = Queue("mail", concurrency=1)
    pinned = Queue("mail", concurrency=3, rate_limit=100, period=timedelta(minutes=1))
    queues.put_queue_limits(registered, by="w1", pinned=False)
    assert queues.put_queue_limits(pinned, by="operator", pinned=True) is not None
    kept = queues.put_queue_limits(registered, by="w2", pinned=False)  # a worker starting
    assert kept is not None and kept.pinned and kept.queue == pinned
    _schedule(store, 5)
    claim = queues.claim_queued("w2", QueuedNames(registered, {"mail": 0}), 10, 30)
    assert len(claim.items) == 3
    assert queues.release_queue_limits("mail")
    assert not queues.release_queue_limits("nothing")
    (released,) = queues.list_queue_limits()
    assert (released.queue, released.pinned) == (pinned, False)  # until the next registration
    queues.put_queue_limits(registered, by="w3", pinned=False)
    (now,) = queues.list_queue_limits()
    assert (now.queue, now.pinned, now.updated_by) == (registered, False, "w3")


def test_a_queue_the_store_keeps_no_limits_for_is_claimed_under_the_registered_ones(
    store: Store,
) -> None:
    queues = _queues(store)
    _schedule(store, 3)
    claim = queues.claim_queued("w1", QueuedNames(Queue("mail", concurrency=2), {"mail": 0}), 9, 30)
    assert len(claim.items) == 2
    assert queues.list_queue_limits() == []


def test_a_plain_claim_of_any_name_leaves_the_queued_names_out(store: Store) -> None:
    _schedule(store, 2)  # two "mail" tasks
    start(store, "o-2")
    other = claim_one(store)
    task = NewActivity("o-2", "o-2-e1", 1, "other", None, "te-o")
    (outcome,) = store.commit_turns(
        "w1", [turn(other, started_events(other), new_activities=[task])]
    )
    assert outcome.ok
    # a sidecar takes any name, but the queued ones go through their queue's claim
    taken = store.claim_activities("w1", 10, 30, except_names=["mail"])
    assert [t.name for t in taken] == ["other"]
    assert len(store.claim_activities("w1", 10, 30)) == 2
