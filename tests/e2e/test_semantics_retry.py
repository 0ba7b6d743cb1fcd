"""Retry policies: durable retries of activities and child workflows."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import treadle as wf
from treadle.core.history import TimerCreated
from treadle.testing import DEFAULT_START, WorkflowTestEnvironment

from .helpers import Workflow, decoded, events_of, finish, kinds, wait_until


class Flaky:
    """An activity body that fails its first ``failures`` attempts per task_execution_id."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lock = threading.Lock()
        self.attempts: defaultdict[str, int] = defaultdict(int)
        self.seen: list[tuple[str, int]] = []  # (task_execution_id, task_id) per attempt

    def __call__(self, ctx: wf.WorkflowActivityContext, value: str) -> str:
        with self.lock:
            self.attempts[ctx.task_execution_id] += 1
            attempt = self.attempts[ctx.task_execution_id]
            self.seen.append((ctx.task_execution_id, ctx.task_id))
        if attempt <= self.failures:
            raise ConnectionError(f"attempt {attempt} failed")
        return f"{value} ok on attempt {attempt}"


def _register(
    runtime: wf.WorkflowRuntime, flaky: Flaky, attempts: int, interval_ms: int = 50
) -> None:
    runtime.register_activity(flaky, name="flaky")
    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=interval_ms),
        max_number_of_attempts=attempts,
        backoff_coefficient=2.0,
    )

    @runtime.workflow
    def caller(ctx: wf.WorkflowContext, value: str) -> Workflow[Any]:
        try:
            return (yield ctx.call_activity("flaky", input=value, retry_policy=policy))
        except wf.TaskFailedError as e:
            return {"failed": e.details.message, "type": e.details.error_type}


def test_activity_failing_twice_succeeds_on_the_third_attempt(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    flaky = Flaky(failures=2)
    _register(runtime, flaky, attempts=3)
    iid = client.schedule_new_workflow("caller", input="job")
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == "job ok on attempt 3"

    # one logical call: the same task_execution_id on every attempt, a new task id each time
    assert len(flaky.seen) == 3
    assert len({tx for tx, _ in flaky.seen}) == 1
    assert len({task_id for _, task_id in flaky.seen}) == 3
    scheduled = events_of(client, iid, "TaskScheduled")
    assert [e.task_execution_id for e in scheduled] == [flaky.seen[0][0]] * 3
    assert len(events_of(client, iid, "TaskFailed")) == 2


def test_retry_waits_are_durable_timers_with_backoff() -> None:
    # On the test environment's virtual clock: hour-long backoffs, exact, in milliseconds.
    flaky = Flaky(failures=4)
    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(hours=1),
        max_number_of_attempts=5,
        backoff_coefficient=2.0,
        max_retry_interval=timedelta(hours=3),
    )

    def caller(ctx: wf.WorkflowContext, value: str) -> Workflow[Any]:
        return (yield ctx.call_activity("flaky", input=value, retry_policy=policy))

    with WorkflowTestEnvironment() as env:
        env.register_workflow(caller)
        env.register_activity(flaky, name="flaky")
        iid = env.client.schedule_new_workflow(caller, input="job")
        state = env.client.wait_for_workflow_completion(iid)
        history = env.client.get_workflow_history(iid)
    assert state is not None and decoded(state.serialized_output) == "job ok on attempt 5"
    # 1 h, 2 h, then 4 h capped at 3 h, twice
    assert env.now() == DEFAULT_START + timedelta(hours=1 + 2 + 3 + 3)

    order = [e.KIND for e in history if e.KIND != "OrchestratorStarted"]
    attempt = ["TaskScheduled", "TaskFailed", "TimerCreated", "TimerFired"]
    assert order == [
        "ExecutionStarted",
        *attempt * 4,
        "TaskScheduled",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    waits = []
    turn_time = None
    for event in history:
        if event.KIND == "OrchestratorStarted":
            turn_time = event.timestamp
        elif isinstance(event, TimerCreated):
            assert turn_time is not None
            waits.append(event.fire_at - turn_time)
    assert waits == [timedelta(hours=h) for h in (1, 2, 3, 3)]


def test_exhausted_retries_raise_the_last_attempts_failure(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    flaky = Flaky(failures=5)
    _register(runtime, flaky, attempts=2)
    iid = client.schedule_new_workflow("caller", input="job")
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == {
        "failed": "attempt 2 failed",
        "type": "ConnectionError",
    }
    assert len(flaky.seen) == 2
    assert kinds(client, iid).count("TimerCreated") == 1


def test_a_pending_retry_survives_a_runtime_restart(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    flaky = Flaky(failures=1)
    first = make_runtime()
    _register(first, flaky, attempts=3, interval_ms=500)
    iid = client.schedule_new_workflow("caller", input="job")
    wait_until(lambda: "TimerCreated" in kinds(client, iid), what="the retry timer")
    first.shutdown()

    second = make_runtime()
    _register(second, flaky, attempts=3, interval_ms=500)
    state = finish(client, iid)
    assert decoded(state.serialized_output) == "job ok on attempt 2"
    assert len({tx for tx, _ in flaky.seen}) == 1


def test_child_workflow_retry(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    attempts: list[str] = []

    @runtime.activity
    def count_attempt(ctx: wf.WorkflowActivityContext, child_id: str) -> int:
        attempts.append(child_id)
        return len(attempts)

    @runtime.workflow
    def fragile_child(ctx: wf.WorkflowContext, _: object) -> Workflow[int]:
        n: int = yield ctx.call_activity(count_attempt, input=ctx.instance_id)
        if n < 3:
            raise RuntimeError(f"child attempt {n} failed")
        return n

    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=3
    )

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_child_workflow(fragile_child, retry_policy=policy))

    state = finish(client, client.schedule_new_workflow(parent, instance_id="rp"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == 3
    # every attempt ran under the same child instance id
    assert attempts == ["rp:0001"] * 3
