"""replay(): chaining, inputs and outputs, failures, the workflow clock and is_replaying."""

from __future__ import annotations

import gc
import logging
import weakref
from datetime import timedelta
from typing import Any

import pytest

from treadle.core.actions import CompleteOrchestration, ScheduleTask
from treadle.core.context import WorkflowActivityContext, WorkflowContext
from treadle.core.history import OrchestrationStatus
from treadle.core.replay import WorkflowExecution, replay
from treadle.errors import InvalidInputError, TaskFailedError

from .helpers import (
    EXECUTION,
    INSTANCE,
    Run,
    Workflow,
    at,
    decoded_output,
    failure_of,
    start,
    task_completed,
    task_failed,
    task_scheduled,
    timer_created,
    timer_fired,
    turn,
)

COMPLETED = OrchestrationStatus.COMPLETED
FAILED = OrchestrationStatus.FAILED
RUNNING = OrchestrationStatus.RUNNING


# ---- task chaining: the Dapr seed -------------------------------------------------------
def step1(ctx: WorkflowActivityContext, x: int) -> int:
    return x + 1


def step2(ctx: WorkflowActivityContext, x: int) -> int:
    return x * 2


def step3(ctx: WorkflowActivityContext, x: int) -> int:
    return x**2


def error_handler(ctx: WorkflowActivityContext, message: str) -> None:
    return None


def task_chain(ctx: WorkflowContext, wf_input: int) -> Workflow[list[Any]]:
    try:
        r1 = yield ctx.call_activity(step1, input=wf_input)
        r2 = yield ctx.call_activity(step2, input=r1)
        r3 = yield ctx.call_activity(step3, input=r2)
    except Exception as e:
        yield ctx.call_activity(error_handler, input=str(e))
        raise
    return [r1, r2, r3]


def test_task_chain_schedules_each_step_with_the_previous_result() -> None:
    run = Run(task_chain, 42)
    assert run.actions == [
        ScheduleTask(id=1, name="step1", input="42", task_execution_id=f"{EXECUTION}:1")
    ]
    assert run.turn(task_completed(1, 43)) == [
        ScheduleTask(id=2, name="step2", input="43", task_execution_id=f"{EXECUTION}:2")
    ]
    assert run.turn(task_completed(2, 86)) == [
        ScheduleTask(id=3, name="step3", input="86", task_execution_id=f"{EXECUTION}:3")
    ]
    assert run.turn(task_completed(3, 7396)) == [
        CompleteOrchestration(id=4, status=COMPLETED, result="[43,86,7396]")
    ]
    result = run.result
    assert result.status is COMPLETED
    assert decoded_output(result) == [43, 86, 7396]


def test_task_chain_replayed_from_history_does_not_reschedule_steps() -> None:
    history = [
        *start("task_chain", 42),
        task_scheduled(1, "step1", 42),
        turn(at(1)),
        task_completed(1, 43),
        task_scheduled(2, "step2", 43),
    ]
    result = replay(task_chain, history, [turn(at(2)), task_completed(2, 86)])
    assert result.status is RUNNING
    assert [(a.id, getattr(a, "name", None)) for a in result.actions] == [(3, "step3")]


def test_task_chain_error_runs_the_handler_then_fails() -> None:
    run = Run(task_chain, 1)
    run.turn(task_completed(1, 2))
    actions = run.turn(task_failed(2, "disk full", "OSError"))
    assert actions == [
        ScheduleTask(
            id=3,
            name="error_handler",
            input='"OSError: disk full"',
            task_execution_id=f"{EXECUTION}:3",
        )
    ]
    [completion] = run.turn(task_completed(3))
    assert completion.status is FAILED
    assert completion.failure.error_type == "TaskFailedError"
    assert "disk full" in completion.failure.message
    result = run.result
    assert isinstance(result.failure, TaskFailedError)
    assert result.failure.details.error_type == "OSError"
    assert result.failure.details.message == "disk full"


# ---- inputs and outputs ------------------------------------------------------------------
def test_plain_function_completes_with_its_return_value() -> None:
    def double(ctx: WorkflowContext, x: int) -> int:
        return x * 2

    result = replay(double, start(input=21))
    assert result.status is COMPLETED
    assert result.actions == [CompleteOrchestration(id=1, status=COMPLETED, result="42")]


