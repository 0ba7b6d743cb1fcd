"""The sidecar's work queues and history filter, in-process (no network), and the store's
handling of the SDK's never-firing timer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from treadle.core.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorCompleted,
    OrchestratorStarted,
    TimerFired,
)
from treadle.runtime.remote import RemoteTurn
from treadle.server.grpc_values import INDEFINITE_FIRE_AT
from treadle.server.grpc_workers import SidecarWorkers, events_for_sdk, workflow_request
from treadle.store import open_store
from treadle.store.base import ActivityWorkItem, NewInstance, NewMessage

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def turn(iid: str, new: list[HistoryEvent] | None = None) -> RemoteTurn:
    started = ExecutionStarted(timestamp=T0, name="wf", instance_id=iid, execution_id="e1")
    return RemoteTurn(iid, "e1", "wf", [], new or [OrchestratorStarted(timestamp=T0), started])


def activity(iid: str, task_id: int, row: int = 1) -> ActivityWorkItem:
    return ActivityWorkItem(row, iid, "e1", task_id, "act", None, f"e1:{task_id}")


def test_work_is_dealt_round_robin_and_waits_for_a_first_worker() -> None:
    workers = SidecarWorkers()
    workers.submit_orchestration(turn("a"))  # nobody connected yet: it waits
    one, two = workers.connect("one"), workers.connect("two")
    for iid in ("b", "c", "d"):
        workers.submit_orchestration(turn(iid))
    got_one = [workers.next_ticket(one, 0) for _ in range(3)]
    got_two = [workers.next_ticket(two, 0) for _ in range(3)]
    ids_one = [t.instance_id for t in got_one if t is not None]
    ids_two = [t.instance_id for t in got_two if t is not None]
    assert ids_one == ["a", "c"] and ids_two == ["b", "d"]


def test_a_closed_streams_work_goes_back_to_the_front_for_the_others() -> None:
    workers = SidecarWorkers()
    one = workers.connect("one")
    workers.submit_activity(activity("x", 1))
    workers.submit_activity(activity("x", 2, row=2))
    sent = workers.next_ticket(one, 0)  # outstanding on one; task 2 still queued on one
    assert sent is not None and sent.activity is not None and sent.activity.task_id == 1
    two = workers.connect("two")
    workers.submit_activity(activity("y", 1, row=3))  # dealt to one or two
    workers.disconnect(one)
    assert one.closed and workers.next_ticket(one, 0) is None
    order = []
    while (ticket := workers.next_ticket(two, 0)) is not None:
        assert ticket.activity is not None
        order.append((ticket.activity.instance_id, ticket.activity.task_id))
    assert order[:2] == [("x", 1), ("x", 2)] and sorted(order) == [("x", 1), ("x", 2), ("y", 1)]
    assert workers.pending == 3


def test_completions_match_by_token_or_else_by_ids_on_the_callers_connection() -> None:
    workers = SidecarWorkers()
    stream = workers.connect("ipv4:127.0.0.1:1000")
    workers.submit_orchestration(turn("w"))
    workers.submit_activity(activity("w", 7))
    first = workers.next_ticket(stream, 0)
    second = workers.next_ticket(stream, 0)
    assert first is not None and second is not None
    assert workers.take_activity("", "w", 8, stream.peer) is None  # no such task
    assert workers.take_activity("", "w", 7, "ipv4:127.0.0.1:2000") is None  # not its stream
    assert workers.take_activity("", "w", 7, stream.peer) is second.activity  # no token: ids
    assert workers.take_workflow(first.token, "w", "anyone") is first.turn  # the token proves it
    assert workers.take_workflow(first.token, "w", "anyone") is None  # a duplicate answer
    assert workers.pending == 0 and not stream.outstanding


def test_work_never_handed_out_cannot_be_completed() -> None:
    # Regression: any client could complete a queued turn by instance id, or with a token
    # of another instance, and so record a forged output for an instance it was never given.
    workers = SidecarWorkers()
    workers.submit_orchestration(turn("queued"))  # no worker yet: never sent
    workers.submit_activity(activity("queued", 1))
    assert workers.take_workflow("", "queued", "") is None
    assert workers.take_activity("", "queued", 1, "") is None
    stream = workers.connect("ipv4:127.0.0.1:1000")
    workers.submit_orchestration(turn("p"))
    sent = [workers.next_ticket(stream, 0) for _ in range(3)]
    p = next(t for t in sent if t is not None and t.instance_id == "p")
    assert workers.take_workflow(p.token, "queued", stream.peer) is None  # another's token
    assert workers.take_workflow("made-up", "p", stream.peer) is None
    assert workers.pending == 3
    others = {t.token for t in sent if t is not None and t is not p}
    assert len(p.token) >= 20 and p.token not in others


def test_closing_ends_every_stream() -> None:
    workers = SidecarWorkers()
    stream = workers.connect()
    workers.close()
    assert stream.closed and workers.next_ticket(stream, 0.01) is None
    assert workers.connect().closed


def test_the_sdk_sees_no_engine_bookkeeping_and_no_unmatched_resume() -> None:
    os_ = OrchestratorStarted(timestamp=T0)
    past: list[HistoryEvent] = [
        os_,
        ExecutionStarted(timestamp=T0, name="wf", instance_id="i", execution_id="e1"),
        ExecutionResumed(timestamp=T0),  # not suspended: the SDK would fail on it
        EventSent(timestamp=T0, event_id=0, instance_id="other", name="n"),
        ExecutionSuspended(timestamp=T0),
        ExecutionSuspended(timestamp=T0),  # already suspended: the SDK would suspend twice
        OrchestratorCompleted(timestamp=T0),
    ]
    new: list[HistoryEvent] = [
        os_,
        EventRaised(timestamp=T0, name="e"),
        ExecutionResumed(timestamp=T0),
        ExecutionResumed(timestamp=T0),
        ExecutionCompleted(timestamp=T0, status=OrchestrationStatus.COMPLETED),
    ]
    kept_past, kept_new = events_for_sdk(past, new)
    assert [e.KIND for e in kept_past] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "ExecutionSuspended",
    ]
    assert [e.KIND for e in kept_new] == ["OrchestratorStarted", "EventRaised", "ExecutionResumed"]
    request = workflow_request(RemoteTurn("i", "e1", "wf", past, new))
    assert [e.WhichOneof("eventType") for e in request.newEvents] == [
        "workflowStarted",
        "eventRaised",
        "executionResumed",
    ]


def test_the_sdks_never_firing_timer_is_far_future_to_the_store(tmp_path: Path) -> None:
    # Regression: from_epoch(to_epoch(datetime.max)) overflowed to year 10000, and the
    # ValueError from next_wakeup() killed the runtime's dispatcher thread.
    store = open_store(f"sqlite:///{tmp_path / 'timer.db'}")
    try:
        store.create_instance(NewInstance("t", "wf", None, "e1"))
        fired = TimerFired(timestamp=T0, timer_id=0, fire_at=INDEFINITE_FIRE_AT)
        store.send_message(NewMessage("t", fired, execution_id="e1", visible_at=INDEFINITE_FIRE_AT))
        wakeup = store.next_wakeup()
        assert wakeup is not None and wakeup > datetime.now(timezone.utc) + timedelta(days=3650)
    finally:
        store.close()
