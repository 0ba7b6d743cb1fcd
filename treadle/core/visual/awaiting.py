"""What a run waits for that its history alone does not say: the external events its code
awaits, found by replaying the history with the workflow's code (the replay core).

A wait for an event leaves no record in history until the event arrives, so only the code
knows it. Where the code is at hand (``treadle serve --app``, or a runtime of the process),
:func:`awaited_events` replays the history up to any point and asks. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from treadle.core.history import HistoryEvent
from treadle.core.replay import WorkflowExecution
from treadle.core.versioning import VersionedWorkflow
from treadle.errors import NonDeterminismError

__all__ = ["awaited_events"]


def awaited_events(
    workflow: Callable[..., Any] | VersionedWorkflow,
    history: Sequence[HistoryEvent],
    *,
    instance_id: str = "",
) -> list[str] | None:
    """The event names the code waits for after ``history``, or None if the code does not
    replay it (it changed, say: then nothing can be said).

    Args:
        workflow: the workflow's function (or its versions).
        history: the run's history up to the point of interest.
        instance_id: the instance's id (as the code sees it).
    """
    execution = WorkflowExecution(workflow, instance_id=instance_id)
    try:
        execution.process(history, replaying=True)
    except Exception:
        return None
    if isinstance(execution.failure_exception, NonDeterminismError):
        return None  # the code changed under the run: it does not say what the run awaits
    if execution.is_complete:
        return []
    return execution.awaited_event_names()