def test_workflow_taking_only_ctx_is_called_without_input() -> None:
    def no_input(ctx: WorkflowContext) -> str:
        return ctx.instance_id

    result = replay(no_input, start(input=None))
    assert result.status is COMPLETED
    assert decoded_output(result) == INSTANCE


def test_workflow_taking_input_receives_none() -> None:
    seen = []

    def wf(ctx: WorkflowContext, value: object) -> str:
        seen.append(value)
        return "ok"

    assert replay(wf, start(input=None)).status is COMPLETED
    assert seen == [None]


@pytest.mark.parametrize("value", [0, "", {}, [], False])
def test_falsy_input_reaches_the_workflow_as_sent(value: object) -> None:
    seen = []

    def wf(ctx: WorkflowContext, x: object) -> object:
        seen.append(x)
        return x

    result = replay(wf, start(input=value))
    assert seen == [value]
    assert type(seen[0]) is type(value)
    assert decoded_output(result) == value


def test_generator_returning_nothing_completes_without_output() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.create_timer(timedelta(seconds=1))

    history = [*start(), timer_created(1, at(1))]
    result = replay(wf, history, [turn(at(1)), timer_fired(1, at(1))])
    assert result.status is COMPLETED
    assert result.output is None
    assert result.actions == [CompleteOrchestration(id=2, status=COMPLETED)]


def test_unencodable_result_fails_the_workflow() -> None:
    def wf(ctx: WorkflowContext, _: object) -> object:
        return object()

    result = replay(wf, start())
    assert result.status is FAILED
    assert isinstance(result.failure, InvalidInputError)


def test_input_given_to_a_workflow_without_an_input_parameter_fails() -> None:
    def wf(ctx: WorkflowContext) -> int:
        return 1

    result = replay(wf, start(input=5))
    assert result.status is FAILED
    assert isinstance(result.failure, TypeError)


# ---- failures ----------------------------------------------------------------------------
class PaymentDeclinedError(Exception):
    pass


def test_uncaught_exception_fails_with_type_message_and_trace() -> None:
    def checkout(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("charge")
        raise PaymentDeclinedError("card 4242 declined")

    result = replay(checkout, [*start(), task_scheduled(1, "charge")], [turn(), task_completed(1)])
    assert result.status is FAILED
    assert isinstance(result.failure, PaymentDeclinedError)
    assert len(result.actions) == 1
    failure = failure_of(result)
    assert failure.error_type == "PaymentDeclinedError"
    assert failure.message == "card 4242 declined"
    trace = failure.stack_trace or ""
    assert "Traceback" in trace
    assert "in checkout" in trace
    assert "PaymentDeclinedError: card 4242 declined" in trace


def test_exception_before_the_first_yield_fails() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        raise KeyError("missing")
        yield  # pragma: no cover

    result = replay(wf, start())
    assert result.status is FAILED
    assert failure_of(result).error_type == "KeyError"


def test_uncaught_activity_failure_fails_with_task_failed_error() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("charge"))

    result = replay(
        wf, [*start(), task_scheduled(1, "charge")], [turn(), task_failed(1, "card expired")]
    )
    assert result.status is FAILED
    assert len(result.actions) == 1
    assert failure_of(result).error_type == "TaskFailedError"
    assert "card expired" in failure_of(result).message
    assert isinstance(result.failure, TaskFailedError)
    assert result.failure.details.message == "card expired"


def test_activity_failure_can_be_caught() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[str | None]:
        try:
            yield ctx.call_activity("charge")
        except TaskFailedError as exc:
            return f"{exc.details.error_type}/{exc.details.message}"
        return None

    result = replay(
        wf, [*start(), task_scheduled(1, "charge")], [turn(), task_failed(1, "nope", "KeyError")]
    )
    assert decoded_output(result) == "KeyError/nope"


def test_yielding_a_non_task_fails_with_a_clear_type_error() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield 5  # type: ignore[misc]  # a non-task, on purpose

    result = replay(wf, start("sloppy"))
    assert result.status is FAILED
    assert isinstance(result.failure, TypeError)
    message = str(result.failure)
    assert "'sloppy'" in message and "yielded int" in message and "call_activity" in message


def test_yielding_a_coroutine_like_object_fails() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.create_timer  # type: ignore[misc]  # forgot to call it, on purpose

    result = replay(wf, start())
    assert isinstance(result.failure, TypeError)
    assert "yielded method" in str(result.failure)


