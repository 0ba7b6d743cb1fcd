"""History propagation: a workflow hands its recorded history to a child workflow or activity.

``ctx.call_activity(..., propagation=PropagationScope.OWN_HISTORY)`` (or
``call_child_workflow``) gives the callee the caller's history events up to and including
that call; ``LINEAGE`` adds the histories the caller itself received, its ancestors first.
The callee reads them with ``ctx.get_propagated_history()``, through the query API of the
Dapr SDK (:class:`PropagatedHistory`, :class:`WorkflowResult`, :class:`ActivityResult`,
:class:`ChildWorkflowResult`), over treadle's own history events.

What is stored is a :class:`~treadle.core.history.Propagation` (a child run's in its
``ExecutionStarted``, an activity's with its task); :func:`assemble` builds one as daprd does:
one chunk per workflow, tagged with its app id, instance id and workflow name.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import field

from treadle.core.history import (
    ExecutionStarted,
    HistoryEvent,
    PropagatedChunk,
    Propagation,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from treadle.core.records import record_class
from treadle.errors import FailureDetails, PropagationNotFoundError

__all__ = [
    "ActivityResult",
    "ChildWorkflowResult",
    "HistoryChunk",
    "PropagatedHistory",
    "PropagationScope",
    "WorkflowResult",
    "assemble",
    "carried_over",
]


class PropagationScope(enum.Enum):
    """How much history a call hands to its callee (values as in durabletask's protobuf).

    * ``NONE``: nothing (the default).
    * ``OWN_HISTORY``: the caller's own events only; anything it received is dropped (a trust
      boundary: the callee sees its immediate caller alone).
    * ``LINEAGE``: the caller's events and every history it received, its ancestors first (a
      chain of custody).
    """

    NONE = 0
    OWN_HISTORY = 1
    LINEAGE = 2


def scope_value(scope: PropagationScope | None) -> int:
    """The stored value of a call's ``propagation`` argument (0 for None).

    Raises:
        TypeError: it is not a :class:`PropagationScope`.
    """
    if scope is None:
        return 0
    if not isinstance(scope, PropagationScope):
        raise TypeError(f"propagation takes a PropagationScope, not {type(scope).__name__}")
    return scope.value


def assemble(
    scope: int,
    *,
    own_events: Sequence[HistoryEvent],
    received: Propagation | None,
    app_id: str,
    instance_id: str,
) -> Propagation | None:
    """The history a call with ``scope`` propagates (None for scope 0), as daprd builds it.

    Args:
        scope: the call's :class:`PropagationScope` value.
        own_events: the caller's history up to and including the event of the call.
        received: the history the caller itself received, if any (kept with ``LINEAGE``).
        app_id: the caller's app id (it tags the caller's chunk).
        instance_id: the caller's instance id.
    """
    if scope == PropagationScope.NONE.value:
        return None
    chunks: list[PropagatedChunk] = []
    if scope == PropagationScope.LINEAGE.value and received is not None:
        chunks.extend(received.chunks)
    if own_events:
        # A chunk holds the caller's own events: what it received stays in the chunks above,
        # not nested again in its ExecutionStarted.
        events = tuple(
            dataclasses.replace(e, propagated=None)
            if isinstance(e, ExecutionStarted) and e.propagated is not None
            else e
            for e in own_events
        )
        name = next((e.name for e in events if isinstance(e, ExecutionStarted)), "")
        chunks.append(PropagatedChunk(app_id, instance_id, name, events))
    return Propagation(scope=scope, chunks=tuple(chunks))


def carried_over(
    received: Propagation | None,
    *,
    own_events: Sequence[HistoryEvent],
    app_id: str,
    instance_id: str,
) -> Propagation | None:
    """What the next run of a workflow that continues as new receives: nothing if this run
    received nothing (a root workflow starts clean), else this run's history assembled with
    the scope it was given, as daprd does."""
    if received is None:
        return None
    return assemble(
        received.scope,
        own_events=own_events,
        received=received,
        app_id=app_id,
        instance_id=instance_id,
    )


@record_class
class ActivityResult:
    """One activity call of a workflow, rebuilt from propagated history.

    Attributes:
        name: the activity's name.
        started: always True (it was scheduled).
        completed: it returned.
        failed: it raised.
        input: its input as JSON text, if any.
        output: its result as JSON text, if it returned one.
        error: why it failed, if it failed.
    """

    name: str
    started: bool
    completed: bool
    failed: bool
    input: str | None
    output: str | None
    error: FailureDetails | None


@record_class
class ChildWorkflowResult:
    """One child workflow call of a workflow, rebuilt from propagated history.

    Attributes:
        name: the child's workflow name.
        started: always True (it was created).
        completed: it completed.
        failed: it failed.
        output: its result as JSON text, if it returned one.
        error: why it failed, if it failed.
    """

    name: str
    started: bool
    completed: bool
    failed: bool
    output: str | None
    error: FailureDetails | None


def _activity(events: Sequence[HistoryEvent], scheduled: TaskScheduled) -> ActivityResult:
    # Matched on the scheduling event's id: retries of one call share a task execution id.
    completed = failed = False
    output: str | None = None
    error: FailureDetails | None = None
    for e in events:
        if isinstance(e, TaskCompleted) and e.task_scheduled_id == scheduled.event_id:
            completed, output = True, e.result or None
        elif isinstance(e, TaskFailed) and e.task_scheduled_id == scheduled.event_id:
            failed, error = True, e.failure
    return ActivityResult(
        name=scheduled.name,
        started=True,
        completed=completed,
        failed=failed,
        input=scheduled.input or None,
        output=output,
        error=error,
    )


def _child(
    events: Sequence[HistoryEvent], created: SubOrchestrationInstanceCreated
) -> ChildWorkflowResult:
    completed = failed = False
    output: str | None = None
    error: FailureDetails | None = None
    for e in events:
        if isinstance(e, SubOrchestrationInstanceCompleted) and (
            e.task_scheduled_id == created.event_id
        ):
            completed, output = True, e.result or None
        elif isinstance(e, SubOrchestrationInstanceFailed) and (
            e.task_scheduled_id == created.event_id
        ):
            failed, error = True, e.failure
    return ChildWorkflowResult(
        name=created.name,
        started=True,
        completed=completed,
        failed=failed,
        output=output,
        error=error,
    )


@record_class
class WorkflowResult:
    """One workflow's chunk of a propagated history; query its calls by name (the most recent
    last).

    Attributes:
        instance_id: the workflow instance.
        app_id: the app it ran in.
        name: its workflow name.
    """

    instance_id: str
    app_id: str
    name: str
    _events: list[HistoryEvent] = field(repr=False)

    @property
    def events(self) -> list[HistoryEvent]:
        """The chunk's history events, oldest first."""
        return self._events

    def get_activities_by_name(self, name: str) -> list[ActivityResult]:
        """Every call of the activity ``name`` in this chunk, in the order they were made
        (empty if none)."""
        return [
            _activity(self._events, e)
            for e in self._events
            if isinstance(e, TaskScheduled) and e.name == name
        ]

    def get_last_activity_by_name(self, name: str) -> ActivityResult:
        """The most recent call of the activity ``name`` in this chunk.

        Raises:
            PropagationNotFoundError: the workflow called no activity of that name.
        """
        found = self.get_activities_by_name(name)
        if not found:
            raise PropagationNotFoundError(
                f"no activity named {name!r} in propagated history for workflow {self.name!r}"
            )
        return found[-1]

    def get_child_workflows_by_name(self, name: str) -> list[ChildWorkflowResult]:
        """Every call of the child workflow ``name`` in this chunk, in order (empty if none)."""
        return [
            _child(self._events, e)
            for e in self._events
            if isinstance(e, SubOrchestrationInstanceCreated) and e.name == name
        ]

    def get_last_child_workflow_by_name(self, name: str) -> ChildWorkflowResult:
        """The most recent call of the child workflow ``name`` in this chunk.

        Raises:
            PropagationNotFoundError: the workflow called no child workflow of that name.
        """
        found = self.get_child_workflows_by_name(name)
        if not found:
            raise PropagationNotFoundError(
                f"no child workflow named {name!r} in propagated history for workflow {self.name!r}"
            )
        return found[-1]


