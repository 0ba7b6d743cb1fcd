"""The steps of a run, folded from its history: the one model every picture is drawn from.

A *step* is what the workflow did or waited for: an activity (all its attempts), a timer, a
child workflow, an event it received or sent. :func:`fold` turns a history (or a prefix of
it: the state after any event, for stepping through a past run) into :class:`Steps`. Pure:
no I/O, no clock; "now" is passed in where a duration needs it.

Retries are attempts of one step: a retried call keeps its ``task_execution_id`` (or, from a
worker that sets none, its name), and the backoff timer that fired just before the next
attempt is counted in the step, not drawn as a timer of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import field
from datetime import datetime

from treadle.core.history import (
    EPOCH,
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
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from treadle.core.records import record_class

__all__ = ["Outcome", "Step", "StepKind", "Steps", "fold"]


class StepKind(enum.Enum):
    """What a step is."""

    ACTIVITY = "activity"
    TIMER = "timer"
    CHILD = "child"
    EVENT = "event"
    """An event the instance received."""
    SENT = "sent"
    """An event the instance sent to another."""


class Outcome(enum.Enum):
    """Where a step stands."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


@record_class(frozen=False)
class Step:
    """One thing the workflow did or waited for.

    Attributes:
        kind: activity, timer, child workflow, received or sent event.
        name: the activity, child workflow or event name ("" for a timer).
        event_id: the history event id that scheduled it (its first attempt); -1 for a
            received event.
        position: the index in the history of the event that began it.
        turn: the number of the turn that began it (its fan-out group).
        started_at: when it was scheduled (or received).
        ended_at: when its result arrived (None while pending).
        outcome: pending, completed or failed.
        attempts: how many times it was scheduled (retries + 1).
        fire_at: a timer's fire time.
        child_instance_id: a child workflow's instance id.
        detail: the result, error or payload as text (JSON for results).
        error_type: the error's type, for a failed step.
        backoff_s: seconds spent waiting between attempts.
    """

    kind: StepKind
    name: str
    event_id: int
    position: int
    turn: int
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome = Outcome.PENDING
    attempts: int = 1
    fire_at: datetime | None = None
    child_instance_id: str | None = None
    detail: str | None = None
    error_type: str | None = None
    backoff_s: float = 0.0
    execution_key: str = field(default="", repr=False)

    def duration_s(self, now: datetime | None = None) -> float | None:
        """Seconds from start to end (to ``now`` while pending; None if neither is known)."""
        end = self.ended_at or now
        return None if end is None else max(0.0, (end - self.started_at).total_seconds())

    @property
    def label(self) -> str:
        """A short name for pictures: the name, or ``timer`` for a timer."""
        return self.name or self.kind.value


@record_class(frozen=False)
class Steps:
    """A run as steps, with its start and end.

    Attributes:
        name: the workflow's name.
        instance_id: the instance's id.
        started_at: when the run started (None before its first event).
        ended_at: when it finished (None while running).
        status: RUNNING, SUSPENDED, or the final status.
        steps: every step, in the order they began.
        events_seen: how many history events were folded.
        suspended: whether the run is suspended after the last event folded.
        failure: the run's error (type: message) if it failed.
        awaited_events: the external events the code waits for (set by the caller, from
            :func:`~treadle.core.visual.awaiting.awaited_events`; history does not say).
    """

    name: str = ""
    instance_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    status: OrchestrationStatus = OrchestrationStatus.PENDING
    steps: list[Step] = field(default_factory=list)
    events_seen: int = 0
    suspended: bool = False
    failure: str | None = None
    awaited_events: list[str] = field(default_factory=list)

    def pending(self) -> list[Step]:
        """The steps still awaited (activities running, timers not fired, children)."""
        return [s for s in self.steps if s.outcome is Outcome.PENDING]

    def done(self) -> list[Step]:
        """The steps that have ended (completed or failed), oldest first."""
        return [s for s in self.steps if s.outcome is not Outcome.PENDING]


