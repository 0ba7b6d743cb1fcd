"""replay(): child workflows, and durable retries of activities and children."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from treadle.core.actions import CreateSubOrchestration, CreateTimer, ScheduleTask
from treadle.core.context import WorkflowContext
from treadle.core.history import OrchestrationStatus
from treadle.core.retry import RetryPolicy
from treadle.core.tasks import when_all
from treadle.errors import TaskFailedError

from .helpers import (
    EXECUTION,
    INSTANCE,
    Run,
    Workflow,
    at,
    child_completed,
    child_failed,
    decoded_output,
    task_completed,
    task_failed,
    timer_fired,
)

COMPLETED = OrchestrationStatus.COMPLETED
FAILED = OrchestrationStatus.FAILED


# ---- child workflows --------------------------------------------------------------------
def child(ctx: WorkflowContext, x: int) -> int:
    return x


def test_child_workflow_default_id_is_parent_id_and_sequence_in_hex() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield when_all([ctx.call_child_workflow(child, input=i) for i in range(11)]))

    run = Run(wf)
    ids = [a.instance_id for a in run.actions]
    assert ids[0] == f"{INSTANCE}:0001"
    assert ids[9] == f"{INSTANCE}:000a"
    assert ids[10] == f"{INSTANCE}:000b"
    assert run.actions[0] == CreateSubOrchestration(
        id=1, name="child", instance_id=f"{INSTANCE}:0001", input="0"
    )


def test_child_workflow_with_an_explicit_id_and_a_name() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_child_workflow("billing", input={"n": 1}, instance_id="bill-7"))

    run = Run(wf)
    assert run.actions == [
        CreateSubOrchestration(id=1, name="billing", instance_id="bill-7", input='{"n":1}')
    ]


def test_child_workflow_result_is_returned_to_the_parent() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        total = yield ctx.call_child_workflow(child, input=5)
        return total + 1

    run = Run(wf)
    run.turn(child_completed(1, 5))
    assert decoded_output(run.result) == 6


def test_child_workflow_failure_raises_task_failed_error_in_the_parent() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[list[Any] | None]:
        try:
            yield ctx.call_child_workflow(child)
        except TaskFailedError as exc:
            return [exc.details.error_type, exc.details.message, str(exc)]
        return None

    run = Run(wf)
    run.turn(child_failed(1, "child blew up", "RuntimeError"))
    assert decoded_output(run.result) == [
        "RuntimeError",
        "child blew up",
        "RuntimeError: child blew up",
    ]


def test_uncaught_child_failure_fails_the_parent() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_child_workflow(child)

    run = Run(wf)
    [completion] = run.turn(child_failed(1, "child blew up"))
    assert completion.status is FAILED
    assert completion.failure.error_type == "TaskFailedError"
    assert "child blew up" in completion.failure.message


# ---- retries -----------------------------------------------------------------------------
POLICY = RetryPolicy(
    first_retry_interval=timedelta(seconds=5), max_number_of_attempts=3, backoff_coefficient=2
)


def flaky_caller(ctx: WorkflowContext, _: object) -> Workflow[Any]:
    return (yield ctx.call_activity("flaky", input="payload", retry_policy=POLICY))


def _schedule(seq: int) -> ScheduleTask:
    # Every attempt keeps the first attempt's task_execution_id: activities use it for
    # idempotency.
    return ScheduleTask(id=seq, name="flaky", input='"payload"', task_execution_id=f"{EXECUTION}:1")


def test_failed_attempt_waits_on_a_durable_timer_then_retries_with_the_same_execution_id() -> None:
    run = Run(flaky_caller)
    assert run.actions == [_schedule(1)]
    assert run.turn(task_failed(1, "try 1"), when=at(1)) == [CreateTimer(id=2, fire_at=at(6))]
    assert run.turn(timer_fired(2, at(6)), when=at(6)) == [_schedule(3)]
    [completion] = run.turn(task_completed(3, "ok"), when=at(7))
    assert completion.status is COMPLETED
    assert decoded_output(run.result) == "ok"


def test_retry_backs_off_then_fails_with_the_last_failure_once_exhausted() -> None:
    run = Run(flaky_caller)
    run.turn(task_failed(1, "try 1"), when=at(1))
    run.turn(timer_fired(2, at(6)), when=at(6))
    # Second wait: 5s * 2.
    assert run.turn(task_failed(3, "try 2"), when=at(7)) == [CreateTimer(id=4, fire_at=at(17))]
    assert run.turn(timer_fired(4, at(17)), when=at(17)) == [_schedule(5)]
    [completion] = run.turn(task_failed(5, "try 3", "ConnectionError"), when=at(18))
    assert completion.status is FAILED
    assert completion.failure.error_type == "TaskFailedError"
    assert "try 3" in completion.failure.message
    failure = run.result.failure
    assert isinstance(failure, TaskFailedError)
    assert failure.details.message == "try 3"
    assert failure.details.error_type == "ConnectionError"


def test_exhausted_retry_can_be_caught() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=2)

    def wf(ctx: WorkflowContext, _: object) -> Workflow[str | None]:
        try:
            yield ctx.call_activity("flaky", retry_policy=policy)
        except TaskFailedError as exc:
            return exc.details.message
        return None

    run = Run(wf)
    run.turn(task_failed(1, "first"))
    run.turn(timer_fired(2, at(1)), when=at(1))
    run.turn(task_failed(3, "second"), when=at(2))
    assert decoded_output(run.result) == "second"


def test_retry_timeout_gives_up_before_the_attempts_run_out() -> None:
    policy = RetryPolicy(
        first_retry_interval=timedelta(seconds=10),
        max_number_of_attempts=10,
        retry_timeout=timedelta(seconds=30),
    )

    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("flaky", retry_policy=policy))

    run = Run(wf)
    assert run.turn(task_failed(1), when=at(15)) == [CreateTimer(id=2, fire_at=at(25))]
    run.turn(timer_fired(2, at(25)), when=at(25))
    # 25s + 10s would end past the 30s budget counted from the first attempt.
    [completion] = run.turn(task_failed(3, "too late"), when=at(26))
    assert completion.status is FAILED
    assert "too late" in completion.failure.message


def test_duplicate_failure_of_an_attempt_does_not_retry_twice() -> None:
    run = Run(flaky_caller)
    actions = run.turn(task_failed(1, "a"), task_failed(1, "a again"), when=at(1))
    assert actions == [CreateTimer(id=2, fire_at=at(6))]


def test_child_workflow_retry_restarts_the_same_child_instance() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=2)

    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_child_workflow(child, input=3, retry_policy=policy))

    run = Run(wf)
    first = CreateSubOrchestration(id=1, name="child", instance_id=f"{INSTANCE}:0001", input="3")
    assert run.actions == [first]
    assert run.turn(child_failed(1)) == [CreateTimer(id=2, fire_at=at(1))]
    assert run.turn(timer_fired(2, at(1)), when=at(1)) == [
        CreateSubOrchestration(id=3, name="child", instance_id=f"{INSTANCE}:0001", input="3")
    ]
    run.turn(child_completed(3, 3))
    assert decoded_output(run.result) == 3


def test_policy_of_one_attempt_never_retries() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=1)

    def wf(ctx: WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity("once", retry_policy=policy)

    run = Run(wf)
    [completion] = run.turn(task_failed(1, "only try"))
    assert completion.status is FAILED
    assert "only try" in completion.failure.message
