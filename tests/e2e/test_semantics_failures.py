"""Failures: activity exceptions reach the workflow; uncaught ones fail the instance."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

import treadle as wf

from .helpers import (
    Workflow,
    decoded,
    events_of,
    finish,
    state_of,
    status_of,
    waiting_reason,
)


class InventoryError(Exception):
    """A user-defined exception type, to check that its name travels."""


def test_activity_exception_is_a_catchable_task_failed_error(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def reserve(ctx: wf.WorkflowActivityContext, sku: str) -> None:
        raise InventoryError(f"no stock for {sku}")

    @runtime.workflow
    def order(ctx: wf.WorkflowContext, sku: str) -> Workflow[dict[str, Any] | str]:
        try:
            yield ctx.call_activity(reserve, input=sku)
        except wf.TaskFailedError as e:
            return {
                "type": e.details.error_type,
                "message": e.details.message,
                "trace": e.details.stack_trace,
                "str": str(e),
            }
        return "not reached"

    state = finish(client, client.schedule_new_workflow(order, input="sku-1"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    details = decoded(state.serialized_output)
    assert details["type"] == "InventoryError"
    assert details["message"] == "no stock for sku-1"
    # the traceback is the activity's own: it names the raising function and line
    assert details["trace"].startswith("Traceback (most recent call last)")
    assert "in reserve" in details["trace"]
    assert 'raise InventoryError(f"no stock for {sku}")' in details["trace"]
    assert "no stock for sku-1" in details["str"]


def test_seed_chain_succeeds(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    _register_seed_chain(runtime, handled=[], fail_step2=False)
    state = finish(client, client.schedule_new_workflow("task_chain_workflow", input=1))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == [2, 4, 4 ^ 2]


def test_seed_chain_error_handler_runs_then_reraise_fails_the_instance(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    handled: list[str] = []
    _register_seed_chain(runtime, handled=handled, fail_step2=True)
    iid = client.schedule_new_workflow("task_chain_workflow", input=1)
    state = finish(client, iid)

    # `except Exception as e` caught the activity's failure; the handler got str(e)
    assert len(handled) == 1
    assert "step2 cannot handle 2" in handled[0]
    [handler_call] = [
        e for e in events_of(client, iid, "TaskScheduled") if e.name == "error_handler"
    ]
    assert "step2 cannot handle 2" in json.loads(handler_call.input)
    # the bare `raise` re-raised the TaskFailedError: the instance failed with its details
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    failure = state.failure_details
    assert failure is not None
    assert failure.error_type == "TaskFailedError"
    assert "step2 cannot handle 2" in failure.message
    assert "task_chain_workflow" in (failure.stack_trace or "")


def _register_seed_chain(
    runtime: wf.WorkflowRuntime, *, handled: list[str], fail_step2: bool
) -> None:
    """The task-chaining pattern of the Dapr docs, verbatim but for the failing step."""

    def task_chain_workflow(ctx: wf.DaprWorkflowContext, wf_input: int) -> Workflow[list[Any]]:
        try:
            result1 = yield ctx.call_activity(step1, input=wf_input)
            result2 = yield ctx.call_activity(step2, input=result1)
            result3 = yield ctx.call_activity(step3, input=result2)
        except Exception as e:
            yield ctx.call_activity(error_handler, input=str(e))
            raise
        return [result1, result2, result3]

    def step1(ctx: wf.WorkflowActivityContext, activity_input: int) -> int:
        return activity_input + 1

    def step2(ctx: wf.WorkflowActivityContext, activity_input: int) -> int:
        if fail_step2:
            raise RuntimeError(f"step2 cannot handle {activity_input}")
        return activity_input * 2

    def step3(ctx: wf.WorkflowActivityContext, activity_input: int) -> int:
        return activity_input ^ 2

    def error_handler(ctx: wf.WorkflowActivityContext, error: str) -> None:
        handled.append(error)

    runtime.register_workflow(task_chain_workflow)
    for activity in (step1, step2, step3, error_handler):
        runtime.register_activity(activity)


def test_uncaught_workflow_exception_fails_the_instance(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def check(ctx: wf.WorkflowActivityContext, n: int) -> bool:
        return n > 10

    @runtime.workflow
    def validate(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        ok: bool = yield ctx.call_activity(check, input=n)
        if not ok:
            raise ValueError(f"order size {n} is too small")
        return n

    iid = client.schedule_new_workflow(validate, input=3)
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.serialized_output is None
    failure = state.failure_details
    assert failure is not None
    assert failure.error_type == "ValueError"
    assert failure.message == "order size 3 is too small"
    assert "in validate" in (failure.stack_trace or "")
    [completed] = events_of(client, iid, "ExecutionCompleted")
    assert completed.status.name == "FAILED"
    assert completed.failure == failure


def test_uncaught_activity_failure_fails_the_instance(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def charge(ctx: wf.WorkflowActivityContext, amount: int) -> None:
        raise InventoryError(f"card declined for {amount}")

    @runtime.workflow
    def pay(ctx: wf.WorkflowContext, amount: int) -> Workflow[str]:
        yield ctx.call_activity(charge, input=amount)
        return "paid"

    state = finish(client, client.schedule_new_workflow(pay, input=12))
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    failure = state.failure_details
    assert failure is not None
    assert failure.error_type == "TaskFailedError"
    assert "InventoryError" in failure.message
    assert "card declined for 12" in failure.message


def test_workflow_failing_before_its_first_yield(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def eager(ctx: wf.WorkflowContext, data: dict[str, Any]) -> Workflow[None]:
        raise KeyError(data["missing"])
        yield  # pragma: no cover - makes this a generator

    state = finish(client, client.schedule_new_workflow(eager, input={}))
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "KeyError"
    assert "missing" in state.failure_details.message


def test_an_unregistered_workflow_waits_saying_so(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    # No worker fails it as unregistered: one that has it may start at any time.
    iid = client.schedule_new_workflow("no_such_workflow", input=1)
    reason = waiting_reason(client, iid)
    assert "'no_such_workflow'" in reason and "register_workflow" in reason
    assert status_of(client, iid) is wf.WorkflowStatus.PENDING


@pytest.mark.parametrize(
    ("kind", "hint"),
    [("activity", "register_activity"), ("child workflow", "register_workflow")],
)
def test_an_unregistered_activity_or_child_waits_saying_so_until_a_worker_has_it(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    kind: str,
    hint: str,
) -> None:
    runtime = make_runtime(start=False)

    @runtime.workflow
    def caller(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        call = ctx.call_activity if kind == "activity" else ctx.call_child_workflow
        return (yield call("late_task", input=1))

    runtime.start()
    iid = client.schedule_new_workflow(caller)
    waiter = iid if kind == "activity" else f"{iid}:0001"  # (the child waits, for a child)
    reason = waiting_reason(client, waiter)
    assert "'late_task'" in reason and hint in reason
    assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
    late = make_runtime(start=False)
    if kind == "activity":
        late.register_activity(lambda ctx, n: n + 1, name="late_task")
    else:
        late.register_workflow(lambda ctx, n: n + 1, name="late_task")
    late.start()
    state = finish(client, iid)
    assert (state.runtime_status, state.serialized_output) == (wf.WorkflowStatus.COMPLETED, "2")
    assert state_of(client, waiter).waiting_reason is None


def test_activity_result_that_is_not_json_fails_the_task(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def opaque(ctx: wf.WorkflowActivityContext, _: object) -> object:
        return object()

    @runtime.workflow
    def caller(ctx: wf.WorkflowContext, _: object) -> Workflow[str]:
        try:
            yield ctx.call_activity(opaque)
        except wf.TaskFailedError as e:
            return e.details.message
        return "not reached"

    state = finish(client, client.schedule_new_workflow(caller))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert "not JSON-serializable" in decoded(state.serialized_output)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


def _exit() -> None:
    sys.exit(3)


def _raise_unprintable() -> None:
    raise _Unprintable


@pytest.mark.parametrize(
    ("fail", "error_type", "message"),
    [
        (_exit, "SystemExit", "3"),
        (_raise_unprintable, "_Unprintable", "<_Unprintable whose str() raised RuntimeError>"),
    ],
)
def test_an_activity_raising_what_would_end_its_thread_fails_its_task_only(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    fail: Callable[[], None],
    error_type: str,
    message: str,
) -> None:
    """SystemExit on an activity thread would end it, and so would reporting an exception
    whose str() raises: the task fails instead, and the one thread goes on running the
    activities after it."""
    runtime = make_runtime(start=False, max_concurrent_activities=1)

    @runtime.activity
    def failing(ctx: wf.WorkflowActivityContext, _: object) -> None:
        fail()

    @runtime.activity
    def add_one(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n + 1

    @runtime.workflow
    def caller(ctx: wf.WorkflowContext, n: int) -> Workflow[list[Any]]:
        try:
            yield ctx.call_activity(failing)
        except wf.TaskFailedError as e:
            failed = [e.details.error_type, e.details.message]
        return [failed, (yield ctx.call_activity(add_one, input=n))]

    runtime.start()
    ids = [client.schedule_new_workflow(caller, input=n) for n in range(3)]
    outputs = [decoded(finish(client, iid).serialized_output) for iid in ids]
    assert outputs == [[[error_type, message], n + 1] for n in range(3)]


@pytest.mark.parametrize("raised", [SystemExit, _Unprintable, GeneratorExit, KeyboardInterrupt])
def test_workflow_code_raising_what_no_workflow_should_fails_that_instance_only(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, raised: type[BaseException]
) -> None:
    """sys.exit() in workflow code fails its instance like any exception, and so does an
    exception whose str() raises; GeneratorExit and KeyboardInterrupt escape the workflow
    engine, and the runtime fails that instance alone.
    Either way the instances whose turns came in the same round go on (any of these used to
    end the runtime's thread, or fail every round again)."""

    @runtime.activity
    def add_one(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n + 1

    @runtime.workflow
    def odd(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        result: int = yield ctx.call_activity(add_one, input=n)
        if n == 0:
            raise raised
        return result

    ids = [client.schedule_new_workflow(odd, input=n) for n in range(3)]
    states = [finish(client, iid) for iid in ids]
    assert states[0].runtime_status is wf.WorkflowStatus.FAILED
    failure = states[0].failure_details
    assert failure is not None and failure.error_type == raised.__name__
    if raised in (GeneratorExit, KeyboardInterrupt):
        assert "could not run a turn of this workflow" in failure.message
    assert [s.serialized_output for s in states[1:]] == ["2", "3"]


def test_nan_in_a_payload_is_refused_never_turned_into_null(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def measure(ctx: wf.WorkflowActivityContext, n: int) -> float:
        return float("nan")

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        try:
            yield ctx.call_activity(measure, input=n)
        except wf.TaskFailedError as e:
            if n == 1:
                return float("inf")  # the workflow's own output
            return e.details.error_type + ": " + e.details.message
        return "not reached"

    state = finish(client, client.schedule_new_workflow(flow, input=0))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
    out = decoded(state.serialized_output)
    assert out.startswith("InvalidInputError: ") and "nan at the top" in out
    state = finish(client, client.schedule_new_workflow(flow, input=1))
    assert state.runtime_status is wf.WorkflowStatus.FAILED, state
    assert state.failure_details is not None
    assert "inf at the top" in state.failure_details.message
    with pytest.raises(wf.InvalidInputError, match="nan at \\['x'\\]"):
        client.schedule_new_workflow(flow, input={"x": float("nan")})
