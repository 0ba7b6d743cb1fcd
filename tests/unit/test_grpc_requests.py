"""The work items of ``treadle serve`` encoded with each instance's past kept in protobuf form:
every turn's bytes are the message :func:`workflow_request` builds from the whole history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from treadle.core.history import (
    EventRaised,
    EventSent,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    Propagation,
    TaskCompleted,
    TaskScheduled,
)
from treadle.runtime.remote import RemoteTurn
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server.grpc_requests import WorkItemEncoder
from treadle.server.grpc_workers import workflow_request

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def started(iid: str, execution_id: str = "e1") -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=T0, name="wf", instance_id=iid, execution_id=execution_id, input="1"
    )


def step(n: int) -> list[HistoryEvent]:
    """The events one step of a chain adds: its turn's start, the task scheduled, its result."""
    return [
        OrchestratorStarted(timestamp=at(n)),
        TaskScheduled(timestamp=at(n), event_id=n, name="inc", input=str(n)),
        OrchestratorCompleted(timestamp=at(n)),
        TaskCompleted(timestamp=at(n), task_scheduled_id=n, result=str(n + 1)),
    ]


def decoded(data: bytes) -> spb.WorkItem:
    return spb.WorkItem.FromString(data)


def expected(turn: RemoteTurn, token: str) -> spb.WorkItem:
    return spb.WorkItem(workflowRequest=workflow_request(turn), completionToken=token)


def test_each_turn_of_a_chain_is_the_whole_request_while_only_new_events_are_encoded() -> None:
    encoder = WorkItemEncoder()
    past: list[HistoryEvent] = []
    new: list[HistoryEvent] = [OrchestratorStarted(timestamp=T0), started("c")]
    for n in range(1, 6):
        turn = RemoteTurn("c", "e1", "wf", list(past), new)
        assert decoded(encoder.workflow_item(turn, f"t{n}")) == expected(turn, f"t{n}")
        past.extend(new)
        events = step(n)
        past.extend(events[1:3])
        new = [events[0], events[3]]
    assert len(encoder) == 1


def test_suspensions_hidden_from_the_sdk_are_hidden_across_turns() -> None:
    encoder = WorkItemEncoder()
    first: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=T0),
        started("s"),
        ExecutionResumed(timestamp=T0),  # not suspended: hidden
        EventSent(timestamp=T0, event_id=0, instance_id="other", name="n"),
        ExecutionSuspended(timestamp=T0),
    ]
    turn = RemoteTurn("s", "e1", "wf", [], first)
    assert decoded(encoder.workflow_item(turn, "a")) == expected(turn, "a")
    # the next turn: the suspension is in the past now; a second one is hidden, a resume shown
    second: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=at(1)),
        ExecutionSuspended(timestamp=at(1)),
        ExecutionResumed(timestamp=at(1)),
        EventRaised(timestamp=at(1), name="go", input="true"),
    ]
    turn = RemoteTurn("s", "e1", "wf", first, second)
    assert decoded(encoder.workflow_item(turn, "b")) == expected(turn, "b")
    third = [OrchestratorStarted(timestamp=at(2)), ExecutionResumed(timestamp=at(2))]
    turn = RemoteTurn("s", "e1", "wf", first + second, third)
    assert decoded(encoder.workflow_item(turn, "c")) == expected(turn, "c")


def test_another_run_or_a_history_that_does_not_continue_is_encoded_whole() -> None:
    encoder = WorkItemEncoder()
    past = [OrchestratorStarted(timestamp=T0), started("r"), *step(1)]
    turn = RemoteTurn("r", "e1", "wf", past, [OrchestratorStarted(timestamp=at(9))])
    encoder.workflow_item(turn, "a")
    rewritten = [OrchestratorStarted(timestamp=T0), started("r"), *step(2)]  # same length
    turn = RemoteTurn("r", "e1", "wf", rewritten, [OrchestratorStarted(timestamp=at(9))])
    assert decoded(encoder.workflow_item(turn, "b")) == expected(turn, "b")
    fresh = [OrchestratorStarted(timestamp=at(10)), started("r", "e2")]
    turn = RemoteTurn("r", "e2", "wf", [], fresh)
    assert decoded(encoder.workflow_item(turn, "c")) == expected(turn, "c")


def test_the_propagated_history_travels_beside_the_events_of_every_turn() -> None:
    encoder = WorkItemEncoder()
    received = Propagation(scope=1, chunks=())
    start = ExecutionStarted(
        timestamp=T0, name="wf", instance_id="p", execution_id="e1", propagated=received
    )
    first: list[HistoryEvent] = [OrchestratorStarted(timestamp=T0), start]
    turn = RemoteTurn("p", "e1", "wf", [], first)
    assert decoded(encoder.workflow_item(turn, "a")) == expected(turn, "a")
    turn = RemoteTurn("p", "e1", "wf", first, [OrchestratorStarted(timestamp=at(1))])
    item = decoded(encoder.workflow_item(turn, "b"))
    assert item == expected(turn, "b")
    assert item.workflowRequest.HasField("propagatedHistory")


def test_the_kept_encodings_are_bounded() -> None:
    encoder = WorkItemEncoder(kept=3)
    for i in range(10):
        iid = f"i{i}"
        encoder.workflow_item(RemoteTurn(iid, "e1", "wf", [], [started(iid)]), "t")
    assert len(encoder) == 3
    encoder.forget("i9")
    assert len(encoder) == 2


def test_a_long_chain_with_large_values_is_the_whole_request_at_every_turn() -> None:
    """Events and messages longer than a one-byte length (multi-byte varints), and pasts
    kept as a view into the message sent before."""
    encoder = WorkItemEncoder()
    big = '"' + "x" * 300 + '"'
    past: list[HistoryEvent] = []
    new: list[HistoryEvent] = [OrchestratorStarted(timestamp=T0), started("c")]
    for n in range(1, 80):
        turn = RemoteTurn("c", "e1", "wf", list(past), new)
        data = encoder.workflow_item(turn, f"t{n}")
        assert decoded(data) == expected(turn, f"t{n}")
        past.extend(new)
        past.append(TaskScheduled(timestamp=at(n), event_id=n, name="inc", input=big))
        past.append(OrchestratorCompleted(timestamp=at(n)))
        new = [
            OrchestratorStarted(timestamp=at(n)),
            TaskCompleted(timestamp=at(n), task_scheduled_id=n, result=big),
        ]
    assert len(data) > 40_000


def test_an_activity_item_is_the_work_item_with_its_request_and_token() -> None:
    request = spb.ActivityRequest(name="inc", taskId=7, taskExecutionId="x" * 200)
    data = WorkItemEncoder.activity_item(request, "tok")
    assert decoded(data) == spb.WorkItem(activityRequest=request, completionToken="tok")
