"""Store contract, orchestration side: claims, leases and fenced group commits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import FakeClock

from treadle.core.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    OrchestrationStatus,
    OrchestratorStarted,
    ParentInfo,
    SubOrchestrationInstanceFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from treadle.errors import FailureDetails, StoreError
from treadle.store.base import NewActivity, NewMessage, Store

from .helpers import (
    COMPLETED,
    RUNNING,
    claim_one,
    kinds,
    new_instance,
    run_first_turn,
    start,
    started_events,
    turn,
)


def _event(store: Store, instance_id: str, name: str, **kwargs: Any) -> None:
    store.send_message(NewMessage(instance_id, EventRaised(name=name), **kwargs))


def test_claim_leases_and_returns_visible_messages_in_order(store: Store, clock: FakeClock) -> None:
    start(store, "o-1")
    _event(store, "o-1", "first")
    _event(store, "o-1", "future", visible_at=clock.now() + timedelta(seconds=5))
    _event(store, "o-1", "second")
    item = claim_one(store)
    assert item.instance.instance_id == "o-1"
    names = [getattr(m.event, "name", None) for m in item.messages]
    assert kinds([m.event for m in item.messages]) == [
        "ExecutionStarted",
        "EventRaised",
        "EventRaised",
    ]
    assert names[1:] == ["first", "second"]
    assert [m.id for m in item.messages] == sorted(m.id for m in item.messages)
    assert store.lease_owners() == ["w1"]


def test_claim_orders_instances_by_oldest_message_and_honours_limit(
    store: Store, clock: FakeClock
) -> None:
    for iid in ("c", "a", "b"):
        start(store, iid)
    items = store.claim_orchestrations("w1", 2, 30)
    assert [i.instance.instance_id for i in items] == ["c", "a"]
    assert [i.instance.instance_id for i in store.claim_orchestrations("w2", 5, 30)] == ["b"]
    assert store.claim_orchestrations("w1", 0, 30) == []


def test_claim_fills_its_limit_past_an_instance_with_many_messages(store: Store) -> None:
    # PostgresStore looks at a bounded number of messages per statement, then goes on
    start(store, "busy")
    for i in range(150):
        _event(store, "busy", f"e{i}")
    start(store, "quiet")
    items = store.claim_orchestrations("w1", 2, 30)
    assert [i.instance.instance_id for i in items] == ["busy", "quiet"]
    assert len(items[0].messages) == 151 and len(items[1].messages) == 1


def test_claim_skips_excluded_instances(store: Store) -> None:
    start(store, "a")
    start(store, "b")
    items = store.claim_orchestrations("w1", 5, 30, exclude=["a"])
    assert [i.instance.instance_id for i in items] == ["b"]


def test_a_leased_instance_is_not_claimable_by_others_until_the_lease_expires(
    store: Store, clock: FakeClock
) -> None:
    start(store, "o-1")
    first = claim_one(store, "w1", lease_s=10)
    assert store.claim_orchestrations("w2", 10, 30) == []
    clock.advance(9.9)
    assert store.claim_orchestrations("w2", 10, 30) == []
    clock.advance(0.2)
    second = claim_one(store, "w2")
    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    # the first owner's lease is gone: its commit is refused and writes nothing
    (outcome,) = store.commit_turns("w1", [turn(first, started_events(first))])
    assert not outcome.ok and "w2" in (outcome.error or "")
    assert store.get_history("o-1") == []


def test_the_owner_may_reclaim_its_own_leased_instance(store: Store) -> None:
    start(store, "o-1")
    run_first_turn(store, keep_lease=True)
    _event(store, "o-1", "more")
    item = claim_one(store, "w1")
    assert kinds([m.event for m in item.messages]) == ["EventRaised"]
    assert store.claim_orchestrations("w2", 10, 30) == []


def test_commit_appends_history_and_consumes_messages(store: Store, clock: FakeClock) -> None:
    start(store, "o-1", input="5")
    item = claim_one(store)
    events = [*started_events(item), TaskScheduled(event_id=0, name="charge", input="5")]
    (outcome,) = store.commit_turns("w1", [turn(item, events, custom_status='"busy"')])
    assert outcome.ok and outcome.version == item.instance.version + 1
    assert kinds(store.get_history("o-1")) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
    ]
    record = store.get_instance("o-1")
    assert record is not None
    assert (record.status, record.history_len, record.version) == (RUNNING, 3, outcome.version)
    assert record.custom_status == '"busy"' and record.input == "5"
    assert store.claim_orchestrations("w1", 10, 30) == []  # the message was consumed
    assert store.lease_owners() == []  # and the lease released

    _event(store, "o-1", "go")
    item = claim_one(store, "w2")
    assert item.instance.history_len == 3
    (outcome,) = store.commit_turns(
        "w2", [turn(item, [OrchestratorStarted(), item.messages[0].event])]
    )
    assert outcome.ok
    assert kinds(store.get_history("o-1"))[3:] == ["OrchestratorStarted", "EventRaised"]


def test_commit_records_the_result_and_failure(store: Store) -> None:
    start(store, "o-1")
    item = claim_one(store)
    failure = FailureDetails(message="boom", error_type="ValueError", stack_trace="tb")
    store.commit_turns(
        "w1",
        [
            turn(
                item,
                started_events(item),
                status=OrchestrationStatus.FAILED,
                failure=failure,
                output=None,
            )
        ],
    )
    record = store.get_instance("o-1")
    assert record is not None and record.status == OrchestrationStatus.FAILED
    assert record.failure == failure


@pytest.mark.parametrize("keep_lease", [True, False])
def test_any_text_in_events_and_results_is_kept_as_committed(
    store: Store, keep_lease: bool
) -> None:
    """Payloads with quotes, backslashes, braces, commas, newlines and non-ASCII text (the
    characters array and JSON literals escape) come back exactly, in either kind of turn:
    one that consumes messages and one that only appends to its own history."""
    tricky = '{"a": "q\\"uote\\\\ back, {brace} \\n é 🧵 \\u0001"}'
    start(store, "o-1")
    item = claim_one(store)
    first = [*started_events(item), EventRaised(name='x"}{,\\', input=tricky)]
    (outcome,) = store.commit_turns(
        "w1", [turn(item, first, custom_status=tricky, keep_lease=True)]
    )
    assert outcome.ok
    second = [OrchestratorStarted(), TaskScheduled(event_id=0, name="act", input=tricky)]
    (outcome,) = store.commit_turns(
        "w1",
        [
            turn(
                item,
                second,
                expected_version=outcome.version,
                history_start=len(first),
                consume=False,
                output=tricky,
                keep_lease=keep_lease,
            )
        ],
    )
    assert outcome.ok
    assert store.get_history("o-1")[1:] == [*first, *second][1:]
    record = store.get_instance("o-1")
    assert record is not None
    assert (record.output, record.custom_status) == (tricky, None)
    assert record.history_len == len(first) + len(second)
    assert ("w1" in store.lease_owners()) is keep_lease


def test_continue_as_new_resets_history(store: Store) -> None:
    start(store, "o-1")
    run_first_turn(store)
    _event(store, "o-1", "again")
    item = claim_one(store)
    restart = ExecutionStarted(name="wf", instance_id="o-1", execution_id="e-2", input="9")
    (outcome,) = store.commit_turns(
        "w1",
        [
            turn(
                item,
                [OrchestratorStarted(), restart],
                reset_history=True,
                execution_id="e-2",
                input="9",
            )
        ],
    )
    assert outcome.ok
    assert kinds(store.get_history("o-1")) == ["OrchestratorStarted", "ExecutionStarted"]
    record = store.get_instance("o-1")
    assert record is not None
    assert (record.execution_id, record.input, record.history_len) == ("e-2", "9", 2)


def test_kept_lease_stays_with_the_owner(store: Store, clock: FakeClock) -> None:
    start(store, "o-1")
    run_first_turn(store, keep_lease=True)
    assert store.lease_owners() == ["w1"]
    _event(store, "o-1", "x")
    assert store.claim_orchestrations("w2", 10, 30) == []
    clock.advance(31)  # commit_turns' default lease is 30 s
    assert len(store.claim_orchestrations("w2", 10, 30)) == 1


def test_timers_become_visible_at_their_time(store: Store, clock: FakeClock) -> None:
    start(store, "o-1")
    item = claim_one(store)
    fire_at = clock.now() + timedelta(seconds=30)
    timer = NewMessage("o-1", TimerFired(timer_id=0, fire_at=fire_at), "o-1-e1", visible_at=fire_at)
    store.commit_turns(
        "w1",
        [
            turn(
                item,
                [*started_events(item), TimerCreated(event_id=0, fire_at=fire_at)],
                new_messages=[timer],
            )
        ],
    )
    assert store.claim_orchestrations("w1", 10, 30) == []
    assert store.next_wakeup() == fire_at
    clock.advance(30)
    item = claim_one(store)
    (message,) = item.messages
    assert isinstance(message.event, TimerFired) and message.event.fire_at == fire_at
    assert message.execution_id == "o-1-e1"


def test_messages_to_other_instances_are_delivered_if_they_exist(store: Store) -> None:
    start(store, "a")
    start(store, "b")
    items = store.claim_orchestrations("w1", 1, 30)
    sends = [NewMessage("b", EventRaised(name="hi")), NewMessage("ghost", EventRaised(name="x"))]
    store.commit_turns("w1", [turn(items[0], started_events(items[0]), new_messages=sends)])
    item = claim_one(store)
    assert item.instance.instance_id == "b"
    assert kinds([m.event for m in item.messages]) == ["ExecutionStarted", "EventRaised"]
    assert store.get_instance("ghost") is None


def test_commit_creates_child_instances(store: Store) -> None:
    start(store, "p")
    item = claim_one(store)
    parent = ParentInfo("p", "p-e1", 3, "wf")
    child = new_instance("p-c", "child", input='"x"', parent=parent)
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_instances=[child])])
    assert outcome.ok
    assert store.child_instance_ids("p") == ["p-c"]
    record = store.get_instance("p-c")
    assert record is not None
    assert (record.name, record.parent_instance_id, record.status.name) == ("child", "p", "PENDING")
    started = claim_one(store).messages[0].event
    assert isinstance(started, ExecutionStarted) and started.parent == parent


def test_a_turn_messages_the_children_it_creates(store: Store) -> None:
    """A parent ending (terminated) in the turn that creates a child: the child gets the
    termination the turn sends it, after its start (it is not dropped as sent to an
    instance that did not exist yet)."""
    start(store, "p")
    item = claim_one(store)
    child = new_instance("p-c", "child", parent=ParentInfo("p", "p-e1", 1, "wf"))
    end = NewMessage("p-c", ExecutionTerminated(recurse=True))
    (outcome,) = store.commit_turns(
        "w1",
        [
            turn(
                item,
                started_events(item),
                status=OrchestrationStatus.TERMINATED,
                new_instances=[child],
                new_messages=[end],
            )
        ],
    )
    assert outcome.ok
    got = claim_one(store)
    assert got.instance.instance_id == "p-c"
    assert kinds([m.event for m in got.messages]) == ["ExecutionStarted", "ExecutionTerminated"]


def test_a_message_to_an_instance_a_later_turn_of_the_group_creates_is_dropped(
    store: Store,
) -> None:
    """Turns of one group commit as if one after the other: a message sent to an id that
    does not exist yet is dropped, even if a later turn of the group creates it."""
    start(store, "a")
    start(store, "b")
    items = {i.instance.instance_id: i for i in store.claim_orchestrations("w1", 10, 30)}
    hello = NewMessage("x", EventRaised(name="early"))
    child = new_instance("x", parent=ParentInfo("b", "b-e1", 1, "wf"))
    outcomes = store.commit_turns(
        "w1",
        [
            turn(items["a"], started_events(items["a"]), new_messages=[hello]),
            turn(items["b"], started_events(items["b"]), new_instances=[child]),
        ],
    )
    assert [o.ok for o in outcomes] == [True, True]
    got = claim_one(store)
    assert got.instance.instance_id == "x"
    assert kinds([m.event for m in got.messages]) == ["ExecutionStarted"]


def test_a_child_whose_id_is_taken_fails_in_the_parent(store: Store) -> None:
    start(store, "busy")
    start(store, "p")
    items = {i.instance.instance_id: i for i in store.claim_orchestrations("w1", 10, 30)}
    store.commit_turns("w1", [turn(items["busy"], started_events(items["busy"]))])
    info = ParentInfo("p", "p-e1", 4, "wf")
    (outcome,) = store.commit_turns(
        "w1",
        [
            turn(
                items["p"],
                started_events(items["p"]),
                new_instances=[new_instance("busy", parent=info)],
            )
        ],
    )
    assert outcome.ok
    record = store.get_instance("busy")
    assert record is not None and record.parent_instance_id is None  # untouched
    item = claim_one(store)
    assert item.instance.instance_id == "p"
    (message,) = item.messages
    assert isinstance(message.event, SubOrchestrationInstanceFailed)
    assert message.event.task_scheduled_id == 4 and message.execution_id == "p-e1"
    assert "busy" in message.event.failure.message


@pytest.mark.parametrize("fault", ["version", "owner", "expired", "unleased"])
def test_a_fenced_commit_is_refused_and_writes_nothing(
    store: Store, clock: FakeClock, fault: str
) -> None:
    start(store, "o-1")
    start(store, "other")
    items = store.claim_orchestrations("w1", 1, 10)
    item = items[0]
    owner = "w1"
    expected = item.instance.version
    if fault == "version":
        expected += 1
    elif fault == "owner":
        owner = "w2"
    elif fault == "expired":
        clock.advance(10.001)
    else:
        store.release_leases("w1")
    bad = turn(
        item,
        started_events(item),
        expected_version=expected,
        new_activities=[NewActivity("o-1", "o-1-e1", 0, "act", None, "t0")],
        new_messages=[NewMessage("other", EventRaised(name="x"))],
        new_instances=[new_instance("child")],
        status=COMPLETED,
    )
    (outcome,) = store.commit_turns(owner, [bad])
    assert not outcome.ok and outcome.error
    assert store.get_history("o-1") == []
    record = store.get_instance("o-1")
    assert record is not None and record.version == item.instance.version
    assert record.status == item.instance.status
    assert store.get_instance("child") is None
    assert store.claim_activities("w3", 10, 30) == []
    clock.advance(11)
    again = {i.instance.instance_id: i for i in store.claim_orchestrations("w3", 10, 30)}
    assert [m.id for m in again["o-1"].messages] == [m.id for m in item.messages]
    assert kinds([m.event for m in again["other"].messages]) == ["ExecutionStarted"]


def test_a_commit_for_a_missing_instance_is_refused(store: Store) -> None:
    start(store, "o-1")
    item = claim_one(store)
    ghost = turn(item, instance_id="ghost")
    (outcome,) = store.commit_turns("w1", [ghost])
    assert not outcome.ok


def test_duplicate_history_positions_are_impossible(store: Store) -> None:
    start(store, "o-1")
    run_first_turn(store, keep_lease=True)
    _event(store, "o-1", "x")
    item = claim_one(store)
    overlapping = turn(item, [OrchestratorStarted()], history_start=1)
    with pytest.raises(StoreError):
        store.commit_turns("w1", [overlapping])
    assert kinds(store.get_history("o-1")) == ["OrchestratorStarted", "ExecutionStarted"]
    record = store.get_instance("o-1")
    assert record is not None and record.version == item.instance.version


def test_group_commit_applies_each_turn_and_refuses_only_the_fenced_one(store: Store) -> None:
    for iid in ("a", "b", "c"):
        start(store, iid)
    items = store.claim_orchestrations("w1", 10, 30)
    assert len(items) == 3
    turns = [turn(i, started_events(i)) for i in items]
    turns[1] = turn(items[1], started_events(items[1]), expected_version=99)
    outcomes = store.commit_turns("w1", turns)
    assert [o.instance_id for o in outcomes] == ["a", "b", "c"]
    assert [o.ok for o in outcomes] == [True, False, True]
    assert [len(store.get_history(i)) for i in ("a", "b", "c")] == [2, 0, 2]
    assert store.commit_turns("w1", []) == []


def test_group_commit_of_two_turns_for_one_instance_applies_them_in_order(store: Store) -> None:
    start(store, "a")
    item = claim_one(store)
    first = turn(item, started_events(item), keep_lease=True)
    second = turn(
        item,
        [OrchestratorStarted()],
        expected_version=item.instance.version + 1,
        history_start=2,
        consume=False,
        status=COMPLETED,
    )
    outcomes = store.commit_turns("w1", [first, second])
    assert [o.ok for o in outcomes] == [True, True]
    assert [o.version for o in outcomes] == [1, 2]
    record = store.get_instance("a")
    assert record is not None and (record.status, record.history_len) == (COMPLETED, 3)


def test_a_timer_that_never_fires_stays_invisible(store: Store) -> None:
    start(store, "o-1")
    item = claim_one(store)
    never = datetime.max.replace(tzinfo=timezone.utc)
    timer = NewMessage("o-1", TimerFired(timer_id=0, fire_at=never), "o-1-e1", visible_at=never)
    store.commit_turns("w1", [turn(item, started_events(item), new_messages=[timer])])
    assert store.claim_orchestrations("w1", 10, 30) == []
    assert store.next_wakeup() == never
