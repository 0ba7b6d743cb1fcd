"""replay(): an activity call's timeout is start-to-close, kept by the store: the workflow
records it on the ScheduleTask (no timer of its own), and sees a timed-out attempt as a
TaskFailed with a TimeoutError, raised as TaskTimeoutError and retried under its policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from treadle.core.actions import CreateTimer, ScheduleTask
from treadle.core.context import WorkflowContext
from treadle.core.history import OrchestrationStatus
from treadle.core.retry import RetryPolicy
from treadle.errors import TaskTimeoutError

from .helpers import (
    EXECUTION,
    Run,
    Workflow,
    at,
    decoded_output,
    task_completed,
    task_failed,
    timer_fired,
)

TIMEOUT = timedelta(seconds=30)
POLICY = RetryPolicy(first_retry_interval=timedelta(seconds=5), max_number_of_attempts=2)


def caller(ctx: WorkflowContext, _: object) -> Workflow[Any]:
    try:
        return (yield ctx.call_activity("quote", timeout=TIMEOUT, retry_policy=POLICY))
    except TaskTimeoutError as exc:
        return f"timed out: {exc.details.error_type}"
    except TimeoutError:
        raise AssertionError("a TaskTimeoutError is caught first") from None
    except Exception as exc:
        return f"failed: {type(exc).__name__}"


def _schedule(seq: int) -> ScheduleTask:
    return ScheduleTask(
        id=seq,
        name="quote",
        input=None,
        task_execution_id=f"{EXECUTION}:1",
        timeout=TIMEOUT,
    )


def test_the_call_carries_its_timeout_and_arms_no_timer() -> None:
    run = Run(caller)
    assert run.actions == [_schedule(1)]
    [completion] = run.turn(task_completed(1, "12.50"), when=at(1))
    assert completion.status is OrchestrationStatus.COMPLETED
    assert decoded_output(run.result) == "12.50"


def test_a_timed_out_attempt_is_retried_then_raises_task_timeout_error() -> None:
    run = Run(caller)
    timed_out = task_failed(1, "did not finish within its timeout", "TimeoutError")
    assert run.turn(timed_out, when=at(40)) == [CreateTimer(id=2, fire_at=at(45))]
    # the first attempt's late result (dropped by the engine; ignored if it were recorded)
    assert run.turn(task_completed(1, "late"), when=at(41)) == []
    assert run.turn(timer_fired(2, at(45)), when=at(45)) == [_schedule(3)]
    [completion] = run.turn(task_failed(3, "again", "TimeoutError"), when=at(80))
    assert completion.status is OrchestrationStatus.COMPLETED
    assert decoded_output(run.result) == "timed out: TimeoutError"


def test_a_timeout_error_of_an_untimed_call_is_a_plain_failure() -> None:
    def untimed(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        try:
            return (yield ctx.call_activity("quote"))
        except TaskTimeoutError:
            return "timed out"
        except Exception as exc:
            return f"failed: {type(exc).__name__}"

    run = Run(untimed)
    run.turn(task_failed(1, "socket", "TimeoutError"), when=at(1))
    assert decoded_output(run.result) == "failed: TaskFailedError"
