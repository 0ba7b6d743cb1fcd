"""Translation between the durabletask protobuf messages and treadle's core dataclasses.

Pure functions, no I/O: the gRPC sidecar (``treadle serve``) sends history to the official SDK
workers with :func:`history_event_to_proto` and turns their decisions back into core actions with
:func:`action_from_proto`. This module converts actions and re-exports the event and scalar
conversions (:mod:`treadle.server.grpc_events`, :mod:`treadle.server.grpc_values`), so it is the
one import the sidecar needs.

The message names are those of the protocol revision that dapr-ext-workflow 1.18.3 speaks
(``WorkflowAction``, ``createChildWorkflow``, ``completeWorkflow``...); older durabletask names
them ``OrchestratorAction``, ``createSubOrchestration``, ``completeOrchestration``... with the
same field numbers, so the wire format is the same. Malformed input raises
:class:`~treadle.errors.InvalidInputError`.
"""

from __future__ import annotations

from treadle.core.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ReportVersionNotAvailable,
    ScheduleTask,
    SendEvent,
)
from treadle.core.history import EventRaised, OrchestrationStatus
from treadle.errors import InvalidInputError
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server.grpc_events import (
    history_event_from_proto,
    history_event_to_proto,
    propagation_to_proto,
    target_app,
    version_from_proto,
    version_to_proto,
)
from treadle.server.grpc_values import (
    INDEFINITE_FIRE_AT,
    datetime_from_proto,
    datetime_to_proto,
    failure_from_proto,
    failure_to_proto,
    optional_string,
    status_from_proto,
    status_to_proto,
    string_value,
)

__all__ = [
    "INDEFINITE_FIRE_AT",
    "action_from_proto",
    "action_to_proto",
    "datetime_from_proto",
    "datetime_to_proto",
    "failure_from_proto",
    "failure_to_proto",
    "history_event_from_proto",
    "history_event_to_proto",
    "propagation_to_proto",
    "status_from_proto",
    "status_to_proto",
    "version_from_proto",
    "version_to_proto",
]

# What a worker may end an execution with (TERMINATED: the SDK's answer to executionTerminated).
_COMPLETION_STATUSES = frozenset(
    {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.TERMINATED,
        OrchestrationStatus.CONTINUED_AS_NEW,
    }
)


def action_from_proto(action: apb.WorkflowAction) -> Action:
    """Convert a worker's ``WorkflowAction`` (durabletask: ``OrchestratorAction``) to an action.

    Handles ``scheduleTask``, ``createTimer``, ``createChildWorkflow``, ``sendEvent``,
    ``completeWorkflow`` (with ``carryoverEvents``, which must all be ``eventRaised``) and
    ``workflowVersionNotAvailable`` (the worker has no code for the instance's version).

    Raises:
        InvalidInputError: the action is empty, of a kind the core has no equivalent for
            (``terminateWorkflow``, ``createDetachedWorkflow``), or malformed (a completion
            status a workflow cannot end with, a bad carryover event).
    """
    kind = action.WhichOneof("workflowActionType")
    match kind:
        case "scheduleTask":
            task = action.scheduleTask
            return ScheduleTask(
                id=action.id,
                name=task.name,
                input=optional_string(task, "input"),
                task_execution_id=task.taskExecutionId,
                propagation_scope=propagation_scope(action.id, task.historyPropagationScope),
                app_id=_target_of(action, task),
            )
        case "createTimer":
            return CreateTimer(id=action.id, fire_at=datetime_from_proto(action.createTimer.fireAt))
        case "createChildWorkflow":
            child = action.createChildWorkflow
            return CreateSubOrchestration(
                id=action.id,
                name=child.name,
                instance_id=child.instanceId,
                input=optional_string(child, "input"),
                propagation_scope=propagation_scope(action.id, child.historyPropagationScope),
                app_id=_target_of(action, child),
            )
        case "sendEvent":
            send = action.sendEvent
            return SendEvent(
                id=action.id,
                instance_id=send.instance.instanceId,
                name=send.name,
                input=optional_string(send, "data"),
            )
        case "completeWorkflow":
            return _complete_from_proto(action.id, action.completeWorkflow)
        case "workflowVersionNotAvailable":
            return ReportVersionNotAvailable(id=action.id)
        case None:
            raise InvalidInputError(f"action {action.id} is empty: it sets no action type")
        case _:
            raise InvalidInputError(
                f"action {action.id}: {kind} has no treadle equivalent; treadle serve supports "
                "scheduleTask, createTimer, createChildWorkflow, sendEvent, completeWorkflow and "
                "workflowVersionNotAvailable"
            )


