"""replay(): continue-as-new, suspend/resume and terminate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from treadle.core.actions import CompleteOrchestration, ScheduleTask
from treadle.core.context import WorkflowContext
from treadle.core.history import EventRaised, OrchestrationStatus
from treadle.core.replay import replay

from .helpers import (
    EXECUTION,
    Run,
    Workflow,
    at,
    completion_of,
    decoded_output,
    event_raised,
    resumed,
    start,
    suspended,
    task_completed,
    task_scheduled,
    terminated,
    timer_fired,
    turn,
    workflow_started,
)

CONTINUED = OrchestrationStatus.CONTINUED_AS_NEW


def _carried(completion: CompleteOrchestration) -> list[tuple[str, str | None]]:
    return [(e.name, e.input) for e in completion.carryover_events]


# ---- continue_as_new ---------------------------------------------------------------------
def counter(ctx: WorkflowContext, n: int) -> Workflow[str]:
    yield ctx.create_timer(timedelta(seconds=1))
    ctx.continue_as_new(n + 1)
    return "ignored: the run continues as new"


def test_continue_as_new_completes_with_the_new_input() -> None:
    run = Run(counter, 4)
    [completion] = run.turn(timer_fired(1, at(1)), when=at(1))
    assert completion == CompleteOrchestration(id=2, status=CONTINUED, result="5")
    result = run.result
    assert result.status is CONTINUED
    assert decoded_output(result) == 5


def test_continue_as_new_from_a_plain_function() -> None:
    def wf(ctx: WorkflowContext, n: int) -> None:
        ctx.continue_as_new({"n": n + 1})

    result = replay(wf, start(input=1))
    assert result.actions == [CompleteOrchestration(id=1, status=CONTINUED, result='{"n":2}')]


def test_continue_as_new_with_no_input() -> None:
    def wf(ctx: WorkflowContext) -> None:
        ctx.continue_as_new()

    result = replay(wf, start())
    assert len(result.actions) == 1
    completion = completion_of(result)
    assert completion.status is CONTINUED
    assert completion.result is None


def eternal_workflow(
    *, save_events: bool
) -> Callable[[WorkflowContext, list[Any]], Workflow[None]]:
    """The Dapr monitor pattern: handle one event per run, keep the rest for the next run."""

    def eternal(ctx: WorkflowContext, state: list[Any]) -> Workflow[None]:
        item = yield ctx.wait_for_external_event("work")
        ctx.continue_as_new([*state, item], save_events=save_events)

    return eternal


@pytest.fixture(params=[True, False], ids=["save_events", "drop_events"])
def save_events(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_continue_as_new_carries_unconsumed_events_only_with_save_events(
    save_events: bool,
) -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("prepare")
        first = yield ctx.wait_for_external_event("work")
        ctx.continue_as_new(first, save_events=save_events)

    run = Run(wf)
    run.turn(
        event_raised("work", 1),
        event_raised("other", {}),
        event_raised("Work", 0),
        event_raised("work", ""),
    )
    [completion] = run.turn(task_completed(1))
    assert completion.status is CONTINUED
    assert completion.result == "1"
    if save_events:
        # Payloads are carried as the JSON text received, so falsy ones survive.
        assert _carried(completion) == [("other", "{}"), ("Work", "0"), ("work", '""')]
    else:
        assert _carried(completion) == []


def test_events_after_continue_as_new_in_the_same_batch_are_carried(save_events: bool) -> None:
    # Bug fixed: events behind the one that finished the run were dropped, though the engine
    # consumes the whole batch, so save_events=True lost them for good.
    run = Run(eternal_workflow(save_events=save_events), [])
    [completion] = run.turn(
        event_raised("work", "a"), event_raised("work", "b"), event_raised("WORK", None)
    )
    assert completion.status is CONTINUED
    assert decoded_output(run.result) == ["a"]
    if save_events:
        assert _carried(completion) == [("work", '"b"'), ("WORK", None)]
        assert all(isinstance(e, EventRaised) for e in completion.carryover_events)
    else:
        assert _carried(completion) == []


def test_carried_events_keep_the_order_they_were_raised_in_whatever_their_names() -> None:
    # Bug fixed: they were carried grouped by name, in the names' alphabetical order.
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.wait_for_external_event("go")
        ctx.continue_as_new(None, save_events=True)

    run = Run(wf)
    run.turn(event_raised("zeta", 1), event_raised("alpha", 2), event_raised("Zeta", 3))
    [completion] = run.turn(event_raised("mid", 4), event_raised("go"), event_raised("beta", 5))
    assert _carried(completion) == [
        ("zeta", "1"),
        ("alpha", "2"),
        ("Zeta", "3"),
        ("mid", "4"),
        ("beta", "5"),
    ]


def test_carried_events_in_the_next_run_are_delivered_in_order() -> None:
    eternal = eternal_workflow(save_events=True)
    run = Run(eternal, [])
    [completion] = run.turn(event_raised("work", "a"), event_raised("work", "b"))
    # The engine starts the next run with the new input, then the carried events.
    next_run = [turn(), workflow_started(input=["a"]), *completion.carryover_events]
    assert completion.result == '["a"]'
    result = replay(eternal, [], next_run)
    assert result.status is CONTINUED
    assert decoded_output(result) == ["a", "b"]


# ---- suspend / resume ----------------------------------------------------------------------
def two_steps(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
    a = yield ctx.call_activity("a")
    b = yield ctx.call_activity("b", input=a)
    return [a, b]


def test_events_while_suspended_are_held_until_resumed() -> None:
    run = Run(two_steps)
    assert run.turn(suspended(), task_completed(1, "A")) == []
    assert run.execution.status() is OrchestrationStatus.SUSPENDED
    assert run.turn(event_raised("noise")) == []
    assert run.turn(resumed(), when=at(5)) == [
        ScheduleTask(id=2, name="b", input='"A"', task_execution_id=f"{EXECUTION}:2")
    ]
    assert run.result.status is OrchestrationStatus.RUNNING
    run.turn(task_completed(2, "B"))
    assert decoded_output(run.result) == ["A", "B"]


def test_held_events_apply_in_order_on_resume() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        first = yield ctx.wait_for_external_event("e")
        second = yield ctx.wait_for_external_event("e")
        return [first, second]

    run = Run(wf)
    run.turn(suspended(), event_raised("e", 1))
    run.turn(event_raised("e", 2))
    assert run.result.status is OrchestrationStatus.SUSPENDED
    run.turn(resumed())
    assert decoded_output(run.result) == [1, 2]


def test_actions_recorded_after_a_suspension_are_not_issued_again() -> None:
    # Bug fixed: the run advanced (scheduling 'b') in the turn that also suspended it, so
    # TaskScheduled('b') lands in history after ExecutionSuspended. A replay while still
    # suspended held that record back and issued ScheduleTask('b') a second time.
    run = Run(two_steps)
    assert [a.name for a in run.turn(task_completed(1, "A"), suspended())] == ["b"]
    assert run.turn(event_raised("ping")) == []  # Run compares this with a full replay
    assert replay(two_steps, run.history).actions == []
    assert run.turn(resumed()) == []
    run.turn(task_completed(2, "B"))
    assert decoded_output(run.result) == ["A", "B"]


def test_resume_without_suspend_is_harmless() -> None:
    run = Run(two_steps)
    assert run.turn(resumed()) == []
    assert run.result.status is OrchestrationStatus.RUNNING


# ---- terminate -----------------------------------------------------------------------------
def test_terminate_completes_with_terminated_and_the_given_output() -> None:
    run = Run(two_steps)
    [completion] = run.turn(terminated({"reason": "operator"}))
    assert completion == CompleteOrchestration(
        id=2, status=OrchestrationStatus.TERMINATED, result='{"reason":"operator"}'
    )
    assert run.result.status is OrchestrationStatus.TERMINATED


def test_terminate_closes_the_generator_and_ignores_later_events() -> None:
    cleaned = []

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        try:
            yield ctx.create_timer(timedelta(hours=1))
        finally:
            cleaned.append(True)

    result = replay(
        wf, start(), [turn(), terminated(), timer_fired(1, at(3600)), event_raised("x")]
    )
    assert cleaned == [True]
    assert [a.status for a in result.actions if isinstance(a, CompleteOrchestration)] == [
        OrchestrationStatus.TERMINATED
    ]
    assert result.output is None


def test_terminate_reaches_a_suspended_instance() -> None:
    run = Run(two_steps)
    run.turn(suspended())
    [completion] = run.turn(terminated("stop"))
    assert completion.status is OrchestrationStatus.TERMINATED
    assert completion.result == '"stop"'


def test_terminate_in_history_replays_as_terminated() -> None:
    history = [*start(), task_scheduled(1, "a"), turn(), terminated()]
    result = replay(two_steps, history, [turn(), task_completed(1)])
    assert result.status is OrchestrationStatus.TERMINATED
    assert [type(a) for a in result.actions] == [CompleteOrchestration]
