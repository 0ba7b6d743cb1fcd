"""Store contract: activity heartbeats. A task with a heartbeat timeout is leased for at most
that long, a heartbeat of its holder keeps its details and extends its lease, and the worker
that takes it over once the lease lapsed gets the details."""

from __future__ import annotations

from conftest import FakeClock

from treadle.store.base import NewActivity, Store

from .helpers import claim_one, start, started_events, turn


def _schedule(store: Store, heartbeat_s: float | None) -> None:
    start(store, "o-1")
    item = claim_one(store)
    task = NewActivity("o-1", "o-1-e1", 1, "long", '"in"', "te-1", heartbeat_s=heartbeat_s)
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_activities=[task])])
    assert outcome.ok


def test_a_heartbeat_task_is_leased_for_its_heartbeat_timeout(
    store: Store, clock: FakeClock
) -> None:
    _schedule(store, heartbeat_s=2.0)
    (task,) = store.claim_activities("w1", 10, 30)
    assert task.heartbeat_s == 2.0 and task.heartbeat_details is None
    clock.advance(1.5)
    assert store.heartbeat_activity("w1", task.id, '{"done":3}', 2.0)
    clock.advance(1.9)  # 3.4 s after the claim, 1.9 s after the heartbeat: still held
    assert store.claim_activities("w2", 10, 30) == []
    assert not store.heartbeat_activity("w2", task.id, '{"done":9}', 2.0)  # not its holder
    clock.advance(0.2)  # the heartbeat's lease lapsed: another worker takes it, with details
    (again,) = store.claim_activities("w2", 10, 30)
    assert (again.id, again.heartbeat_details) == (task.id, '{"done":3}')
    assert not store.heartbeat_activity("w1", task.id, '{"done":4}', 2.0)  # it was taken over
    assert store.heartbeat_activity("w2", task.id, '{"done":5}', 2.0)


def test_a_task_without_a_heartbeat_timeout_keeps_the_whole_lease(
    store: Store, clock: FakeClock
) -> None:
    _schedule(store, heartbeat_s=None)
    (task,) = store.claim_activities("w1", 10, 30)
    assert task.heartbeat_s is None
    clock.advance(29)
    assert store.claim_activities("w2", 10, 30) == []


def test_renewing_activity_leases_names_the_ones_no_longer_held(
    store: Store, clock: FakeClock
) -> None:
    _schedule(store, heartbeat_s=None)
    (task,) = store.claim_activities("w1", 10, 5)
    assert store.renew_activity_leases("w1", [task.id], 5) == []
    clock.advance(4)
    assert store.claim_activities("w2", 10, 5) == []  # renewed: still held
    assert store.renew_activity_leases("w2", [task.id], 5) == [task.id]  # not its holder
    clock.advance(6)
    (again,) = store.claim_activities("w2", 10, 5)  # lapsed: taken over
    assert again.id == task.id
    assert store.renew_activity_leases("w1", [task.id], 5) == [task.id]
    assert store.renew_activity_leases("w1", [], 5) == []