@record_class
class HistoryChunk:
    """Where one workflow's events sit in :attr:`PropagatedHistory.events`.

    Attributes:
        app_id: the app the workflow ran in.
        instance_id: the workflow instance.
        workflow_name: its workflow name.
        start_event_index: the index of its first event.
        event_count: how many events it has.
    """

    app_id: str
    instance_id: str
    workflow_name: str
    start_event_index: int
    event_count: int


class PropagatedHistory:
    """The history a workflow or activity received from its caller
    (``ctx.get_propagated_history()``).

    One chunk per workflow, in execution order: the oldest ancestor first, the immediate
    caller last. The ``get_*`` methods slice it by app, instance or workflow name.

    Attributes:
        events: every propagated event, chunk after chunk (read-only: the chunks index it).
        scope: the scope the caller propagated it with.
    """

    def __init__(
        self,
        events: list[HistoryEvent],
        scope: PropagationScope,
        chunks: list[HistoryChunk],
    ) -> None:
        self.events = events
        self.scope = scope
        self._chunks = chunks

    @classmethod
    def from_propagation(cls, stored: Propagation) -> PropagatedHistory:
        """The query view of a stored propagated history."""
        events: list[HistoryEvent] = []
        chunks: list[HistoryChunk] = []
        for chunk in stored.chunks:
            start = len(events)
            events.extend(chunk.events)
            chunks.append(
                HistoryChunk(
                    app_id=chunk.app_id,
                    instance_id=chunk.instance_id,
                    workflow_name=chunk.workflow_name,
                    start_event_index=start,
                    event_count=len(chunk.events),
                )
            )
        return cls(events, PropagationScope(stored.scope), chunks)

    def get_app_ids(self) -> list[str]:
        """The app ids of the chain, in order, each once."""
        return list(dict.fromkeys(c.app_id for c in self._chunks))

    def _chunk_events(self, chunk: HistoryChunk) -> list[HistoryEvent]:
        return self.events[chunk.start_event_index : chunk.start_event_index + chunk.event_count]

    def get_events_by_app_id(self, app_id: str) -> list[HistoryEvent]:
        """The events of the workflows of app ``app_id``, in execution order."""
        return [e for c in self._chunks if c.app_id == app_id for e in self._chunk_events(c)]

    def get_events_by_instance_id(self, instance_id: str) -> list[HistoryEvent]:
        """The events of workflow instance ``instance_id``, in execution order."""
        return [
            e for c in self._chunks if c.instance_id == instance_id for e in self._chunk_events(c)
        ]

    def get_events_by_workflow_name(self, workflow_name: str) -> list[HistoryEvent]:
        """The events of the workflows named ``workflow_name``, in execution order."""
        return [
            e
            for c in self._chunks
            if c.workflow_name == workflow_name
            for e in self._chunk_events(c)
        ]

    def _result(self, chunk: HistoryChunk) -> WorkflowResult:
        return WorkflowResult(
            instance_id=chunk.instance_id,
            app_id=chunk.app_id,
            name=chunk.workflow_name,
            _events=self._chunk_events(chunk),
        )

    def get_workflows(self) -> list[WorkflowResult]:
        """Every workflow of the chain: the oldest ancestor first, the immediate caller last."""
        return [self._result(c) for c in self._chunks]

    def get_workflows_by_name(self, name: str) -> list[WorkflowResult]:
        """The workflows of the chain named ``name``, in execution order (a name can recur:
        recursion, continue-as-new)."""
        return [self._result(c) for c in self._chunks if c.workflow_name == name]

    def get_last_workflow_by_name(self, name: str) -> WorkflowResult:
        """The most recent workflow of the chain named ``name``.

        Raises:
            PropagationNotFoundError: no workflow of the chain has that name.
        """
        found = self.get_workflows_by_name(name)
        if not found:
            raise PropagationNotFoundError(f"no workflow named {name!r} in propagated history")
        return found[-1]

    def __repr__(self) -> str:
        names = ", ".join(f"{c.workflow_name}@{c.app_id}" for c in self._chunks)
        return f"PropagatedHistory(scope={self.scope.name}, workflows=[{names}])"
