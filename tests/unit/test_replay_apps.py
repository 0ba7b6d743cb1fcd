"""replay(): calls routed to another app (``app_id``), and how they are recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest

from treadle.core.actions import CreateSubOrchestration, CreateTimer, ScheduleTask
from treadle.core.context import WorkflowContext
from treadle.core.history import (
    ExecutionStarted,
    OrchestrationStatus,
    ParentInfo,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    event_from_dict,
    event_to_json,
)
from treadle.core.replay import replay
from treadle.core.retry import RetryPolicy
from treadle.errors import TaskFailedError

from .helpers import (
    EXECUTION,
    INSTANCE,
    Run,
    Workflow,
    at,
    child_failed,
    decoded_output,
    failure_of,
    start,
    task_completed,
    task_failed,
    timer_fired,
)

RETRY = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=3)


def test_an_activity_for_another_app_names_it_in_the_action_and_its_record() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("charge", input=5, app_id="billing"))

    run = Run(wf)
    assert run.actions == [
        ScheduleTask(
            id=1, name="charge", input="5", task_execution_id=f"{EXECUTION}:1", app_id="billing"
        )
    ]
    scheduled = run.history[-1]
    assert isinstance(scheduled, TaskScheduled) and scheduled.app_id == "billing"
    run.turn(task_completed(1, "ok"))
    assert decoded_output(run.result) == "ok"


def test_a_child_for_another_app_names_it_in_the_action_and_its_record() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_child_workflow("ship", input=[1], app_id="shipping"))

    run = Run(wf)
    assert run.actions == [
        CreateSubOrchestration(
            id=1, name="ship", instance_id=f"{INSTANCE}:0001", input="[1]", app_id="shipping"
        )
    ]
    created = run.history[-1]
    assert isinstance(created, SubOrchestrationInstanceCreated)
    assert created.app_id == "shipping"


@pytest.mark.parametrize("app_id", [None, ""])
def test_no_app_or_an_empty_one_is_the_callers_own_app(app_id: str | None) -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_activity("a", app_id=app_id)
        yield ctx.call_child_workflow("c", app_id=app_id)

    run = Run(wf)
    assert run.actions[0].app_id is None
    assert run.turn(task_completed(1)) == [
        CreateSubOrchestration(id=2, name="c", instance_id=f"{INSTANCE}:0002", app_id=None)
    ]


def test_an_app_id_that_is_not_a_string_fails_the_workflow_saying_so() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_activity("a", app_id=7)  # type: ignore[arg-type]

    result = replay(wf, start())
    assert result.status is OrchestrationStatus.FAILED
    assert "app_id is a str" in str(result.failure)


def test_a_retried_activity_goes_to_the_same_app_every_attempt() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("charge", app_id="billing", retry_policy=RETRY))

    run = Run(wf)
    timer = run.turn(task_failed(1, "no worker"))
    assert [type(a) for a in timer] == [CreateTimer]
    retried = run.turn(timer_fired(2, at(1)), when=at(1))
    assert retried == [
        ScheduleTask(
            id=3, name="charge", task_execution_id=f"{EXECUTION}:1", app_id="billing", input=None
        )
    ]
    run.turn(task_completed(3, 1), when=at(1))
    assert decoded_output(run.result) == 1


def test_a_retried_child_goes_to_the_same_app_every_attempt() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_child_workflow("ship", app_id="shipping", retry_policy=RETRY))

    run = Run(wf)
    run.turn(child_failed(1))
    retried = run.turn(timer_fired(2, at(1)), when=at(1))
    assert retried == [
        CreateSubOrchestration(id=3, name="ship", instance_id=f"{INSTANCE}:0001", app_id="shipping")
    ]


def test_a_failure_from_another_app_raises_task_failed_error_once_retries_are_spent() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        try:
            yield ctx.call_activity("charge", app_id="billing")
        except TaskFailedError as exc:
            return exc.details.message
        return None

    run = Run(wf)
    run.turn(task_failed(1, "app 'billing' has no running worker", "RegistrationError"))
    assert decoded_output(run.result) == "app 'billing' has no running worker"


def test_an_unhandled_failure_from_another_app_fails_the_workflow() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_child_workflow("ship", app_id="shipping")

    run = Run(wf)
    run.turn(child_failed(1, "no such workflow", "RegistrationError"))
    assert "no such workflow" in failure_of(run.result).message


# ---- how the app ids are stored ------------------------------------------------------------
def test_events_without_an_app_are_stored_as_before_apps_existed() -> None:
    text = event_to_json(TaskScheduled(event_id=1, name="a", input="1", task_execution_id="e:1"))
    assert "app_id" not in text
    assert orjson.loads(text) == {
        "kind": "TaskScheduled",
        "event_id": 1,
        "timestamp": "1970-01-01T00:00:00+00:00",
        "name": "a",
        "input": "1",
        "task_execution_id": "e:1",
    }
    child = SubOrchestrationInstanceCreated(event_id=2, name="c", instance_id="o:2")
    assert "app_id" not in event_to_json(child)


def test_app_ids_survive_the_stored_text() -> None:
    events = [
        TaskScheduled(event_id=1, name="a", app_id="billing"),
        SubOrchestrationInstanceCreated(event_id=2, name="c", instance_id="o:2", app_id="ship"),
        ExecutionStarted(
            name="c",
            instance_id="o:2",
            execution_id="e",
            app_id="ship",
            parent=ParentInfo("o", "e0", 2, "wf", app_id="orders"),
        ),
    ]
    for event in events:
        assert event_from_dict(orjson.loads(event_to_json(event))) == event


def test_a_parent_recorded_before_apps_existed_reads_as_having_none() -> None:
    stored = {
        "kind": "ExecutionStarted",
        "name": "c",
        "instance_id": "o:2",
        "execution_id": "e",
        "parent": {"instance_id": "o", "execution_id": "e0", "task_scheduled_id": 2},
    }
    event = event_from_dict(stored)
    assert isinstance(event, ExecutionStarted)
    assert event.app_id is None
    assert event.parent == ParentInfo("o", "e0", 2)
