"""History events: core dataclasses <-> durabletask ``HistoryEvent`` messages.

The oneof names are those of the protocol revision that dapr-ext-workflow 1.18.3 speaks
(``workflowStarted``, ``childWorkflowInstanceCreated``...); older durabletask names them
``orchestratorStarted``, ``subOrchestrationInstanceCreated``... with the same field numbers.
The ``version`` of ``workflowStarted`` (a turn's workflow version and patches) is kept both
ways, as daprd records it. Fields the core does not model (task versions, trace contexts,
timer origins, tags, attestations) are dropped on the way in and left unset on the way out.

Apps travel in the envelope's ``router`` as daprd sends them: on ``executionStarted`` the source
is the parent's app (the instance's own for a top-level one) and the target the instance's app,
which is where the SDK learns its app id; on ``taskScheduled`` and
``childWorkflowInstanceCreated`` the target is the app the call named.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from treadle.core.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStalled,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInfo,
    Propagation,
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
from treadle.errors import InvalidInputError
from treadle.server._proto import history_events_pb2 as hpb
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server.grpc_values import (
    datetime_from_proto,
    datetime_to_proto,
    failure_from_proto,
    failure_to_proto,
    optional_string,
    status_from_proto,
    status_to_proto,
    string_value,
    trace_from_proto,
    trace_to_proto,
)

__all__ = [
    "history_event_from_proto",
    "history_event_to_proto",
    "propagation_to_proto",
    "target_app",
    "version_from_proto",
    "version_to_proto",
]

# The names of the StalledReason enum, the first being its default (PATCH_MISMATCH).
_STALLED_REASONS: tuple[str, ...] = tuple(opb.StalledReason.keys())


def history_event_to_proto(event: HistoryEvent) -> hpb.HistoryEvent:
    """Convert a core history event to a protobuf ``HistoryEvent``.

    ``ExecutionStalled.reason`` travels in the ``StalledReason`` enum: a reason that is not one
    of its names is sent as the enum's default and prefixed to the description instead.

    Raises:
        InvalidInputError: the event is of a kind this codec does not know.
    """
    match event:
        case OrchestratorStarted():
            out = hpb.HistoryEvent(workflowStarted=_orchestrator_started_to_proto(event))
        case OrchestratorCompleted():
            out = hpb.HistoryEvent(workflowCompleted=hpb.WorkflowCompletedEvent())
        case ExecutionStarted():
            out = hpb.HistoryEvent(executionStarted=_execution_started_to_proto(event))
        case ExecutionCompleted():
            out = hpb.HistoryEvent(executionCompleted=_execution_completed_to_proto(event))
        case ExecutionTerminated():
            out = hpb.HistoryEvent(
                executionTerminated=hpb.ExecutionTerminatedEvent(
                    input=string_value(event.input), recurse=event.recurse
                )
            )
        case ExecutionSuspended():
            out = hpb.HistoryEvent(
                executionSuspended=hpb.ExecutionSuspendedEvent(input=string_value(event.input))
            )
        case ExecutionResumed():
            out = hpb.HistoryEvent(
                executionResumed=hpb.ExecutionResumedEvent(input=string_value(event.input))
            )
        case TaskScheduled():
            out = hpb.HistoryEvent(taskScheduled=_task_scheduled_to_proto(event))
        case TaskCompleted():
            out = hpb.HistoryEvent(taskCompleted=_task_completed_to_proto(event))
        case TaskFailed():
            out = hpb.HistoryEvent(taskFailed=_task_failed_to_proto(event))
        case TimerCreated():
            out = hpb.HistoryEvent(
                timerCreated=hpb.TimerCreatedEvent(fireAt=datetime_to_proto(event.fire_at))
            )
        case TimerFired():
            out = hpb.HistoryEvent(
                timerFired=hpb.TimerFiredEvent(
                    fireAt=datetime_to_proto(event.fire_at), timerId=event.timer_id
                )
            )
        case SubOrchestrationInstanceCreated():
            out = hpb.HistoryEvent(childWorkflowInstanceCreated=_child_created_to_proto(event))
        case SubOrchestrationInstanceCompleted():
            out = hpb.HistoryEvent(
                childWorkflowInstanceCompleted=hpb.ChildWorkflowInstanceCompletedEvent(
                    taskScheduledId=event.task_scheduled_id, result=string_value(event.result)
                )
            )
        case SubOrchestrationInstanceFailed():
            out = hpb.HistoryEvent(
                childWorkflowInstanceFailed=hpb.ChildWorkflowInstanceFailedEvent(
                    taskScheduledId=event.task_scheduled_id,
                    failureDetails=failure_to_proto(event.failure),
                )
            )
        case EventRaised():
            out = hpb.HistoryEvent(
                eventRaised=hpb.EventRaisedEvent(name=event.name, input=string_value(event.input))
            )
        case EventSent():
            out = hpb.HistoryEvent(
                eventSent=hpb.EventSentEvent(
                    instanceId=event.instance_id, name=event.name, input=string_value(event.input)
                )
            )
        case ExecutionStalled():
            out = hpb.HistoryEvent(executionStalled=_execution_stalled_to_proto(event))
        case _:
            raise InvalidInputError(f"history event {type(event).__name__} has no protobuf form")
    router = _router_of(event)
    if router is not None:
        out.router.CopyFrom(router)
    out.eventId = event.event_id
    out.timestamp.CopyFrom(datetime_to_proto(event.timestamp))
    return out


def _router_of(event: HistoryEvent) -> opb.TaskRouter | None:
    """The ``router`` daprd puts on an event naming apps, or None."""
    match event:
        case ExecutionStarted(app_id=str(app)):
            source = event.parent.app_id if event.parent is not None else None
            return opb.TaskRouter(sourceAppID=source or app, targetAppID=app)
        case TaskScheduled(app_id=str(app)) | SubOrchestrationInstanceCreated(app_id=str(app)):
            return opb.TaskRouter(targetAppID=app)
        case _:
            return None


def target_app(router: opb.TaskRouter) -> str | None:
    """The app a ``router`` sends work to (its ``targetAppID``), or None when it names none."""
    return (router.targetAppID or None) if router.HasField("targetAppID") else None


def propagation_to_proto(value: Propagation) -> hpb.PropagatedHistory:
    """A propagated history as daprd sends it to SDK workers: each chunk's events serialized
    one by one (``rawEvents``), with its app id, instance id and workflow name.

    Raises:
        InvalidInputError: an event has no protobuf form.
    """
    return hpb.PropagatedHistory(
        scope=value.scope,  # type: ignore[arg-type]
        chunks=[
            hpb.PropagatedHistoryChunk(
                rawEvents=[history_event_to_proto(e).SerializeToString() for e in chunk.events],
                appId=chunk.app_id,
                instanceId=chunk.instance_id,
                workflowName=chunk.workflow_name,
            )
            for chunk in value.chunks
        ],
    )


def _execution_started_to_proto(event: ExecutionStarted) -> hpb.ExecutionStartedEvent:
    started = hpb.ExecutionStartedEvent(
        name=event.name,
        input=string_value(event.input),
        workflowInstance=opb.WorkflowInstance(
            instanceId=event.instance_id, executionId=string_value(event.execution_id)
        ),
    )
    if event.parent is not None:
        started.parentInstance.CopyFrom(
            opb.ParentInstanceInfo(
                taskScheduledId=event.parent.task_scheduled_id,
                name=string_value(event.parent.name or None),
                workflowInstance=opb.WorkflowInstance(
                    instanceId=event.parent.instance_id,
                    executionId=string_value(event.parent.execution_id),
                ),
                appID=event.parent.app_id,
            )
        )
    if event.scheduled_start is not None:
        started.scheduledStartTimestamp.CopyFrom(datetime_to_proto(event.scheduled_start))
    if event.trace is not None:
        started.parentTraceContext.CopyFrom(trace_to_proto(event.trace))
        if event.trace.span_id:
            started.workflowSpanID.value = event.trace.span_id
    return started


def _execution_completed_to_proto(event: ExecutionCompleted) -> hpb.ExecutionCompletedEvent:
    return hpb.ExecutionCompletedEvent(
        workflowStatus=status_to_proto(event.status),
        result=string_value(event.result),
        failureDetails=None if event.failure is None else failure_to_proto(event.failure),
    )


def _task_scheduled_to_proto(event: TaskScheduled) -> hpb.TaskScheduledEvent:
    scheduled = hpb.TaskScheduledEvent(
        name=event.name, input=string_value(event.input), taskExecutionId=event.task_execution_id
    )
    if event.propagation_scope:
        scheduled.historyPropagationScope = event.propagation_scope  # type: ignore[assignment]
    return scheduled


def _task_completed_to_proto(event: TaskCompleted) -> hpb.TaskCompletedEvent:
    return hpb.TaskCompletedEvent(
        taskScheduledId=event.task_scheduled_id,
        result=string_value(event.result),
        taskExecutionId=event.task_execution_id,
    )


def _task_failed_to_proto(event: TaskFailed) -> hpb.TaskFailedEvent:
    return hpb.TaskFailedEvent(
        taskScheduledId=event.task_scheduled_id,
        failureDetails=failure_to_proto(event.failure),
        taskExecutionId=event.task_execution_id,
    )


def _child_created_to_proto(
    event: SubOrchestrationInstanceCreated,
) -> hpb.ChildWorkflowInstanceCreatedEvent:
    created = hpb.ChildWorkflowInstanceCreatedEvent(
        instanceId=event.instance_id, name=event.name, input=string_value(event.input)
    )
    if event.propagation_scope:
        created.historyPropagationScope = event.propagation_scope  # type: ignore[assignment]
    return created


def _execution_stalled_to_proto(event: ExecutionStalled) -> hpb.ExecutionStalledEvent:
    if event.reason in _STALLED_REASONS:
        reason, description = event.reason, event.description
    else:
        # The enum cannot carry it: keep it readable in the description.
        reason = _STALLED_REASONS[0]
        description = f"{event.reason}: {event.description}" if event.reason else event.description
    stalled = hpb.ExecutionStalledEvent(reason=reason)
    if description:
        stalled.description = description
    return stalled


def _scope(value: int) -> int:
    """A recorded propagation scope; one this codec does not know is kept as none (the
    event records a call already made)."""
    return value if value in (1, 2) else 0


def history_event_from_proto(event: hpb.HistoryEvent) -> HistoryEvent:
    """Convert a protobuf ``HistoryEvent`` to a core history event.

    Raises:
        InvalidInputError: the event is empty or of a kind the core does not model
            (``continueAsNew``, ``detachedWorkflowInstanceCreated``).
    """
    kind = event.WhichOneof("eventType")
    build = _FROM_PROTO.get(kind) if kind is not None else None
    if build is None:
        raise InvalidInputError(
            f"history event {event.eventId} of kind {kind or '(none)'} has no treadle equivalent"
        )
    return build(event, event.eventId, datetime_from_proto(event.timestamp))


def _orchestrator_started(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    started = event.workflowStarted
    version = version_from_proto(started.version) if started.HasField("version") else None
    return OrchestratorStarted(event_id=event_id, timestamp=ts, version=version)


def _orchestrator_started_to_proto(event: OrchestratorStarted) -> hpb.WorkflowStartedEvent:
    if event.version is None:
        return hpb.WorkflowStartedEvent()
    return hpb.WorkflowStartedEvent(version=version_to_proto(event.version))


def version_to_proto(version: WorkflowVersion) -> opb.WorkflowVersion:
    """The protobuf ``WorkflowVersion`` of a recorded version (name and patches)."""
    out = opb.WorkflowVersion(patches=list(version.patches))
    if version.name is not None:
        out.name = version.name
    return out


def version_from_proto(version: opb.WorkflowVersion) -> WorkflowVersion:
    """A protobuf ``WorkflowVersion`` (a worker's answer, or a recorded turn's) as the core's."""
    name = version.name if version.HasField("name") else None
    return WorkflowVersion(name=name, patches=tuple(version.patches))


