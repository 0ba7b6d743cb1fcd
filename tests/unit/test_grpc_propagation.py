"""History propagation on the wire: the scopes of the SDK's actions and events, and the
``propagatedHistory`` of work items as daprd sends it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytest.importorskip("grpc")
pytest.importorskip("google.protobuf")

from treadle.core.actions import CreateSubOrchestration, ScheduleTask
from treadle.core.history import (
    ExecutionStarted,
    OrchestratorStarted,
    PropagatedChunk,
    Propagation,
    SubOrchestrationInstanceCreated,
    TaskCompleted,
    TaskScheduled,
)
from treadle.errors import InvalidInputError
from treadle.runtime.remote import RemoteTurn
from treadle.server._proto import history_events_pb2 as hpb
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server.grpc_codec import (
    action_from_proto,
    action_to_proto,
    history_event_from_proto,
    history_event_to_proto,
    propagation_to_proto,
)
from treadle.server.grpc_workers import activity_request, workflow_request
from treadle.store.base import ActivityWorkItem

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
EVENTS = (
    OrchestratorStarted(timestamp=T0),
    ExecutionStarted(timestamp=T0, name="parent", instance_id="p-1", execution_id="e"),
    TaskScheduled(event_id=1, timestamp=T0, name="validate", input='"m"', propagation_scope=0),
    TaskCompleted(timestamp=T0, task_scheduled_id=1, result='{"ok":true}'),
    SubOrchestrationInstanceCreated(
        event_id=2, timestamp=T0, name="pay", instance_id="c-1", propagation_scope=1
    ),
)
STORED = Propagation(
    scope=2,
    chunks=(
        PropagatedChunk("root-app", "r-1", "root", ()),
        PropagatedChunk("shop", "p-1", "parent", EVENTS),
    ),
)


def test_a_propagated_history_is_one_chunk_of_serialized_events_per_workflow() -> None:
    wire = propagation_to_proto(STORED)
    assert wire.scope == 2
    assert [(c.appId, c.instanceId, c.workflowName) for c in wire.chunks] == [
        ("root-app", "r-1", "root"),
        ("shop", "p-1", "parent"),
    ]
    back = []
    for raw in wire.chunks[1].rawEvents:
        event = hpb.HistoryEvent()
        event.ParseFromString(raw)
        back.append(history_event_from_proto(event))
    assert tuple(back) == EVENTS


def test_work_items_carry_the_history_beside_their_events() -> None:
    started = ExecutionStarted(
        timestamp=T0, name="pay", instance_id="c-1", execution_id="e2", propagated=STORED
    )
    request = workflow_request(RemoteTurn("c-1", "e2", "pay", [], [EVENTS[0], started]))
    assert request.HasField("propagatedHistory")
    assert request.propagatedHistory == propagation_to_proto(STORED)
    plain = workflow_request(RemoteTurn("p-1", "e", "parent", [], list(EVENTS[:2])))
    assert not plain.HasField("propagatedHistory")
    item = ActivityWorkItem(1, "p-1", "e", 3, "audit", None, "e:3", STORED)
    assert activity_request(item).propagatedHistory == propagation_to_proto(STORED)
    bare = ActivityWorkItem(1, "p-1", "e", 3, "audit", None, "e:3")
    assert not activity_request(bare).HasField("propagatedHistory")


def test_the_scope_of_an_sdk_call_round_trips() -> None:
    task = apb.WorkflowAction(
        id=4,
        scheduleTask=apb.ScheduleTaskAction(
            name="a", historyPropagationScope=opb.HISTORY_PROPAGATION_SCOPE_LINEAGE
        ),
    )
    action = action_from_proto(task)
    assert isinstance(action, ScheduleTask) and action.propagation_scope == 2
    assert action_to_proto(action) == task
    child = apb.WorkflowAction(
        id=5,
        createChildWorkflow=apb.CreateChildWorkflowAction(
            name="c",
            instanceId="c-1",
            historyPropagationScope=opb.HISTORY_PROPAGATION_SCOPE_OWN_HISTORY,
        ),
    )
    created = action_from_proto(child)
    assert isinstance(created, CreateSubOrchestration) and created.propagation_scope == 1
    assert action_to_proto(created) == child
    unset = action_from_proto(apb.WorkflowAction(id=6, scheduleTask=apb.ScheduleTaskAction()))
    assert isinstance(unset, ScheduleTask) and unset.propagation_scope == 0
    assert not action_to_proto(unset).scheduleTask.HasField("historyPropagationScope")


def test_an_unknown_scope_is_invalid_input() -> None:
    task = apb.WorkflowAction(id=4, scheduleTask=apb.ScheduleTaskAction(name="a"))
    # (a value a newer SDK might send: the enum's stubs know only the three)
    task.scheduleTask.historyPropagationScope = 7  # type: ignore[assignment]
    with pytest.raises(InvalidInputError, match="historyPropagationScope 7"):
        action_from_proto(task)


def test_recorded_scopes_are_in_the_events_the_sdk_replays() -> None:
    wire = history_event_to_proto(EVENTS[4])
    assert wire.childWorkflowInstanceCreated.historyPropagationScope == 1
    assert history_event_from_proto(wire) == EVENTS[4]
    assert not history_event_to_proto(EVENTS[2]).taskScheduled.HasField("historyPropagationScope")