class _Folder:
    """Applies events one by one; holds the lookups the correlation rules need."""

    def __init__(self) -> None:
        self.out = Steps()
        self.by_event_id: dict[int, Step] = {}
        self.by_execution: dict[str, Step] = {}
        self.turn = 0
        self.turn_fired: list[Step] = []  # timers fired in the current turn
        self.position = 0
        self.turn_at = EPOCH

    def apply(self, event: HistoryEvent) -> None:
        """Fold one event into the steps."""
        match event:
            case OrchestratorStarted():
                self.turn += 1
                self.turn_fired = []
                self.turn_at = event.timestamp
            case ExecutionStarted():
                self._on_started(event)
            case TaskScheduled():
                self._on_task_scheduled(event)
            case TaskCompleted():
                self._end(event.task_scheduled_id, event.timestamp, Outcome.COMPLETED)
                self._set_detail(event.task_scheduled_id, event.result, None)
            case TaskFailed() | SubOrchestrationInstanceFailed():
                self._end(event.task_scheduled_id, event.timestamp, Outcome.FAILED)
                text = f"{event.failure.error_type}: {event.failure.message}"
                self._set_detail(event.task_scheduled_id, text, event.failure.error_type)
            case SubOrchestrationInstanceCompleted():
                self._end(event.task_scheduled_id, event.timestamp, Outcome.COMPLETED)
                self._set_detail(event.task_scheduled_id, event.result, None)
            case TimerCreated():
                self._add(
                    StepKind.TIMER, "", event.event_id, event.timestamp
                ).fire_at = event.fire_at
            case TimerFired():
                step = self._end(event.timer_id, event.timestamp, Outcome.COMPLETED)
                if step is not None:
                    self.turn_fired.append(step)
            case SubOrchestrationInstanceCreated():
                step = self._add(StepKind.CHILD, event.name, event.event_id, event.timestamp)
                step.child_instance_id = event.instance_id
                step.detail = event.input
            case EventRaised():
                step = self._add(StepKind.EVENT, event.name, -1, event.timestamp)
                step.ended_at, step.outcome, step.detail = (
                    event.timestamp,
                    Outcome.COMPLETED,
                    event.input,
                )
            case EventSent():
                step = self._add(StepKind.SENT, event.name, event.event_id, event.timestamp)
                step.ended_at, step.outcome = event.timestamp, Outcome.COMPLETED
                step.child_instance_id, step.detail = event.instance_id, event.input
            case _:
                self._on_lifecycle(event)

    def _on_started(self, event: ExecutionStarted) -> None:
        out = self.out
        out.name, out.instance_id = event.name, event.instance_id
        # (an event recorded without a time falls back on its turn's)
        out.started_at = event.timestamp if event.timestamp > EPOCH else self.turn_at
        out.status = OrchestrationStatus.RUNNING

    def _on_lifecycle(self, event: HistoryEvent) -> None:
        out = self.out
        if isinstance(event, ExecutionCompleted):
            out.status, out.ended_at = event.status, event.timestamp
            if event.failure is not None:
                out.failure = f"{event.failure.error_type}: {event.failure.message}"
        elif isinstance(event, ExecutionTerminated):
            out.status, out.ended_at = OrchestrationStatus.TERMINATED, event.timestamp
        elif isinstance(event, ExecutionSuspended):
            out.suspended = True
        elif isinstance(event, ExecutionResumed):
            out.suspended = False
        elif isinstance(event, ExecutionStalled):
            out.failure = event.description or event.reason

    def _on_task_scheduled(self, event: TaskScheduled) -> None:
        key = event.task_execution_id or f"name:{event.name}"
        # A worker that gives each attempt an id of its own is matched by name instead.
        previous = self.by_execution.get(key) or self.by_execution.get(f"name:{event.name}")
        if previous is not None and previous.outcome is Outcome.FAILED and self._retrying(previous):
            # A retry: the same step again, after the backoff timer that just fired.
            previous.attempts += 1
            previous.outcome, previous.ended_at = Outcome.PENDING, None
            self.by_event_id[event.event_id] = previous
            return
        step = self._add(StepKind.ACTIVITY, event.name, event.event_id, event.timestamp)
        step.detail, step.execution_key = event.input, key
        self.by_execution[key] = self.by_execution[f"name:{event.name}"] = step

    def _retrying(self, failed: Step) -> bool:
        """Whether a timer created after ``failed`` failed fired in this turn (its backoff);
        that timer then becomes part of the step."""
        for timer in self.turn_fired:
            if failed.ended_at is not None and timer.started_at >= failed.ended_at:
                self.out.steps.remove(timer)
                self.turn_fired.remove(timer)
                failed.backoff_s += timer.duration_s() or 0.0
                return True
        return False

    def _add(self, kind: StepKind, name: str, event_id: int, at: datetime) -> Step:
        step = Step(kind, name, event_id, self.position, self.turn, at)
        self.out.steps.append(step)
        if event_id >= 0:
            self.by_event_id[event_id] = step
        return step

    def _end(self, event_id: int, at: datetime, outcome: Outcome) -> Step | None:
        step = self.by_event_id.get(event_id)
        if step is None or step.outcome is not Outcome.PENDING:
            return None  # a second result of the same id is dropped, as replay does
        step.ended_at, step.outcome = at, outcome
        return step

    def _set_detail(self, event_id: int, text: str | None, error_type: str | None) -> None:
        step = self.by_event_id.get(event_id)
        if step is not None and step.ended_at is not None:
            step.detail, step.error_type = text, error_type


def fold(history: Sequence[HistoryEvent], *, upto: int | None = None) -> Steps:
    """The steps of a run after its first ``upto`` events (all of them by default).

    Args:
        history: the run's history events, oldest first.
        upto: how many events to fold (for the state after event ``upto - 1``).
    """
    folder = _Folder()
    events = history if upto is None else history[: max(0, upto)]
    for position, event in enumerate(events):
        folder.position = position
        folder.apply(event)
    folder.out.events_seen = len(events)
    if folder.out.suspended and not folder.out.status.is_terminal:
        folder.out.status = OrchestrationStatus.SUSPENDED
    return folder.out
