"""The protobuf <-> core translation of the gRPC sidecar (treadle.server.grpc_codec)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("grpc")
pytest.importorskip("google.protobuf")

from google.protobuf import timestamp_pb2, wrappers_pb2

from treadle.core.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ReportVersionNotAvailable,
    ScheduleTask,
    SendEvent,
)
from treadle.core.history import (
    EVENT_TYPES,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStalled,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInfo,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    WorkflowVersion,
)
from treadle.errors import FailureDetails, InvalidInputError
from treadle.server import grpc_codec as codec
from treadle.server._proto import history_events_pb2 as hpb
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server._proto import orchestrator_service_pb2 as spb

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
BOOM = FailureDetails(message="boom", error_type="ValueError", stack_trace="Traceback...")
BOOM_NO_TRACE = FailureDetails(message="no trace", error_type="builtins.KeyError")


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


SAMPLE_EVENTS: list[HistoryEvent] = [
    OrchestratorStarted(timestamp=T0),
    OrchestratorCompleted(timestamp=_at(1)),
    ExecutionStarted(
        timestamp=T0,
        name="order",
        instance_id="o-1",
        execution_id="e-1",
        input='{"id": 7}',
    ),
    ExecutionStarted(
        timestamp=T0,
        name="child",
        instance_id="o-1:0001",
        execution_id="e-2",
        input=None,
        parent=ParentInfo(instance_id="o-1", execution_id="e-1", task_scheduled_id=1, name="order"),
        scheduled_start=_at(60),
    ),
    ExecutionStarted(
        timestamp=T0,
        name="child",
        instance_id="o-1:0002",
        execution_id="e-3",
        parent=ParentInfo("o-1", "e-1", 2, "order", app_id="orders"),
        app_id="shipping",
    ),
    ExecutionStarted(timestamp=T0, name="top", instance_id="t", execution_id="e", app_id="a"),
    ExecutionCompleted(timestamp=_at(2), status=OrchestrationStatus.COMPLETED, result='"ok"'),
    ExecutionCompleted(timestamp=_at(2), status=OrchestrationStatus.FAILED, failure=BOOM),
    ExecutionCompleted(timestamp=_at(2), status=OrchestrationStatus.CONTINUED_AS_NEW, result="3"),
    ExecutionTerminated(timestamp=_at(3), input='"stopped"', recurse=True),
    ExecutionTerminated(timestamp=_at(3), input=None, recurse=False),
    ExecutionSuspended(timestamp=_at(4), input='"pause"'),
    ExecutionResumed(timestamp=_at(5)),
    TaskScheduled(event_id=1, timestamp=_at(6), name="charge", input="12", task_execution_id="x"),
    TaskScheduled(event_id=2, timestamp=_at(6), name="noinput"),
    TaskScheduled(event_id=7, timestamp=_at(6), name="charge", app_id="billing"),
    TaskCompleted(
        timestamp=_at(7), task_scheduled_id=1, result='{"a": [1, 2]}', task_execution_id="x"
    ),
    TaskCompleted(timestamp=_at(7), task_scheduled_id=2, result=None),
    TaskFailed(timestamp=_at(8), task_scheduled_id=1, failure=BOOM, task_execution_id="x"),
    TaskFailed(timestamp=_at(8), task_scheduled_id=2, failure=BOOM_NO_TRACE),
    TimerCreated(event_id=3, timestamp=_at(9), fire_at=_at(3600)),
    TimerCreated(event_id=4, timestamp=_at(9), fire_at=codec.INDEFINITE_FIRE_AT),
    TimerFired(timestamp=_at(3600), timer_id=3, fire_at=_at(3600)),
    SubOrchestrationInstanceCreated(
        event_id=5, timestamp=_at(10), name="child", instance_id="o-1:0005", input="[]"
    ),
    SubOrchestrationInstanceCreated(
        event_id=8, timestamp=_at(10), name="child", instance_id="o-1:0008", app_id="shipping"
    ),
    SubOrchestrationInstanceCompleted(timestamp=_at(11), task_scheduled_id=5, result="null"),
    SubOrchestrationInstanceFailed(timestamp=_at(12), task_scheduled_id=5, failure=BOOM),
    EventRaised(timestamp=_at(13), name="Approval", input="true"),
    EventRaised(timestamp=_at(13), name="empty", input=""),
    EventRaised(timestamp=_at(13), name="none", input=None),
    EventSent(event_id=6, timestamp=_at(14), instance_id="o-2", name="ping", input='"hi"'),
    ExecutionStalled(timestamp=_at(15), reason="VERSION_NOT_AVAILABLE", description="v2 missing"),
    ExecutionStalled(timestamp=_at(15), reason="PATCH_MISMATCH"),
    OrchestratorStarted(timestamp=T0, version=WorkflowVersion("v1", ("p1", "p2"))),
    OrchestratorStarted(timestamp=T0, version=WorkflowVersion(None, ("p1",))),
    OrchestratorStarted(timestamp=T0, version=WorkflowVersion("v2")),
]


def test_samples_cover_every_event_kind() -> None:
    assert {type(e) for e in SAMPLE_EVENTS} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trip(event: HistoryEvent) -> None:
    message = codec.history_event_to_proto(event)
    wire = hpb.HistoryEvent.FromString(message.SerializeToString())
    assert codec.history_event_from_proto(wire) == event


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=lambda e: type(e).__name__)
def test_event_id_and_timestamp_travel_in_the_envelope(event: HistoryEvent) -> None:
    message = codec.history_event_to_proto(event)
    assert message.eventId == event.event_id
    assert message.timestamp.ToDatetime(tzinfo=timezone.utc) == event.timestamp


def test_event_kinds_use_the_sdk_oneof_names() -> None:
    expected = {
        OrchestratorStarted: "workflowStarted",
        OrchestratorCompleted: "workflowCompleted",
        ExecutionStarted: "executionStarted",
        ExecutionCompleted: "executionCompleted",
        ExecutionTerminated: "executionTerminated",
        ExecutionSuspended: "executionSuspended",
        ExecutionResumed: "executionResumed",
        TaskScheduled: "taskScheduled",
        TaskCompleted: "taskCompleted",
        TaskFailed: "taskFailed",
        TimerCreated: "timerCreated",
        TimerFired: "timerFired",
        SubOrchestrationInstanceCreated: "childWorkflowInstanceCreated",
        SubOrchestrationInstanceCompleted: "childWorkflowInstanceCompleted",
        SubOrchestrationInstanceFailed: "childWorkflowInstanceFailed",
        EventRaised: "eventRaised",
        EventSent: "eventSent",
        ExecutionStalled: "executionStalled",
    }
    for event in SAMPLE_EVENTS:
        message = codec.history_event_to_proto(event)
        assert message.WhichOneof("eventType") == expected[type(event)]


def test_execution_started_fields() -> None:
    message = codec.history_event_to_proto(SAMPLE_EVENTS[3])
    started = message.executionStarted
    assert started.name == "child"
    assert not started.HasField("input")
    assert started.workflowInstance.instanceId == "o-1:0001"
    assert started.workflowInstance.executionId.value == "e-2"
    assert started.parentInstance.taskScheduledId == 1
    assert started.parentInstance.name.value == "order"
    assert started.parentInstance.workflowInstance.instanceId == "o-1"
    assert started.parentInstance.workflowInstance.executionId.value == "e-1"
    assert started.scheduledStartTimestamp.ToDatetime(tzinfo=timezone.utc) == _at(60)


def test_payloads_none_unset_and_empty_string_kept() -> None:
    none = codec.history_event_to_proto(EventRaised(name="a", input=None)).eventRaised
    empty = codec.history_event_to_proto(EventRaised(name="a", input="")).eventRaised
    text = codec.history_event_to_proto(EventRaised(name="a", input='"x"')).eventRaised
    assert not none.HasField("input")
    assert empty.HasField("input") and empty.input.value == ""
    assert text.input.value == '"x"'


def test_failure_details_fields() -> None:
    message = codec.failure_to_proto(BOOM)
    assert (message.errorType, message.errorMessage) == ("ValueError", "boom")
    assert message.stackTrace.value == "Traceback..."
    assert not codec.failure_to_proto(BOOM_NO_TRACE).HasField("stackTrace")
    assert codec.failure_from_proto(message) == BOOM
    assert codec.failure_from_proto(codec.failure_to_proto(BOOM_NO_TRACE)) == BOOM_NO_TRACE


def test_failure_from_sdk_message_drops_what_the_core_does_not_model() -> None:
    message = opb.TaskFailureDetails(
        errorType="RuntimeError",
        errorMessage="outer",
        stackTrace=wrappers_pb2.StringValue(value=""),
        innerFailure=opb.TaskFailureDetails(errorType="KeyError", errorMessage="inner"),
        isNonRetriable=True,
    )
    assert codec.failure_from_proto(message) == FailureDetails(
        message="outer", error_type="RuntimeError", stack_trace=""
    )


@pytest.mark.parametrize("status", list(OrchestrationStatus), ids=lambda s: s.name)
def test_status_values_match_the_proto_enum(status: OrchestrationStatus) -> None:
    value = codec.status_to_proto(status)
    assert opb.OrchestrationStatus.Name(value) == f"ORCHESTRATION_STATUS_{status.name}"
    assert value == status.value
    assert codec.status_from_proto(value) is status


def test_unknown_status_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="unknown orchestration status 99"):
        codec.status_from_proto(99)


def test_naive_datetimes_are_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5, 6)
    assert codec.datetime_to_proto(naive) == codec.datetime_to_proto(
        naive.replace(tzinfo=timezone.utc)
    )
    other_zone = timezone(timedelta(hours=2))
    assert codec.datetime_from_proto(
        codec.datetime_to_proto(datetime(2026, 1, 2, 5, 4, 5, tzinfo=other_zone))
    ) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_indefinite_timer_keeps_the_sdk_sentinel() -> None:
    # dapr-ext-workflow schedules an "optional" timer at 9999-12-31T23:59:59.999999999Z for an
    # indefinite wait_for_external_event and recognises it on replay by that exact value.
    sentinel = timestamp_pb2.Timestamp(seconds=253402300799, nanos=999999999)
    action = apb.WorkflowAction(
        id=4,
        createTimer=apb.CreateTimerAction(
            fireAt=sentinel, externalEvent=hpb.TimerOriginExternalEvent(name="approval")
        ),
    )
    timer = codec.action_from_proto(action)
    assert timer == CreateTimer(id=4, fire_at=codec.INDEFINITE_FIRE_AT)
    created = codec.history_event_to_proto(TimerCreated(event_id=4, fire_at=timer.fire_at))
    assert created.timerCreated.fireAt == sentinel


def test_out_of_range_timestamp_is_invalid_input() -> None:
    event = hpb.HistoryEvent(
        timerFired=hpb.TimerFiredEvent(
            timerId=1, fireAt=timestamp_pb2.Timestamp(seconds=253402300800)
        )
    )
    with pytest.raises(InvalidInputError, match="out of range"):
        codec.history_event_from_proto(event)


def test_stalled_reason_outside_the_enum_goes_into_the_description() -> None:
    event = ExecutionStalled(reason="nondeterminism", description="step 3 changed")
    stalled = codec.history_event_to_proto(event).executionStalled
    assert opb.StalledReason.Name(stalled.reason) == "PATCH_MISMATCH"
    assert stalled.description == "nondeterminism: step 3 changed"


@pytest.mark.parametrize(
    "kind", ["continueAsNew", "detachedWorkflowInstanceCreated", None], ids=str
)
def test_event_kinds_without_core_equivalent_are_invalid_input(kind: str | None) -> None:
    message = hpb.HistoryEvent(eventId=9)
    if kind == "continueAsNew":
        message.continueAsNew.CopyFrom(hpb.ContinueAsNewEvent())
    elif kind == "detachedWorkflowInstanceCreated":
        message.detachedWorkflowInstanceCreated.instanceId = "d-1"
    with pytest.raises(InvalidInputError, match="no treadle equivalent"):
        codec.history_event_from_proto(message)


def test_sdk_shaped_history_converts() -> None:
    # The shapes dapr-ext-workflow's own helpers build (timestamps left at the epoch).
    events = [
        hpb.HistoryEvent(eventId=-1, workflowStarted=hpb.WorkflowStartedEvent()),
        hpb.HistoryEvent(
            eventId=-1,
            executionStarted=hpb.ExecutionStartedEvent(
                name="wf",
                input=wrappers_pb2.StringValue(value="1"),
                workflowInstance=opb.WorkflowInstance(instanceId="i"),
            ),
        ),
        hpb.HistoryEvent(
            eventId=1,
            taskScheduled=hpb.TaskScheduledEvent(
                name="act", input=wrappers_pb2.StringValue(value="2")
            ),
        ),
    ]
    converted = [codec.history_event_from_proto(e) for e in events]
    assert converted[1] == ExecutionStarted(
        timestamp=datetime(1970, 1, 1, tzinfo=timezone.utc),
        name="wf",
        instance_id="i",
        execution_id="",
        input="1",
    )
    assert converted[2] == TaskScheduled(
        event_id=1, timestamp=datetime(1970, 1, 1, tzinfo=timezone.utc), name="act", input="2"
    )


# ---------------------------------------------------------------------------------------------
# Actions

SAMPLE_ACTIONS: list[Action] = [
    ScheduleTask(id=1, name="charge", input='{"amount": 5}', task_execution_id="5f0c"),
    ScheduleTask(id=2, name="noinput"),
    ScheduleTask(id=14, name="charge", task_execution_id="5f0d", app_id="billing"),
    CreateTimer(id=3, fire_at=_at(30)),
    CreateTimer(id=4, fire_at=codec.INDEFINITE_FIRE_AT),
    CreateSubOrchestration(id=5, name="child", instance_id="o-1:0005", input='"x"'),
    CreateSubOrchestration(id=6, name="child", instance_id="fixed-id"),
    CreateSubOrchestration(id=15, name="child", instance_id="o-1:000f", app_id="shipping"),
    SendEvent(id=7, instance_id="o-2", name="ping", input="1"),
    SendEvent(id=8, instance_id="o-2", name="ping"),
    CompleteOrchestration(id=9, status=OrchestrationStatus.COMPLETED, result='"done"'),
    CompleteOrchestration(id=10, status=OrchestrationStatus.COMPLETED),
    CompleteOrchestration(id=11, status=OrchestrationStatus.FAILED, failure=BOOM),
    CompleteOrchestration(id=12, status=OrchestrationStatus.TERMINATED, result='"why"'),
    CompleteOrchestration(
        id=13,
        status=OrchestrationStatus.CONTINUED_AS_NEW,
        result="4",
        carryover_events=(
            EventRaised(name="more", input="1"),
            EventRaised(name="more", input=None),
        ),
    ),
    ReportVersionNotAvailable(id=14),
]


@pytest.mark.parametrize("action", SAMPLE_ACTIONS, ids=lambda a: type(a).__name__)
def test_action_round_trip(action: Action) -> None:
    message = codec.action_to_proto(action)
    wire = apb.WorkflowAction.FromString(message.SerializeToString())
    assert codec.action_from_proto(wire) == action


def test_sdk_shaped_actions_convert() -> None:
    # What dapr-ext-workflow 1.18.3 sends: routers, origins and propagation scopes are dropped.
    router = opb.TaskRouter(sourceAppID="app")
    schedule = apb.WorkflowAction(
        id=1,
        router=router,
        scheduleTask=apb.ScheduleTaskAction(
            name="act",
            input=wrappers_pb2.StringValue(value="[1]"),
            router=router,
            taskExecutionId="abc",
        ),
    )
    assert codec.action_from_proto(schedule) == ScheduleTask(
        id=1, name="act", input="[1]", task_execution_id="abc"
    )
    timer = apb.WorkflowAction(
        id=2,
        createTimer=apb.CreateTimerAction(
            fireAt=codec.datetime_to_proto(_at(5)),
            activityRetry=hpb.TimerOriginActivityRetry(taskExecutionId="abc"),
        ),
    )
    assert codec.action_from_proto(timer) == CreateTimer(id=2, fire_at=_at(5))
    failed = apb.WorkflowAction(
        id=-1,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_FAILED,
            result=wrappers_pb2.StringValue(value=""),
            failureDetails=opb.TaskFailureDetails(errorType="TypeError", errorMessage="bad"),
        ),
    )
    assert codec.action_from_proto(failed) == CompleteOrchestration(
        id=-1,
        status=OrchestrationStatus.FAILED,
        result="",
        failure=FailureDetails(message="bad", error_type="TypeError"),
    )


def test_sdk_calls_to_another_app_carry_it_in_their_router() -> None:
    # dapr-ext-workflow sets the router on the call and on the action, with its own app as the
    # source and the app the code named as the target.
    router = opb.TaskRouter(sourceAppID="orders", targetAppID="billing")
    schedule = apb.WorkflowAction(
        id=1,
        router=router,
        scheduleTask=apb.ScheduleTaskAction(name="charge", router=router, taskExecutionId="t"),
    )
    assert codec.action_from_proto(schedule) == ScheduleTask(
        id=1, name="charge", task_execution_id="t", app_id="billing"
    )
    child = apb.WorkflowAction(
        id=2,
        router=opb.TaskRouter(sourceAppID="orders", targetAppID="shipping"),
        createChildWorkflow=apb.CreateChildWorkflowAction(name="ship", instanceId="o:2"),
    )
    assert codec.action_from_proto(child) == CreateSubOrchestration(
        id=2, name="ship", instance_id="o:2", app_id="shipping"
    )
    own = apb.WorkflowAction(
        id=3,
        createChildWorkflow=apb.CreateChildWorkflowAction(
            name="ship", instanceId="o:3", router=opb.TaskRouter(sourceAppID="orders")
        ),
    )
    assert codec.action_from_proto(own) == CreateSubOrchestration(
        id=3, name="ship", instance_id="o:3", app_id=None
    )


def test_execution_started_tells_the_sdk_its_app_as_daprd_does() -> None:
    # The SDK takes its app id from this router: the target if set, else the source.
    child = ExecutionStarted(
        name="ship",
        instance_id="o:2",
        execution_id="e",
        parent=ParentInfo("o", "e0", 2, "order", app_id="orders"),
        app_id="shipping",
    )
    message = codec.history_event_to_proto(child)
    assert message.router.sourceAppID == "orders"
    assert message.router.targetAppID == "shipping"
    assert message.executionStarted.parentInstance.appID == "orders"
    top = codec.history_event_to_proto(
        ExecutionStarted(name="order", instance_id="o", execution_id="e", app_id="orders")
    )
    assert (top.router.sourceAppID, top.router.targetAppID) == ("orders", "orders")
    plain = codec.history_event_to_proto(
        ExecutionStarted(name="o", instance_id="o", execution_id="e")
    )
    assert not plain.HasField("router")
    scheduled = codec.history_event_to_proto(TaskScheduled(name="charge", app_id="billing"))
    assert scheduled.router.targetAppID == "billing"


def test_continue_as_new_carryover_events() -> None:
    carried = hpb.HistoryEvent(
        eventId=-1,
        eventRaised=hpb.EventRaisedEvent(name="next", input=wrappers_pb2.StringValue(value="2")),
    )
    action = apb.WorkflowAction(
        id=3,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
            result=wrappers_pb2.StringValue(value="7"),
            carryoverEvents=[carried],
        ),
    )
    result = codec.action_from_proto(action)
    assert isinstance(result, CompleteOrchestration)
    assert result.status is OrchestrationStatus.CONTINUED_AS_NEW
    assert result.result == "7"
    assert result.carryover_events == (
        EventRaised(timestamp=datetime(1970, 1, 1, tzinfo=timezone.utc), name="next", input="2"),
    )


def test_carryover_of_another_kind_is_invalid_input() -> None:
    action = apb.WorkflowAction(
        id=3,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
            carryoverEvents=[hpb.HistoryEvent(timerFired=hpb.TimerFiredEvent(timerId=1))],
        ),
    )
    with pytest.raises(InvalidInputError, match="only eventRaised"):
        codec.action_from_proto(action)


@pytest.mark.parametrize("status", ["ORCHESTRATION_STATUS_RUNNING", "ORCHESTRATION_STATUS_PENDING"])
def test_completion_with_a_non_final_status_is_invalid_input(status: str) -> None:
    action = apb.WorkflowAction(
        id=1, completeWorkflow=apb.CompleteWorkflowAction(workflowStatus=status)
    )
    with pytest.raises(InvalidInputError, match="can only end as"):
        codec.action_from_proto(action)


@pytest.mark.parametrize(
    "action",
    [
        apb.WorkflowAction(
            id=1, terminateWorkflow=apb.TerminateWorkflowAction(instanceId="o-2", recurse=True)
        ),
        apb.WorkflowAction(
            id=2, createDetachedWorkflow=apb.CreateDetachedWorkflowAction(instanceId="d", name="w")
        ),
    ],
    ids=["terminateWorkflow", "createDetachedWorkflow"],
)
def test_action_kinds_without_core_equivalent_are_invalid_input(
    action: apb.WorkflowAction,
) -> None:
    kind = action.WhichOneof("workflowActionType")
    with pytest.raises(InvalidInputError, match=f"action {action.id}: {kind} has no treadle"):
        codec.action_from_proto(action)


def test_empty_action_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="sets no action type"):
        codec.action_from_proto(apb.WorkflowAction(id=5))


# ---------------------------------------------------------------------------------------------
# The generated modules


def test_service_has_no_proto_package() -> None:
    service = spb.DESCRIPTOR.services_by_name["TaskHubSidecarService"]
    assert service.full_name == "TaskHubSidecarService"
    methods = {m.name for m in service.methods}
    assert {
        "Hello",
        "GetWorkItems",
        "CompleteOrchestratorTask",
        "CompleteActivityTask",
        "StartInstance",
        "GetInstance",
        "WaitForInstanceStart",
        "WaitForInstanceCompletion",
        "RaiseEvent",
        "TerminateInstance",
        "SuspendInstance",
        "ResumeInstance",
        "PurgeInstances",
    } <= methods
    assert service.methods_by_name["GetWorkItems"].server_streaming


def test_generated_modules_live_in_the_treadle_package() -> None:
    assert spb.WorkItem.__module__ == "treadle.server._proto.orchestrator_service_pb2"
    assert hpb.HistoryEvent.__module__ == "treadle.server._proto.history_events_pb2"


def test_worker_version_as_the_sdk_sends_it() -> None:
    # dapr-ext-workflow 1.18.3 sets WorkflowResponse.version only when it has a name or patches
    response = spb.WorkflowResponse(
        instanceId="o-1", version=opb.WorkflowVersion(patches=["p1", "p1", "p2"])
    )
    wire = spb.WorkflowResponse.FromString(response.SerializeToString())
    assert codec.version_from_proto(wire.version) == WorkflowVersion(None, ("p1", "p1", "p2"))
    named = opb.WorkflowVersion(name="v1")
    assert codec.version_from_proto(named) == WorkflowVersion("v1")
    assert codec.version_to_proto(WorkflowVersion("v1")) == named
    assert not codec.version_to_proto(WorkflowVersion(None, ("p",))).HasField("name")


def test_recorded_version_reaches_the_sdk_in_workflow_started() -> None:
    event = OrchestratorStarted(timestamp=T0, version=WorkflowVersion("v1", ("p1",)))
    proto = codec.history_event_to_proto(event)
    assert proto.workflowStarted.version.name == "v1"
    assert list(proto.workflowStarted.version.patches) == ["p1"]
    assert not codec.history_event_to_proto(OrchestratorStarted()).workflowStarted.HasField(
        "version"
    )
