"""replay(): durable timers, external events and their timeouts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from treadle.core.actions import CreateTimer
from treadle.core.context import WorkflowContext
from treadle.core.history import EventRaised, OrchestrationStatus
from treadle.core.replay import replay
from treadle.core.tasks import Task, when_all

from .helpers import (
    Run,
    Workflow,
    at,
    completion_of,
    decoded_output,
    event_raised,
    failure_of,
    start,
    task_completed,
    task_scheduled,
    timer_created,
    timer_fired,
    turn,
)

COMPLETED = OrchestrationStatus.COMPLETED


# ---- timers ------------------------------------------------------------------------------
def test_timer_from_timedelta_fires_relative_to_the_workflow_clock() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        value = yield ctx.create_timer(timedelta(minutes=5))
        return ["woke", value, ctx.current_utc_datetime.isoformat()]

    run = Run(wf, when=at(10))
    assert run.actions == [CreateTimer(id=1, fire_at=at(310))]
    assert run.turn(when=at(200)) == []  # an unrelated turn does not fire it
    run.turn(timer_fired(1, at(310)), when=at(311))
    assert decoded_output(run.result) == ["woke", None, at(311).isoformat()]


def test_timer_at_an_aware_datetime_fires_at_that_instant() -> None:
    fire_at = datetime(2030, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=2)))

    def wf(ctx: WorkflowContext, _: object) -> Workflow[str]:
        yield ctx.create_timer(fire_at)
        return "done"

    run = Run(wf)
    assert run.actions == [CreateTimer(id=1, fire_at=fire_at)]
    run.turn(timer_fired(1, fire_at), when=fire_at)
    assert decoded_output(run.result) == "done"


def test_timer_at_a_naive_datetime_is_an_error() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[str | None]:
        try:
            yield ctx.create_timer(datetime(2030, 1, 1))
        except ValueError as exc:
            return str(exc)
        return None

    result = replay(wf, start())
    assert "timezone-aware" in decoded_output(result)
    assert len(result.actions) == 1  # nothing was scheduled
    assert completion_of(result).status is COMPLETED


def test_uncaught_naive_timer_fails_the_workflow() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.create_timer(datetime(2030, 1, 1))

    result = replay(wf, start())
    assert result.status is OrchestrationStatus.FAILED
    assert isinstance(result.failure, ValueError)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ctx: ctx.create_timer("soon"), "takes a datetime (UTC) or a timedelta, not str"),
        (lambda ctx: ctx.create_timer(30), "not int"),
        (lambda ctx: ctx.wait_for_external_event(7), "an event name is a str, not int"),
        (
            lambda ctx: ctx.wait_for_external_event("go", timeout=30),
            "timeout is a timedelta, not int",
        ),
    ],
)
def test_a_timer_or_event_wait_of_the_wrong_type_is_a_type_error_saying_so(
    call: Callable[[WorkflowContext], Task[Any]], message: str
) -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[str | None]:
        try:
            yield call(ctx)
        except TypeError as exc:
            return str(exc)
        return None

    result = replay(wf, start())
    assert message in decoded_output(result)
    assert len(result.actions) == 1  # nothing was scheduled


def test_sequential_timers_replay_from_history() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[str]:
        for _ in range(3):
            yield ctx.create_timer(timedelta(seconds=10))
        return ctx.current_utc_datetime.isoformat()

    history = [
        *start(),
        timer_created(1, at(10)),
        turn(at(10)),
        timer_fired(1, at(10)),
        timer_created(2, at(20)),
    ]
    result = replay(wf, history, [turn(at(20)), timer_fired(2, at(20))])
    assert result.actions == [CreateTimer(id=3, fire_at=at(30))]


# ---- external events ----------------------------------------------------------------------
def test_event_names_match_case_insensitively() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("Approval"))

    run = Run(wf)
    assert run.actions == []
    run.turn(event_raised("APPROVAL", "yes"))
    assert decoded_output(run.result) == "yes"


def test_other_event_names_do_not_complete_the_wait() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("approval"))

    result = replay(wf, start(), [turn(), event_raised("approvals", 1), event_raised("x", 2)])
    assert result.status is OrchestrationStatus.RUNNING


def test_events_are_delivered_in_fifo_order() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        first = yield ctx.wait_for_external_event("item")
        second = yield ctx.wait_for_external_event("item")
        third = yield ctx.wait_for_external_event("ITEM")
        return [first, second, third]

    run = Run(wf)
    run.turn(event_raised("item", 1), event_raised("Item", 2))
    run.turn(event_raised("item", 3))
    assert decoded_output(run.result) == [1, 2, 3]


def test_concurrent_waiters_are_served_in_the_order_they_waited() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        a = ctx.wait_for_external_event("vote")
        b = ctx.wait_for_external_event("vote")
        return (yield when_all([a, b]))

    run = Run(wf)
    run.turn(event_raised("vote", "first"))
    run.turn(event_raised("vote", "second"))
    assert decoded_output(run.result) == ["first", "second"]


def test_event_raised_before_the_wait_is_buffered() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_activity("prepare")
        return (yield ctx.wait_for_external_event("go"))

    run = Run(wf)
    assert run.turn(event_raised("go", "early")) == []  # nobody waits yet
    [completion] = run.turn(task_completed(1))
    assert completion.status is COMPLETED
    assert decoded_output(run.result) == "early"


@pytest.mark.parametrize("payload", [0, "", {}, [], False, 0.0])
def test_falsy_payloads_are_delivered_as_sent(payload: object) -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[dict[str, Any]]:
        value = yield ctx.wait_for_external_event("e")
        return {"type": type(value).__name__, "value": value}

    for batch in ([event_raised("e", payload)], [event_raised("e", payload), turn()]):
        waited = replay(wf, start(), [turn(), *batch])
        buffered = replay(wf, [], [turn(), event_raised("e", payload), *start()[1:]])
        for result in (waited, buffered):
            assert decoded_output(result) == {"type": type(payload).__name__, "value": payload}


def test_event_without_payload_delivers_none() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        value = yield ctx.wait_for_external_event("e")
        return [value is None]

    result = replay(wf, start(), [turn(), EventRaised(name="e", input=None)])
    assert decoded_output(result) == [True]


def test_event_with_invalid_json_payload_fails_the_wait() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("e"))

    result = replay(wf, start(), [turn(), EventRaised(name="e", input="{not json")])
    assert result.status is OrchestrationStatus.FAILED
    assert failure_of(result).error_type == "InvalidInputError"


# ---- wait_for_external_event(timeout=...) -------------------------------------------------
def approval_with_timeout(ctx: WorkflowContext, _: object) -> Workflow[Any]:
    try:
        return (yield ctx.wait_for_external_event("approve", timeout=timedelta(minutes=5)))
    except TimeoutError as exc:
        return [type(exc).__module__, type(exc).__name__, str(exc)]


def test_wait_with_timeout_creates_a_durable_timer() -> None:
    run = Run(approval_with_timeout, when=at(100))
    assert run.actions == [CreateTimer(id=1, fire_at=at(400))]


def test_wait_times_out_with_builtin_timeout_error() -> None:
    run = Run(approval_with_timeout)
    run.turn(timer_fired(1, at(300)), when=at(300))
    module, name, message = decoded_output(run.result)
    assert (module, name) == ("builtins", "TimeoutError")
    assert "approve" in message


def test_event_before_timeout_wins_and_the_timer_is_then_harmless() -> None:
    run = Run(approval_with_timeout)
    [completion] = run.turn(event_raised("APPROVE", "ok"), timer_fired(1, at(300)))
    assert completion.status is COMPLETED
    assert decoded_output(run.result) == "ok"


def test_event_after_timeout_is_buffered_for_the_next_wait() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        try:
            first = yield ctx.wait_for_external_event("approve", timeout=timedelta(minutes=5))
        except TimeoutError:
            first = "timed out"
        return [first, (yield ctx.wait_for_external_event("approve"))]

    run = Run(wf)
    run.turn(timer_fired(1, at(300)), event_raised("approve", "late"))
    assert decoded_output(run.result) == ["timed out", "late"]


def test_uncaught_timeout_fails_the_workflow() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.wait_for_external_event("approve", timeout=timedelta(seconds=1))

    result = replay(wf, [*start(), timer_created(1, at(1))], [turn(at(1)), timer_fired(1, at(1))])
    assert result.status is OrchestrationStatus.FAILED
    assert failure_of(result).error_type == "TimeoutError"


def test_wait_with_timeout_for_a_buffered_event_needs_no_timer() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_activity("prepare")
        return (yield ctx.wait_for_external_event("go", timeout=timedelta(seconds=5)))

    history = [*start(), task_scheduled(1, "prepare"), turn(), event_raised("go", 7)]
    result = replay(wf, history, [turn(), task_completed(1)])
    assert decoded_output(result) == 7
    assert [type(a).__name__ for a in result.actions] == ["CompleteOrchestration"]


def test_stale_timeout_timer_after_the_event_does_not_disturb_later_waits() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        first = yield ctx.wait_for_external_event("approve", timeout=timedelta(minutes=5))
        second = yield ctx.wait_for_external_event("approve")
        return [first, second]

    run = Run(wf)
    assert run.turn(event_raised("approve", 1)) == []
    assert run.turn(timer_fired(1, at(300)), when=at(300)) == []  # must not time out wait 2
    run.turn(event_raised("approve", 2), when=at(400))
    assert decoded_output(run.result) == [1, 2]
