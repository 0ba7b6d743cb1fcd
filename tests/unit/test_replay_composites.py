"""replay(): fan-out/fan-in with when_all, races with when_any."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from treadle.core.actions import CreateTimer, ScheduleTask
from treadle.core.context import WorkflowContext
from treadle.core.history import OrchestrationStatus
from treadle.core.replay import replay
from treadle.core.tasks import when_all, when_any
from treadle.errors import TaskFailedError

from .helpers import (
    Run,
    Workflow,
    at,
    decoded_output,
    event_raised,
    start,
    task_completed,
    task_failed,
    task_scheduled,
    timer_created,
    timer_fired,
    turn,
)


def fan_out(ctx: WorkflowContext, n: int) -> Workflow[str | list[Any]]:
    tasks = [ctx.call_activity("square", input=i) for i in range(n)]
    try:
        results: list[Any] = yield when_all(tasks)
    except TaskFailedError as exc:
        return f"failed: {exc.details.message}"
    return results


def test_when_all_schedules_every_task_in_one_turn() -> None:
    run = Run(fan_out, 4)
    assert [(a.id, a.name, a.input) for a in run.actions] == [
        (1, "square", "0"),
        (2, "square", "1"),
        (3, "square", "2"),
        (4, "square", "3"),
    ]
    assert all(isinstance(a, ScheduleTask) for a in run.actions)


def test_when_all_results_are_in_call_order_whatever_the_completion_order() -> None:
    run = Run(fan_out, 4)
    assert run.turn(task_completed(4, 9), task_completed(2, 1)) == []
    assert run.turn(task_completed(3, 4)) == []
    [completion] = run.turn(task_completed(1, 0))
    assert completion.status is OrchestrationStatus.COMPLETED
    assert decoded_output(run.result) == [0, 1, 4, 9]


def test_when_all_fails_on_the_first_failure_without_waiting_for_the_rest() -> None:
    run = Run(fan_out, 3)
    run.turn(task_completed(1, 0))
    # Task 2 is still running; its later failure in the same batch changes nothing.
    [completion] = run.turn(task_failed(3, "third broke"), task_failed(2, "second broke"))
    assert completion.status is OrchestrationStatus.COMPLETED
    assert decoded_output(run.result) == "failed: third broke"


def test_when_all_of_no_tasks_completes_at_once() -> None:
    result = replay(fan_out, start(input=0))
    assert decoded_output(result) == []


def test_when_all_nested_in_when_all() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        left = when_all([ctx.call_activity("a"), ctx.call_activity("b")])
        right = when_all([ctx.call_activity("c")])
        return (yield when_all([left, right]))

    run = Run(wf)
    run.turn(task_completed(3, "c"), task_completed(1, "a"))
    run.turn(task_completed(2, "b"))
    assert decoded_output(run.result) == [["a", "b"], ["c"]]


def approval(ctx: WorkflowContext, _: object) -> Workflow[str]:
    event = ctx.wait_for_external_event("approve")
    timeout = ctx.create_timer(timedelta(hours=1))
    winner = yield when_any([event, timeout])
    if winner is timeout:
        return "timed out"
    assert winner is event
    return f"approved by {winner.get_result()}"


def test_when_any_event_beats_timer() -> None:
    run = Run(approval)
    assert run.actions == [CreateTimer(id=1, fire_at=at(3600))]
    [completion] = run.turn(event_raised("approve", "ann"), when=at(60))
    assert completion.status is OrchestrationStatus.COMPLETED
    assert decoded_output(run.result) == "approved by ann"


def test_when_any_timer_beats_event() -> None:
    run = Run(approval)
    run.turn(timer_fired(1, at(3600)), when=at(3600))
    assert decoded_output(run.result) == "timed out"


def test_when_any_first_in_batch_wins_and_the_loser_is_harmless() -> None:
    history = [*start(), timer_created(1, at(3600))]
    result = replay(
        approval,
        history,
        [turn(at(3600)), timer_fired(1, at(3600)), event_raised("approve", "late")],
    )
    assert decoded_output(result) == "timed out"


def test_when_any_returns_the_winning_task_among_activities() -> None:
    def race(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        tasks = [ctx.call_activity("mirror", input=m) for m in ("eu", "us", "ap")]
        winner = yield when_any(tasks)
        return [tasks.index(winner), winner.get_result()]

    history = [*start(), *(task_scheduled(i, "mirror") for i in (1, 2, 3))]
    result = replay(race, history, [turn(), task_completed(2, "us-data")])
    assert decoded_output(result) == [1, "us-data"]


def test_when_any_with_a_failed_winner_returns_it_without_raising() -> None:
    def race(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        a, b = ctx.call_activity("a"), ctx.call_activity("b")
        winner = yield when_any([a, b])
        return [winner is a, winner.is_failed]

    history = [*start(), task_scheduled(1, "a"), task_scheduled(2, "b")]
    result = replay(race, history, [turn(), task_failed(1)])
    assert decoded_output(result) == [True, True]


def test_when_any_then_waiting_for_the_loser() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        slow, fast = ctx.call_activity("slow"), ctx.call_activity("fast")
        first = yield when_any([slow, fast])
        second = yield slow
        return [first.get_result(), second]

    run = Run(wf)
    assert run.turn(task_completed(2, "f")) == []
    run.turn(task_completed(1, "s"))
    assert decoded_output(run.result) == ["f", "s"]