def propagation_scope(action_id: int, value: int) -> int:
    """A ``HistoryPropagationScope`` as the core keeps it (0 none, 1 own history, 2 lineage).

    Raises:
        InvalidInputError: it is none of those.
    """
    if value not in (0, 1, 2):
        raise InvalidInputError(
            f"action {action_id}: historyPropagationScope {value} is not a scope this sidecar "
            "knows (NONE, OWN_HISTORY or LINEAGE)"
        )
    return value


def _target_of(
    action: apb.WorkflowAction, call: apb.ScheduleTaskAction | apb.CreateChildWorkflowAction
) -> str | None:
    """The app a call is routed to: the call's router, else the action's (the SDK sets both)."""
    for holder in (call, action):
        if holder.HasField("router"):
            app = target_app(holder.router)
            if app is not None:
                return app
    return None


def _complete_from_proto(action_id: int, complete: apb.CompleteWorkflowAction) -> Action:
    status = status_from_proto(complete.workflowStatus)
    if status not in _COMPLETION_STATUSES:
        raise InvalidInputError(
            f"action {action_id}: completeWorkflow with status {status.name}; a workflow can only "
            "end as COMPLETED, FAILED, TERMINATED or CONTINUED_AS_NEW"
        )
    carryover: list[EventRaised] = []
    for event in complete.carryoverEvents:
        converted = history_event_from_proto(event)
        if not isinstance(converted, EventRaised):
            raise InvalidInputError(
                f"action {action_id}: carryover event of kind {event.WhichOneof('eventType')}; "
                "only eventRaised events can be carried over to the next execution"
            )
        carryover.append(converted)
    return CompleteOrchestration(
        id=action_id,
        status=status,
        result=optional_string(complete, "result"),
        failure=(
            failure_from_proto(complete.failureDetails)
            if complete.HasField("failureDetails")
            else None
        ),
        carryover_events=tuple(carryover),
    )


def action_to_proto(action: Action) -> apb.WorkflowAction:
    """Convert a core action to a ``WorkflowAction`` (the inverse of :func:`action_from_proto`).

    Raises:
        InvalidInputError: the action is of a kind this codec does not know.
    """
    match action:
        case ScheduleTask():
            return apb.WorkflowAction(
                id=action.id,
                scheduleTask=apb.ScheduleTaskAction(
                    name=action.name,
                    input=string_value(action.input),
                    taskExecutionId=action.task_execution_id,
                    historyPropagationScope=action.propagation_scope or None,  # type: ignore[arg-type]
                    router=_router_to(action.app_id),
                ),
            )
        case CreateTimer():
            return apb.WorkflowAction(
                id=action.id,
                createTimer=apb.CreateTimerAction(fireAt=datetime_to_proto(action.fire_at)),
            )
        case CreateSubOrchestration():
            return apb.WorkflowAction(
                id=action.id,
                createChildWorkflow=apb.CreateChildWorkflowAction(
                    instanceId=action.instance_id,
                    name=action.name,
                    input=string_value(action.input),
                    historyPropagationScope=action.propagation_scope or None,  # type: ignore[arg-type]
                    router=_router_to(action.app_id),
                ),
            )
        case SendEvent():
            return apb.WorkflowAction(
                id=action.id,
                sendEvent=apb.SendEventAction(
                    instance=opb.WorkflowInstance(instanceId=action.instance_id),
                    name=action.name,
                    data=string_value(action.input),
                ),
            )
        case CompleteOrchestration():
            return apb.WorkflowAction(
                id=action.id,
                completeWorkflow=apb.CompleteWorkflowAction(
                    workflowStatus=status_to_proto(action.status),
                    result=string_value(action.result),
                    failureDetails=(
                        None if action.failure is None else failure_to_proto(action.failure)
                    ),
                    carryoverEvents=[history_event_to_proto(e) for e in action.carryover_events],
                ),
            )
        case ReportVersionNotAvailable():
            return apb.WorkflowAction(
                id=action.id,
                workflowVersionNotAvailable=apb.WorkflowVersionNotAvailableAction(),
            )
        case _:
            raise InvalidInputError(f"action {type(action).__name__} has no protobuf form")


def _router_to(app_id: str | None) -> opb.TaskRouter | None:
    return None if app_id is None else opb.TaskRouter(targetAppID=app_id)
