"""Store contract, client side: create, get, list, send_message, purge (every backend)."""

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
    ParentInfo,
    TaskScheduled,
    TimerFired,
)
from treadle.errors import (
    InvalidInputError,
    WorkflowAlreadyExistsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.store.base import InstanceQuery, NewActivity, NewInstance, NewMessage, Store

from .helpers import (
    COMPLETED,
    PENDING,
    RUNNING,
    claim_one,
    end,
    finish,
    kinds,
    new_instance,
    run_first_turn,
    start,
    started_events,
    turn,
)


def test_create_then_get_returns_the_pending_record(store: Store, clock: FakeClock) -> None:
    start(store, "o-1", "order", input='{"n": 1}', execution_id="e-1")
    record = store.get_instance("o-1")
    assert record is not None
    assert (record.instance_id, record.name, record.status) == ("o-1", "order", PENDING)
    assert (record.execution_id, record.input, record.output) == ("e-1", '{"n": 1}', None)
    assert record.created_at == clock.now() == record.updated_at
    assert (record.version, record.history_len, record.parent_instance_id) == (0, 0, None)
    assert record.failure is None and record.custom_status is None


def test_unknown_ids_have_no_record_and_no_history(store: Store) -> None:
    assert store.get_instance("nope") is None
    assert store.get_history("nope") == []
    assert store.child_instance_ids("nope") == []


def test_create_queues_execution_started(store: Store, clock: FakeClock) -> None:
    start(store, "o-1", "order", input="7")
    item = claim_one(store)
    (message,) = item.messages
    assert isinstance(message.event, ExecutionStarted)
    assert (message.event.name, message.event.input, message.event.instance_id) == (
        "order",
        "7",
        "o-1",
    )
    assert message.execution_id == "o-1-e1"
    assert message.event.timestamp == clock.now()


@pytest.mark.parametrize("running", [False, True])
def test_unfinished_id_cannot_be_created_twice(store: Store, running: bool) -> None:
    start(store, "o-1")
    if running:
        run_first_turn(store)
    with pytest.raises(WorkflowAlreadyExistsError, match="o-1"):
        start(store, "o-1", execution_id="other")
    record = store.get_instance("o-1")
    assert record is not None and record.execution_id == "o-1-e1"


def test_finished_id_can_be_reused_with_a_clean_slate(store: Store) -> None:
    start(store, "o-1")
    finish(store, "o-1")
    store.send_message(NewMessage("o-1", EventRaised(name="late")))
    start(store, "o-1", "v2", execution_id="e-2")
    record = store.get_instance("o-1")
    assert record is not None
    assert (record.name, record.status, record.execution_id) == ("v2", PENDING, "e-2")
    assert (record.version, record.history_len) == (0, 0)
    assert store.get_history("o-1") == []
    item = claim_one(store)
    assert kinds([m.event for m in item.messages]) == ["ExecutionStarted"]


def test_list_is_newest_first_and_filters(store: Store, clock: FakeClock) -> None:
    start(store, "a", "alpha")
    clock.advance(1)
    start(store, "b", "beta")
    clock.advance(1)
    start(store, "c", "alpha")
    run_first_turn(store)  # "a" (oldest message first) is now RUNNING

    def ids(**kwargs: Any) -> list[str]:
        return [r.instance_id for r in store.list_instances(InstanceQuery(**kwargs)).instances]

    assert ids() == ["c", "b", "a"]
    assert ids(name="alpha") == ["c", "a"]
    assert ids(statuses=(RUNNING,)) == ["a"]
    assert ids(statuses=(PENDING, RUNNING), name="beta") == ["b"]
    t0 = clock.now() - timedelta(seconds=2)
    assert ids(created_from=t0 + timedelta(seconds=1)) == ["c", "b"]
    assert ids(created_to=t0 + timedelta(seconds=1)) == ["a"]
    assert ids(statuses=(COMPLETED,)) == []


def test_list_pages_with_a_cursor_without_gaps_or_repeats(store: Store, clock: FakeClock) -> None:
    expected = []
    for i in range(7):
        for j in range(3):  # several instances per timestamp: ties break by id
            start(store, f"i{i}-{j}")
            expected.append(f"i{i}-{j}")
        clock.advance(0.001)
    expected.sort(key=lambda iid: (int(iid[1]), iid), reverse=True)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_instances(InstanceQuery(limit=4, cursor=cursor))
        seen += [r.instance_id for r in page.instances]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 6
    last = store.list_instances(InstanceQuery(limit=21))
    assert len(last.instances) == 21 and last.next_cursor is None


def test_list_rejects_a_bad_cursor(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.list_instances(InstanceQuery(cursor="not a cursor"))


def test_send_message_to_unknown_instance_raises(store: Store) -> None:
    with pytest.raises(WorkflowNotFoundError, match="ghost"):
        store.send_message(NewMessage("ghost", EventRaised(name="x")))


def test_events_before_a_scheduled_start_wait_for_the_start(store: Store, clock: FakeClock) -> None:
    start(store, "later", scheduled_start=clock.now() + timedelta(seconds=60))
    store.send_message(NewMessage("later", EventRaised(name="early", input="1")))
    assert store.claim_orchestrations("w1", 10, 30) == []
    assert store.next_wakeup() == clock.now() + timedelta(seconds=60)
    clock.advance(59)
    assert store.claim_orchestrations("w1", 10, 30) == []
    clock.advance(1)
    item = claim_one(store)
    assert kinds([m.event for m in item.messages]) == ["ExecutionStarted", "EventRaised"]


def test_terminate_reaches_a_pending_instance_before_its_start(
    store: Store, clock: FakeClock
) -> None:
    start(store, "later", scheduled_start=clock.now() + timedelta(hours=1))
    store.send_message(NewMessage("later", ExecutionTerminated(input='"stop"')))
    item = claim_one(store)
    assert kinds([m.event for m in item.messages]) == ["ExecutionTerminated"]


def test_scheduled_start_in_the_past_starts_now(store: Store, clock: FakeClock) -> None:
    start(store, "o-1", scheduled_start=clock.now() - timedelta(days=1))
    assert kinds([m.event for m in claim_one(store).messages]) == ["ExecutionStarted"]


def _start_child(store: Store, parent: str, child: str, task_id: int = 1) -> None:
    """Commit a turn of ``parent`` (the only waiting instance) that creates ``child``."""
    item = claim_one(store)
    assert item.instance.instance_id == parent
    info = ParentInfo(parent, item.instance.execution_id, task_id, "wf")
    outcome = store.commit_turns(
        "w1", [turn(item, started_events(item), new_instances=[new_instance(child, parent=info)])]
    )
    assert outcome[0].ok, outcome


def test_purge_deletes_only_finished_instances(store: Store) -> None:
    start(store, "o-1")
    with pytest.raises(WorkflowStateError, match="o-1"):
        store.purge_instance("o-1")
    finish(store, "o-1")
    assert store.purge_instance("o-1") == 1
    assert store.get_instance("o-1") is None
    assert store.get_history("o-1") == []
    assert store.purge_instance("o-1") == 0


def test_purge_is_recursive_and_refused_while_a_child_runs(store: Store) -> None:
    start(store, "p")
    _start_child(store, "p", "p-c")
    assert store.child_instance_ids("p") == ["p-c"]
    _start_child(store, "p-c", "p-c-g")
    finish(store, "p-c-g")
    end(store, "p")
    with pytest.raises(WorkflowStateError, match="p-c"):
        store.purge_instance("p")
    assert store.get_instance("p") is not None  # nothing was deleted
    end(store, "p-c", OrchestrationStatus.TERMINATED)
    assert store.purge_instance("p") == 3
    assert [store.get_instance(i) for i in ("p", "p-c", "p-c-g")] == [None, None, None]


def test_purge_non_recursive_leaves_children(store: Store) -> None:
    start(store, "p")
    _start_child(store, "p", "p-c")
    end(store, "p")
    assert store.purge_instance("p", recursive=False) == 1
    assert store.get_instance("p-c") is not None


def test_an_instance_created_with_a_history_starts_running_with_it(
    store: Store, clock: FakeClock
) -> None:
    """A rerun: the copied history, its pending activities and timers, no start message."""
    history = [
        ExecutionStarted(name="wf", instance_id="re-1", execution_id="e2", input="3"),
        TaskScheduled(event_id=1, name="act", input="1"),
    ]
    far = datetime(2999, 1, 1, tzinfo=timezone.utc)
    store.create_instance(
        NewInstance(
            instance_id="re-1",
            name="wf",
            input="3",
            execution_id="e2",
            history=history,
            activities=[NewActivity("re-1", "e2", 1, "act", "1", "e2:1")],
            messages=[
                NewMessage(
                    "re-1", TimerFired(timer_id=2, fire_at=far), execution_id="e2", visible_at=far
                )
            ],
        )
    )
    record = store.get_instance("re-1")
    assert record is not None and record.status is RUNNING and record.history_len == 2
    assert kinds(store.get_history("re-1")) == ["ExecutionStarted", "TaskScheduled"]
    assert store.claim_orchestrations("w1", 10, 30) == []  # the timer is far away
    [task] = store.claim_activities("w1", 10, 30)
    assert (task.instance_id, task.task_id, task.name, task.input) == ("re-1", 1, "act", "1")
    assert store.next_wakeup() is not None
