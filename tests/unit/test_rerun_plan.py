"""plan_rerun: cutting a finished history after an activity, for a new instance."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from treadle.core.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    TaskCompleted,
    TaskScheduled,
    TimerCreated,
)
from treadle.core.rerun import plan_rerun
from treadle.errors import InvalidInputError

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
LATER = datetime(2026, 1, 2, tzinfo=timezone.utc)


def history() -> list[HistoryEvent]:
    return [
        OrchestratorStarted(timestamp=T),
        ExecutionStarted(name="w", instance_id="src", execution_id="e1", input="3"),
        TaskScheduled(event_id=1, name="a", input="1"),
        TimerCreated(event_id=2, fire_at=LATER),
        OrchestratorStarted(timestamp=T),
        TaskCompleted(task_scheduled_id=1, result="2"),
        TaskScheduled(event_id=3, name="b", input="2"),
        OrchestratorStarted(timestamp=T),
        TaskCompleted(task_scheduled_id=3, result="4"),
        ExecutionCompleted(status=OrchestrationStatus.COMPLETED, result="4"),
    ]


def test_cut_after_the_chosen_activity_with_the_new_identity() -> None:
    plan = plan_rerun(history(), 3, instance_id="new", execution_id="e2")
    assert [e.KIND for e in plan.history][-1] == "TaskScheduled"
    assert len(plan.history) == 7
    start = plan.history[1]
    assert isinstance(start, ExecutionStarted)
    assert (start.instance_id, start.execution_id, start.input) == ("new", "e2", "3")
    assert [a.event_id for a in plan.activities] == [3]  # activity 1 has its result
    assert [t.event_id for t in plan.timers] == [2]  # the timer has not fired


def test_new_input_replaces_only_the_chosen_activity_input() -> None:
    plan = plan_rerun(
        history(), 3, instance_id="n", execution_id="e", new_input="9", overwrite_input=True
    )
    scheduled = [e for e in plan.history if isinstance(e, TaskScheduled)]
    assert [(e.event_id, e.input) for e in scheduled] == [(1, "1"), (3, "9")]


def test_unknown_event_names_the_scheduled_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"events \[1, 3\]"):
        plan_rerun(history(), 2, instance_id="n", execution_id="e")


def test_a_pending_child_workflow_is_refused() -> None:
    child = SubOrchestrationInstanceCreated(event_id=2, name="child", instance_id="src:0002")
    events = [*history()[:3], child, TaskScheduled(event_id=3, name="b")]
    with pytest.raises(InvalidInputError, match="child workflow 'src:0002'"):
        plan_rerun(events, 3, instance_id="n", execution_id="e")
