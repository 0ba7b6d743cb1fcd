"""Any exception from user code fails its task or its workflow, whatever its class: an
activity (sync or ``async def``) raising ``GeneratorExit``, a bare ``BaseException``,
``KeyboardInterrupt`` or ``SystemExit`` fails that task (retried under its policy) and never
costs the runtime a thread; workflow code raising one fails its instance."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

import treadle as wf

from .helpers import Workflow, decoded, finish

RAISED: list[Callable[[], BaseException]] = [
    GeneratorExit,
    lambda: BaseException("bare"),
    KeyboardInterrupt,
    lambda: SystemExit(3),
]
IDS = ["GeneratorExit", "BaseException", "KeyboardInterrupt", "SystemExit"]


@pytest.mark.parametrize("make_exc", RAISED, ids=IDS)
def test_an_activity_raising_any_base_exception_fails_its_task(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    make_exc: Callable[[], BaseException],
) -> None:
    # two activity threads, and more failing activities than threads: a thread lost to
    # each would leave the later ones (and the healthy one after them) never run
    runtime = make_runtime(start=False, max_concurrent_activities=2)
    attempts: list[str] = []

    @runtime.activity
    def explode(ctx: wf.WorkflowActivityContext, n: int) -> None:
        attempts.append(ctx.task_id if isinstance(ctx.task_id, str) else str(n))
        raise make_exc()

    @runtime.activity
    def healthy(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n + 1

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[dict[str, object]]:
        policy = wf.RetryPolicy(
            first_retry_interval=timedelta(milliseconds=10), max_number_of_attempts=2
        )
        try:
            yield ctx.call_activity(explode, input=n, retry_policy=policy)
        except wf.TaskFailedError as e:
            after = yield ctx.call_activity(healthy, input=n)
            return {"type": e.details.error_type, "after": after}
        return {"type": None}

    runtime.start()
    ids = [client.schedule_new_workflow(flow, input=n) for n in range(6)]
    for n, iid in enumerate(ids):
        state = finish(client, iid, timeout=20)
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
        out = decoded(state.serialized_output)
        assert out == {"type": type(make_exc()).__name__, "after": n + 1}
    assert len(attempts) == 12  # each retried once under its policy


@pytest.mark.parametrize("make_exc", RAISED, ids=IDS)
def test_an_async_activity_raising_any_base_exception_fails_its_task(
    runtime: wf.WorkflowRuntime,
    client: wf.WorkflowClient,
    make_exc: Callable[[], BaseException],
) -> None:
    @runtime.activity
    async def explode(ctx: wf.WorkflowActivityContext, n: int) -> None:
        raise make_exc()

    @runtime.activity
    async def healthy(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n + 1

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[dict[str, object]]:
        try:
            yield ctx.call_activity(explode, input=n)
        except wf.TaskFailedError as e:
            after = yield ctx.call_activity(healthy, input=n)
            return {"type": e.details.error_type, "after": after}
        return {"type": None}

    ids = [client.schedule_new_workflow(flow, input=n) for n in range(3)]
    for n, iid in enumerate(ids):
        state = finish(client, iid, timeout=20)
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
        assert decoded(state.serialized_output) == {
            "type": type(make_exc()).__name__,
            "after": n + 1,
        }


def test_an_async_activity_raising_cancelled_error_fails_its_task(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    import asyncio

    @runtime.activity
    async def explode(ctx: wf.WorkflowActivityContext, n: int) -> None:
        raise asyncio.CancelledError("by the activity itself")

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[str]:
        try:
            yield ctx.call_activity(explode, input=n)
        except wf.TaskFailedError as e:
            return e.details.error_type
        return "not reached"

    state = finish(client, client.schedule_new_workflow(flow, input=1), timeout=20)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
    assert decoded(state.serialized_output) == "CancelledError"


@pytest.mark.parametrize("make_exc", RAISED, ids=IDS)
@pytest.mark.parametrize("where", ["first turn", "later turn"])
def test_workflow_code_raising_any_base_exception_fails_its_instance(
    runtime: wf.WorkflowRuntime,
    client: wf.WorkflowClient,
    make_exc: Callable[[], BaseException],
    where: str,
) -> None:
    @runtime.activity
    def step(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        if where == "later turn":
            yield ctx.call_activity(step, input=n)
        raise make_exc()

    @runtime.workflow
    def fine(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        out: int = yield ctx.call_activity(step, input=n)
        return out

    # started from another thread: on the main thread a KeyboardInterrupt in a start's first
    # turn may be Ctrl-C, and reaches the caller (see the test below)
    with ThreadPoolExecutor(1) as pool:
        ids = list(pool.map(lambda n: client.schedule_new_workflow(flow, input=n), range(3)))
    for iid in ids:
        state = finish(client, iid, timeout=20)
        assert state.runtime_status is wf.WorkflowStatus.FAILED, state
        assert state.failure_details is not None
        assert state.failure_details.error_type == type(make_exc()).__name__
    ok = finish(client, client.schedule_new_workflow(fine, input=7), timeout=20)
    assert ok.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(ok.serialized_output) == 7


def test_a_keyboard_interrupt_in_a_first_turn_on_the_main_thread_reaches_the_caller(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    # Ctrl-C and workflow code raising KeyboardInterrupt look the same on the main thread,
    # where a start's first turn runs: the start stops, and nothing is recorded
    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        raise KeyboardInterrupt
        yield  # (a generator)

    with pytest.raises(KeyboardInterrupt):
        client.schedule_new_workflow(flow, input=1, instance_id="ctrl-c")
    assert client.get_workflow_state("ctrl-c") is None
