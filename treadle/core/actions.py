"""Actions: what a workflow turn asks the engine to do.

They mirror durabletask's ``OrchestratorAction`` so that local workflows and SDK workers
(through ``treadle serve``) are committed by one code path. Every action but
``CompleteOrchestration`` and ``ReportVersionNotAvailable`` becomes a history event with the
action's id as its event id.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime, timedelta

from treadle.core.history import (
    EPOCH,
    EventRaised,
    EventSent,
    HistoryEvent,
    OrchestrationStatus,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from treadle.core.records import record_class
from treadle.errors import FailureDetails


@record_class(kw_only=True)
class Action:
    """Base of every action.

    Attributes:
        id: the action's sequence id within the execution.
    """

    id: int


@record_class(kw_only=True)
class ScheduleTask(Action):
    """Run an activity.

    Attributes:
        app_id: the app whose workers run it (durabletask's router ``targetAppID``); None
            runs it in the calling instance's own app.
    """

    name: str
    input: str | None = None
    task_execution_id: str = ""
    propagation_scope: int = 0
    """Hand the activity this workflow's history (a ``PropagationScope`` value; 0: no)."""
    app_id: str | None = None
    heartbeat_timeout: timedelta | None = None
    """How long the activity may go without a heartbeat before another worker takes it over
    (its lease lasts at most this long; each ``ctx.heartbeat()`` renews it), if set."""
    timeout: timedelta | None = None
    """Fail each attempt with a TimeoutError once it has run this long (start-to-close: from
    when a worker takes it, not from when it was scheduled), if set."""


@record_class(kw_only=True)
class CreateTimer(Action):
    """Fire a durable timer at ``fire_at``."""

    fire_at: datetime


@record_class(kw_only=True)
class CreateSubOrchestration(Action):
    """Start a child workflow.

    Attributes:
        app_id: the app whose workers run the child (durabletask's router ``targetAppID``);
            None runs it in the parent's own app.
    """

    name: str
    instance_id: str
    input: str | None = None
    propagation_scope: int = 0
    """Hand the child this workflow's history (a ``PropagationScope`` value; 0: no)."""
    app_id: str | None = None
    timeout: timedelta | None = None
    """Fail the child's run with a TimeoutError if it has not finished this long after it
    was started, if set."""


@record_class(kw_only=True)
class SendEvent(Action):
    """Raise an event on another instance."""

    instance_id: str
    name: str
    input: str | None = None


@record_class(kw_only=True)
class CompleteOrchestration(Action):
    """Finish the execution: completed, failed, or continued as new."""

    status: OrchestrationStatus
    result: str | None = None
    failure: FailureDetails | None = None
    carryover_events: tuple[EventRaised, ...] = field(default=())


@record_class(kw_only=True)
class ReportVersionNotAvailable(Action):
    """The worker has no code for the version the instance runs: stall the instance until a
    worker that has it takes it (durabletask's ``WorkflowVersionNotAvailableAction``)."""


def action_to_event(action: Action, timestamp: datetime = EPOCH) -> HistoryEvent | None:
    """The history event that records ``action``; None for ``CompleteOrchestration`` and
    ``ReportVersionNotAvailable``, which end the turn instead."""
    match action:
        case ScheduleTask():
            return TaskScheduled(
                event_id=action.id,
                timestamp=timestamp,
                name=action.name,
                input=action.input,
                task_execution_id=action.task_execution_id,
                propagation_scope=action.propagation_scope,
                app_id=action.app_id,
            )
        case CreateTimer():
            return TimerCreated(event_id=action.id, timestamp=timestamp, fire_at=action.fire_at)
        case CreateSubOrchestration():
            return SubOrchestrationInstanceCreated(
                event_id=action.id,
                timestamp=timestamp,
                name=action.name,
                instance_id=action.instance_id,
                input=action.input,
                propagation_scope=action.propagation_scope,
                app_id=action.app_id,
            )
        case SendEvent():
            return EventSent(
                event_id=action.id,
                timestamp=timestamp,
                instance_id=action.instance_id,
                name=action.name,
                input=action.input,
            )
        case CompleteOrchestration() | ReportVersionNotAvailable():
            return None
        case _:
            raise AssertionError(f"unhandled action {type(action).__name__}")