# ---- at-least-once results ---------------------------------------------------------------
def test_duplicate_task_completed_is_ignored() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
        a = yield ctx.call_activity("a")
        b = yield ctx.call_activity("b")
        return [a, b]

    history = [
        *start(),
        task_scheduled(1, "a"),
        turn(),
        task_completed(1, "first"),
        task_scheduled(2, "b"),
        turn(),
        task_completed(1, "again"),  # the activity ran twice
        task_failed(1, "late failure"),
    ]
    result = replay(wf, history)
    assert result.status is RUNNING
    assert result.actions == []
    result = replay(wf, history, [turn(), task_completed(2, "second")])
    assert decoded_output(result) == ["first", "second"]


def test_result_for_an_unknown_task_is_ignored() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("a"))

    result = replay(wf, [*start(), task_scheduled(1, "a")], [turn(), task_completed(99, "x")])
    assert result.status is RUNNING
    assert result.actions == []


# ---- the workflow clock and is_replaying ------------------------------------------------
def test_current_utc_datetime_is_the_turn_time_from_history() -> None:
    seen = []

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        seen.append(ctx.current_utc_datetime)
        yield ctx.call_activity("a")
        seen.append(ctx.current_utc_datetime)
        yield ctx.call_activity("b")
        seen.append(ctx.current_utc_datetime)

    history = [
        *start(when=at(0)),
        task_scheduled(1, "a"),
        turn(at(30)),
        task_completed(1),
        task_scheduled(2, "b"),
    ]
    replay(wf, history, [turn(at(95)), task_completed(2)])
    assert seen == [at(0), at(30), at(95)]
    assert all(t.tzinfo is not None for t in seen)


def test_is_replaying_is_true_for_history_and_false_for_new_events() -> None:
    seen = []

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        seen.append(ctx.is_replaying)
        yield ctx.call_activity("a")
        seen.append(ctx.is_replaying)
        yield ctx.call_activity("b")
        seen.append(ctx.is_replaying)

    history = [
        *start(),
        task_scheduled(1, "a"),
        turn(),
        task_completed(1),
        task_scheduled(2, "b"),
    ]
    replay(wf, history, [turn(), task_completed(2)])
    assert seen == [True, True, False]
    seen.clear()
    replay(wf, [], start())
    assert seen == [False]


def test_ctx_logger_is_silent_during_replay(caplog: pytest.LogCaptureFixture) -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        ctx.logger.info("before a")
        yield ctx.call_activity("a")
        ctx.logger.info("after a")

    history = [*start(), task_scheduled(1, "a")]
    with caplog.at_level(logging.INFO, logger="treadle.workflow"):
        replay(wf, history, [turn(), task_completed(1)])
    assert [r.getMessage() for r in caplog.records] == ["after a"]


# ---- custom status ------------------------------------------------------------------------
def test_set_custom_status_is_reported_as_json() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        ctx.set_custom_status({"stage": "charging"})
        yield ctx.call_activity("charge")
        ctx.set_custom_status(0)

    result = replay(wf, start())
    assert result.custom_status == '{"stage":"charging"}'
    result = replay(wf, [*start(), task_scheduled(1, "charge")], [turn(), task_completed(1)])
    assert result.custom_status == "0"


def test_custom_status_is_none_until_set() -> None:
    def wf(ctx: WorkflowContext, _: object) -> int:
        return 1

    assert replay(wf, start()).custom_status is None


# ---- memory: a run is freed as soon as the runtime drops it ------------------------------
def test_a_finished_execution_is_freed_without_the_cyclic_collector() -> None:
    """A finished run holds no reference cycle (its context, its logger): dropped from the
    runtime's cache, it is freed at once, not left for the cyclic collector, which may let
    the runs of a whole backlog pile up (W1b's peak memory)."""
    gc.collect()
    gc.disable()
    try:
        execution = WorkflowExecution(task_chain, instance_id=INSTANCE)
        execution.process([turn(), *start("task_chain", 42)], replaying=False)
        for seq, result in ((1, 43), (2, 86), (3, 7396)):
            execution.confirm_actions()
            execution.process([turn(at(seq)), task_completed(seq, result)], replaying=False)
        assert execution.is_complete
        gone = weakref.ref(execution.logger)  # (the logger is made at first use)
        del execution
        assert gone() is None
        assert gc.collect() == 0
    finally:
        gc.enable()
