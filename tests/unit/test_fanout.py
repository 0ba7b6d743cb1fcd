"""A bounded fan-out: at most N tasks in flight, results in call order, replayed alike."""

from __future__ import annotations

import functools
from typing import Any

from treadle.core.context import WorkflowContext
from treadle.core.fanout import when_all_bounded
from treadle.core.history import OrchestrationStatus
from treadle.errors import TaskFailedError

from .helpers import Run, Workflow, decoded_output, task_completed, task_failed


def mapped(ctx: WorkflowContext, n: int) -> Workflow[Any]:
    try:
        return (yield from ctx.map_activity("square", range(n), max_concurrent=2))
    except TaskFailedError as exc:
        return f"failed: {exc.details.message}"


def test_at_most_n_are_in_flight_and_each_completion_starts_the_next() -> None:
    run = Run(mapped, 5)
    assert [(a.id, a.input) for a in run.actions] == [(1, "0"), (2, "1")]
    assert [(a.id, a.input) for a in run.turn(task_completed(2, 1))] == [(3, "2")]
    # two finish in one turn: two start
    assert [(a.id, a.input) for a in run.turn(task_completed(1, 0), task_completed(3, 4))] == [
        (4, "3"),
        (5, "4"),
    ]
    assert run.turn(task_completed(5, 16)) == []
    [completion] = run.turn(task_completed(4, 9))
    assert completion.status is OrchestrationStatus.COMPLETED
    assert decoded_output(run.result) == [0, 1, 4, 9, 16]  # in call order


def test_the_first_failure_raises_and_starts_nothing_more() -> None:
    run = Run(mapped, 5)
    [completion] = run.turn(task_failed(1, "no square today"))
    assert decoded_output(run.result) == "failed: no square today"
    assert completion.status is OrchestrationStatus.COMPLETED


def test_any_task_starter_works_and_an_empty_fan_out_returns_at_once() -> None:
    def children(ctx: WorkflowContext, names: list[str]) -> Workflow[Any]:
        calls = [functools.partial(ctx.call_child_workflow, "child", input=n) for n in names]
        return (yield from when_all_bounded(calls, max_concurrent=3))

    run = Run(children, ["a", "b", "c", "d"])
    assert [a.input for a in run.actions] == ['"a"', '"b"', '"c"']
    empty = Run(children, [])
    assert len(empty.actions) == 1
    assert decoded_output(empty.result) == []


def test_max_concurrent_must_be_positive() -> None:
    def bad(ctx: WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield from ctx.map_activity("square", [1], max_concurrent=0))

    run = Run(bad, None)
    [completion] = run.actions
    assert completion.status is OrchestrationStatus.FAILED
    assert "max_concurrent" in completion.failure.message
