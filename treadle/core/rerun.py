"""Rerun from an event: a new instance that keeps a finished run's history up to one step.

The new run's history is the source's, cut just after the ``TaskScheduled`` event chosen
(its input optionally replaced). Every activity scheduled in that prefix without a recorded
result runs again, the chosen one included, and timers still pending fire at their time;
replay then carries the workflow on from there with the results recorded before the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from treadle.core.history import (
    ExecutionStarted,
    HistoryEvent,
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
from treadle.errors import InvalidInputError

_RESULTS = (
    TaskCompleted,
    TaskFailed,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
)


@record_class
class RerunPlan:
    """What a rerun starts with.

    Attributes:
        history: the new run's history (ExecutionStarted rewritten for the new instance).
        activities: the scheduled activities without a result: to run again.
        timers: the created timers that have not fired: to fire at their time.
    """

    history: list[HistoryEvent]
    activities: list[TaskScheduled]
    timers: list[TimerCreated]


def plan_rerun(
    history: Sequence[HistoryEvent],
    event_id: int,
    *,
    instance_id: str,
    execution_id: str,
    new_input: str | None = None,
    overwrite_input: bool = False,
) -> RerunPlan:
    """Cut ``history`` after the activity scheduled as ``event_id``, for a new instance.

    Args:
        history: the finished source run's history.
        event_id: the ``event_id`` of the source's ``TaskScheduled`` event to run again.
        instance_id: the new instance's id.
        execution_id: the new run's execution id.
        new_input: the rerun activity's input (JSON text), used with ``overwrite_input``.
        overwrite_input: replace the rerun activity's input with ``new_input``.

    Raises:
        InvalidInputError: no activity was scheduled as ``event_id``, or a child workflow
            would be left running by the cut.
    """
    cut = next(
        (
            i
            for i, e in enumerate(history)
            if isinstance(e, TaskScheduled) and e.event_id == event_id
        ),
        None,
    )
    if cut is None:
        scheduled = sorted(e.event_id for e in history if isinstance(e, TaskScheduled))
        raise InvalidInputError(
            f"the source history has no activity scheduled as event {event_id}; activities "
            f"were scheduled as events {scheduled} (see `treadle workflow history`)"
        )
    chosen = history[cut]
    assert isinstance(chosen, TaskScheduled)
    if overwrite_input:
        chosen = replace(chosen, input=new_input)
    kept: list[HistoryEvent] = []
    for event in history[:cut]:
        if isinstance(event, ExecutionStarted):
            # (untraced: its run span would otherwise take the id of the source's)
            event = replace(
                event, instance_id=instance_id, execution_id=execution_id, parent=None, trace=None
            )
        kept.append(event)
    kept.append(chosen)
    done = {e.task_scheduled_id for e in kept if isinstance(e, _RESULTS)}
    fired = {e.timer_id for e in kept if isinstance(e, TimerFired)}
    children = [
        e for e in kept if isinstance(e, SubOrchestrationInstanceCreated) and e.event_id not in done
    ]
    if children:
        raise InvalidInputError(
            f"rerunning from event {event_id} would leave child workflow "
            f"{children[0].instance_id!r} (event {children[0].event_id}) without a result; "
            "rerun from an event after the child finished"
        )
    activities = [e for e in kept if isinstance(e, TaskScheduled) and e.event_id not in done]
    timers = [e for e in kept if isinstance(e, TimerCreated) and e.event_id not in fired]
    return RerunPlan(kept, activities, timers)
