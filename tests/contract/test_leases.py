"""Store contract: renewing, releasing and listing leases; when the next work is due."""

from __future__ import annotations

from datetime import timedelta

from conftest import FakeClock

from treadle.core.history import EventRaised
from treadle.store.base import NewActivity, NewMessage, Store

from .helpers import claim_one, run_first_turn, start, started_events, turn


def test_renew_extends_held_leases_and_reports_lost_ones(store: Store, clock: FakeClock) -> None:
    for iid in ("a", "b", "c"):
        start(store, iid)
    store.claim_orchestrations("w1", 2, 10)  # a, b
    clock.advance(8)
    assert store.renew_leases("w1", ["a"], [], 10) == []
    clock.advance(3)  # "b" expired, "a" was renewed
    assert store.renew_leases("w1", ["a", "b", "c"], [], 10) == ["b", "c"]
    taken = store.claim_orchestrations("w2", 10, 10)
    assert sorted(i.instance.instance_id for i in taken) == ["b", "c"]
    assert store.renew_leases("w2", ["c", "b"], [], 10) == []
    assert store.renew_leases("w1", ["a"], [], 10) == []
    assert store.renew_leases("w1", [], [], 10) == []


def test_renew_does_not_steal_another_owners_lease(store: Store) -> None:
    start(store, "a")
    claim_one(store, "w1")
    assert store.renew_leases("w2", ["a"], [], 30) == ["a"]
    assert store.lease_owners() == ["w1"]


def test_release_gives_instances_back(store: Store) -> None:
    start(store, "a")
    start(store, "b")
    store.claim_orchestrations("w1", 10, 60)
    store.release_leases("w1", ["a"])
    assert [i.instance.instance_id for i in store.claim_orchestrations("w2", 10, 60)] == ["a"]
    store.release_leases("w1", ["a"])  # not the owner any more: no effect
    assert store.claim_orchestrations("w3", 10, 60) == []
    store.release_leases("w1", [])


def test_release_all_gives_back_instances_and_activities(store: Store) -> None:
    start(store, "a")
    start(store, "b")
    items = store.claim_orchestrations("w1", 1, 60)
    task = NewActivity("a", "a-e1", 0, "act", None, "t0", leased=True)
    store.commit_turns(
        "w1", [turn(items[0], started_events(items[0]), new_activities=[task], keep_lease=True)]
    )
    store.claim_orchestrations("w1", 10, 60)
    assert store.lease_owners() == ["w1"]
    store.release_leases("w1")
    assert store.lease_owners() == []
    assert len(store.claim_activities("w2", 10, 60)) == 1
    assert [i.instance.instance_id for i in store.claim_orchestrations("w2", 10, 60)] == ["b"]


def test_lease_owners_lists_each_owner_once(store: Store) -> None:
    assert store.lease_owners() == []
    for iid in ("a", "b", "c"):
        start(store, iid)
    store.claim_orchestrations("w2", 2, 60)
    store.claim_orchestrations("w1", 2, 60)
    assert store.lease_owners() == ["w1", "w2"]


def test_next_wakeup_is_the_earliest_future_message_or_lease(
    store: Store, clock: FakeClock
) -> None:
    assert store.next_wakeup() is None
    start(store, "a")
    assert store.next_wakeup() is None  # visible now: nothing to wait for
    run_first_turn(store)
    t0 = clock.now()
    store.send_message(
        NewMessage("a", EventRaised(name="x"), visible_at=t0 + timedelta(seconds=50))
    )
    assert store.next_wakeup() == t0 + timedelta(seconds=50)
    start(store, "b")
    claim_one(store, "w1", lease_s=20)  # "b" is leased while a message waits for it
    assert store.next_wakeup() == t0 + timedelta(seconds=20)
    clock.advance(21)
    assert store.next_wakeup() == t0 + timedelta(seconds=50)
    clock.advance(30)
    assert store.next_wakeup() is None


def test_next_wakeup_includes_activity_lease_expiry(store: Store, clock: FakeClock) -> None:
    start(store, "a")
    item = claim_one(store)
    task = NewActivity("a", "a-e1", 0, "act", None, "t0")
    store.commit_turns("w1", [turn(item, started_events(item), new_activities=[task])])
    store.claim_activities("w1", 10, 15)
    assert store.next_wakeup() == clock.now() + timedelta(seconds=15)


def test_a_claim_names_the_owner_whose_lapsed_lease_it_took(store: Store, clock: FakeClock) -> None:
    for iid in ("a", "b"):
        start(store, iid)
    first = store.claim_orchestrations("w1", 10, 10)
    assert [i.taken_from for i in first] == [None, None]  # nobody held them
    store.release_leases("w1", ["b"])  # given back: not a takeover
    clock.advance(11)  # "a" lapsed
    taken = {i.instance.instance_id: i.taken_from for i in store.claim_orchestrations("w2", 10, 10)}
    assert taken == {"a": "w1", "b": None}
