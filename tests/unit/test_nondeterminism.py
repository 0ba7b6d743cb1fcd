"""replay(): code that no longer matches its history fails with a precise NonDeterminismError."""

from __future__ import annotations

from datetime import timedelta

from treadle.core.actions import CompleteOrchestration
from treadle.core.context import WorkflowContext
from treadle.core.history import OrchestrationStatus
from treadle.core.replay import ReplayResult, replay
from treadle.errors import NonDeterminismError

from .helpers import (
    INSTANCE,
    Workflow,
    at,
    child_created,
    start,
    task_completed,
    task_scheduled,
    timer_created,
    turn,
)


def _failure(result: ReplayResult) -> NonDeterminismError:
    assert result.status is OrchestrationStatus.FAILED
    assert isinstance(result.failure, NonDeterminismError)
    [completion] = [
        a
        for a in result.actions
        if isinstance(a, CompleteOrchestration) and a.status is OrchestrationStatus.FAILED
    ]
    assert completion.failure is not None
    assert completion.failure.error_type == "NonDeterminismError"
    assert completion.failure.message == str(result.failure)
    return result.failure


def test_nondeterminism_names_instance_step_expected_and_actual() -> None:
    history = [*start("order", 1), task_scheduled(1, "charge")]

    def order(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.create_timer(timedelta(seconds=1))

    message = str(_failure(replay(order, history, new_events=[])))
    assert f"instance {INSTANCE!r}" in message
    assert "step 1" in message
    assert "TaskScheduled('charge')" in message
    assert "create_timer()" in message
    assert "version it or start a new instance" in message


def test_different_activity_name_is_nondeterminism() -> None:
    history = [*start(), task_scheduled(1, "charge")]

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("refund")

    message = str(_failure(replay(wf, history)))
    assert "TaskScheduled('charge')" in message and "call_activity('refund')" in message


def test_activity_where_history_has_a_timer() -> None:
    history = [*start(), timer_created(1, at(1))]

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("charge")

    message = str(_failure(replay(wf, history)))
    assert "TimerCreated()" in message and "call_activity('charge')" in message


def test_different_child_workflow_name_is_nondeterminism() -> None:
    history = [*start(), child_created(1, "billing", f"{INSTANCE}:0001")]

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_child_workflow("shipping")

    message = str(_failure(replay(wf, history)))
    assert "'billing'" in message and "call_child_workflow('shipping')" in message


def test_history_action_the_code_never_made() -> None:
    history = [
        *start(),
        task_scheduled(1, "reserve"),
        turn(),
        task_completed(1),
        task_scheduled(2, "ship"),
    ]

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("reserve")
        yield ctx.wait_for_external_event("shipped")  # no action: 'ship' was removed

    message = str(_failure(replay(wf, history)))
    assert "step 2" in message and "TaskScheduled('ship')" in message
    assert "did not call anything" in message


def test_history_action_after_the_code_already_returned() -> None:
    # Bug fixed: once the code returned, later history was skipped, so removing a final step
    # silently completed the instance instead of reporting the change.
    history = [
        *start(),
        task_scheduled(1, "reserve"),
        turn(),
        task_completed(1),
        task_scheduled(2, "ship"),
    ]

    def wf(ctx: WorkflowContext, _: object) -> Workflow[str]:
        yield ctx.call_activity("reserve")
        return "done"

    result = replay(wf, history)
    message = str(_failure(result))
    assert "step 2" in message and "TaskScheduled('ship')" in message
    assert "finished there (COMPLETED)" in message
    assert result.output is None
    assert len(result.actions) == 1


def test_history_action_after_a_plain_function_returned() -> None:
    def wf(ctx: WorkflowContext, _: object) -> int:
        return 1

    _failure(replay(wf, [*start(), task_scheduled(1, "charge")]))


def test_fire_and_forget_action_recorded_after_completion_still_matches() -> None:
    def wf(ctx: WorkflowContext, _: object) -> str:
        ctx.call_activity("notify")  # not awaited
        return "done"

    result = replay(wf, [*start(), task_scheduled(1, "notify")])
    assert result.status is OrchestrationStatus.COMPLETED
    assert [type(a).__name__ for a in result.actions] == ["CompleteOrchestration"]


def test_extra_actions_beyond_history_are_new_not_nondeterminism() -> None:
    history = [*start(), task_scheduled(1, "a")]

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("a")

    result = replay(wf, history, [turn(), task_completed(1)])
    assert result.status is OrchestrationStatus.COMPLETED