def _orchestrator_completed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    return OrchestratorCompleted(event_id=event_id, timestamp=ts)


def _execution_started(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    started = event.executionStarted
    parent = None
    if started.HasField("parentInstance"):
        info = started.parentInstance
        parent = ParentInfo(
            instance_id=info.workflowInstance.instanceId,
            execution_id=info.workflowInstance.executionId.value,
            task_scheduled_id=info.taskScheduledId,
            name=info.name.value,
            app_id=info.appID or None,
        )
    app = (event.router.targetAppID or event.router.sourceAppID) if event.HasField("router") else ""
    return ExecutionStarted(
        event_id=event_id,
        timestamp=ts,
        name=started.name,
        instance_id=started.workflowInstance.instanceId,
        execution_id=started.workflowInstance.executionId.value,
        input=optional_string(started, "input"),
        parent=parent,
        scheduled_start=(
            datetime_from_proto(started.scheduledStartTimestamp)
            if started.HasField("scheduledStartTimestamp")
            else None
        ),
        app_id=app or None,
        trace=trace_from_proto(started.parentTraceContext, started.workflowSpanID.value)
        if started.HasField("parentTraceContext")
        else None,
    )


def _execution_completed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    completed = event.executionCompleted
    return ExecutionCompleted(
        event_id=event_id,
        timestamp=ts,
        status=status_from_proto(completed.workflowStatus),
        result=optional_string(completed, "result"),
        failure=(
            failure_from_proto(completed.failureDetails)
            if completed.HasField("failureDetails")
            else None
        ),
    )


def _execution_terminated(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    terminated = event.executionTerminated
    return ExecutionTerminated(
        event_id=event_id,
        timestamp=ts,
        input=optional_string(terminated, "input"),
        recurse=terminated.recurse,
    )


def _execution_suspended(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    return ExecutionSuspended(
        event_id=event_id,
        timestamp=ts,
        input=optional_string(event.executionSuspended, "input"),
    )


def _execution_resumed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    return ExecutionResumed(
        event_id=event_id,
        timestamp=ts,
        input=optional_string(event.executionResumed, "input"),
    )


def _task_scheduled(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    scheduled = event.taskScheduled
    return TaskScheduled(
        event_id=event_id,
        timestamp=ts,
        name=scheduled.name,
        input=optional_string(scheduled, "input"),
        task_execution_id=scheduled.taskExecutionId,
        propagation_scope=_scope(scheduled.historyPropagationScope),
        app_id=target_app(event.router) if event.HasField("router") else None,
    )


def _task_completed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    completed = event.taskCompleted
    return TaskCompleted(
        event_id=event_id,
        timestamp=ts,
        task_scheduled_id=completed.taskScheduledId,
        result=optional_string(completed, "result"),
        task_execution_id=completed.taskExecutionId,
    )


def _task_failed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    failed = event.taskFailed
    return TaskFailed(
        event_id=event_id,
        timestamp=ts,
        task_scheduled_id=failed.taskScheduledId,
        failure=failure_from_proto(failed.failureDetails),
        task_execution_id=failed.taskExecutionId,
    )


def _timer_created(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    return TimerCreated(
        event_id=event_id,
        timestamp=ts,
        fire_at=datetime_from_proto(event.timerCreated.fireAt),
    )


def _timer_fired(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    fired = event.timerFired
    return TimerFired(
        event_id=event_id,
        timestamp=ts,
        timer_id=fired.timerId,
        fire_at=datetime_from_proto(fired.fireAt),
    )


def _child_created(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    created = event.childWorkflowInstanceCreated
    return SubOrchestrationInstanceCreated(
        event_id=event_id,
        timestamp=ts,
        name=created.name,
        instance_id=created.instanceId,
        input=optional_string(created, "input"),
        propagation_scope=_scope(created.historyPropagationScope),
        app_id=target_app(event.router) if event.HasField("router") else None,
    )


def _child_completed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    completed = event.childWorkflowInstanceCompleted
    return SubOrchestrationInstanceCompleted(
        event_id=event_id,
        timestamp=ts,
        task_scheduled_id=completed.taskScheduledId,
        result=optional_string(completed, "result"),
    )


def _child_failed(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    failed = event.childWorkflowInstanceFailed
    return SubOrchestrationInstanceFailed(
        event_id=event_id,
        timestamp=ts,
        task_scheduled_id=failed.taskScheduledId,
        failure=failure_from_proto(failed.failureDetails),
    )


def _event_raised(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    raised = event.eventRaised
    return EventRaised(
        event_id=event_id,
        timestamp=ts,
        name=raised.name,
        input=optional_string(raised, "input"),
    )


def _event_sent(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    sent = event.eventSent
    return EventSent(
        event_id=event_id,
        timestamp=ts,
        instance_id=sent.instanceId,
        name=sent.name,
        input=optional_string(sent, "input"),
    )


def _execution_stalled(event: hpb.HistoryEvent, event_id: int, ts: datetime) -> HistoryEvent:
    stalled = event.executionStalled
    return ExecutionStalled(
        event_id=event_id,
        timestamp=ts,
        reason=opb.StalledReason.Name(stalled.reason),
        description=stalled.description,
    )


_FROM_PROTO: dict[str, Callable[[hpb.HistoryEvent, int, datetime], HistoryEvent]] = {
    "workflowStarted": _orchestrator_started,
    "workflowCompleted": _orchestrator_completed,
    "executionStarted": _execution_started,
    "executionCompleted": _execution_completed,
    "executionTerminated": _execution_terminated,
    "executionSuspended": _execution_suspended,
    "executionResumed": _execution_resumed,
    "taskScheduled": _task_scheduled,
    "taskCompleted": _task_completed,
    "taskFailed": _task_failed,
    "timerCreated": _timer_created,
    "timerFired": _timer_fired,
    "childWorkflowInstanceCreated": _child_created,
    "childWorkflowInstanceCompleted": _child_completed,
    "childWorkflowInstanceFailed": _child_failed,
    "eventRaised": _event_raised,
    "eventSent": _event_sent,
    "executionStalled": _execution_stalled,
}
