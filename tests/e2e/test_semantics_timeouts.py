"""Activity timeouts and cancellation: an activity call that runs past its timeout fails with
a TimeoutError (retried under its policy), the running attempt is told to stop, and its late
result is never recorded; terminating an instance tells its running activities (sync and
``async def``) to stop, and drops their results. On every backend."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import treadle as wf
from treadle.core.history import TaskFailed

from .helpers import Workflow, decoded, finish, kinds, wait_until

SHORT = timedelta(seconds=1)  # (an attempt that is not slow ends well within it)


class Slow:
    """An activity whose first ``slow`` attempts (per call) outlast any timeout here, polling
    ``ctx.is_cancelled`` (bounded: 10 s); later attempts return at once."""

    def __init__(self, slow: int) -> None:
        self.slow = slow
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.saw_cancel: list[int] = []  # the attempts told to stop
        self.finished: list[int] = []  # the attempts that returned

    def __call__(self, ctx: wf.WorkflowActivityContext, value: str) -> str:
        with self.lock:
            self.attempts[ctx.task_execution_id] += 1
            attempt = self.attempts[ctx.task_execution_id]
        if attempt <= self.slow:
            deadline = time.monotonic() + 10
            while not ctx.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.01)
            if ctx.is_cancelled:
                self.saw_cancel.append(attempt)
        self.finished.append(attempt)
        return f"{value} on attempt {attempt}"


def _register(runtime: wf.WorkflowRuntime, slow: Slow, attempts: int) -> None:
    runtime.register_activity(slow, name="slow")
    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=attempts
    )

    @runtime.workflow(name="bounded")
    def bounded(ctx: wf.WorkflowContext, value: str) -> Workflow[Any]:
        try:
            return (
                yield ctx.call_activity("slow", input=value, timeout=SHORT, retry_policy=policy)
            )
        except TimeoutError as exc:
            assert isinstance(exc, wf.TaskFailedError)
            return {"timed_out": exc.details.error_type, "message": exc.details.message}


def test_an_activity_past_its_timeout_is_retried_and_told_to_stop(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    slow = Slow(slow=1)
    _register(runtime, slow, attempts=3)
    iid = client.schedule_new_workflow("bounded", input="job")
    assert decoded(finish(client, iid).serialized_output) == "job on attempt 2"
    wait_until(lambda: slow.finished == [2, 1] or slow.finished == [1, 2], what="both attempts")
    assert slow.saw_cancel == [1]
    # the first attempt's late result is not in the history, its timeout is
    assert kinds(client, iid).count("TaskCompleted") == 1
    (failed,) = [e for e in client.get_workflow_history(iid) if isinstance(e, TaskFailed)]
    assert failed.failure.error_type == "TimeoutError"


def test_an_activity_past_its_timeout_on_every_attempt_fails_with_timeout_error(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    slow = Slow(slow=5)
    _register(runtime, slow, attempts=2)
    iid = client.schedule_new_workflow("bounded", input="job")
    out = decoded(finish(client, iid).serialized_output)
    assert out["timed_out"] == "TimeoutError"
    assert "did not finish within its timeout of 0:00:01" in out["message"]
    wait_until(lambda: sorted(slow.saw_cancel) == [1, 2], what="both attempts told to stop")


def test_terminate_tells_running_activities_to_stop(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    started = {"sync": threading.Event(), "async": threading.Event()}
    stopped: list[str] = []

    def sync_worker(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        started["sync"].set()
        deadline = time.monotonic() + 10
        while not ctx.is_cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        stopped.append("sync" if ctx.is_cancelled else "sync ran out")
        return "late"

    async def async_worker(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        started["async"].set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            stopped.append("async")
            raise
        return "late"

    runtime.register_activity(sync_worker, name="sync_worker")
    runtime.register_activity(async_worker, name="async_worker")

    @runtime.workflow(name="busy")
    def busy(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (
            yield wf.when_all([ctx.call_activity("sync_worker"), ctx.call_activity("async_worker")])
        )

    iid = client.schedule_new_workflow("busy")
    for event in started.values():
        assert event.wait(10), "the activities never started"
    client.terminate_workflow(iid, output="stopped")
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    wait_until(lambda: sorted(stopped) == ["async", "sync"], what="both activities to stop")
    time.sleep(0.2)  # (their results, had they been kept, would be in by now)
    assert "TaskCompleted" not in kinds(client, iid)
    assert decoded(client.get_workflow_state(iid).serialized_output) == "stopped"  # type: ignore[union-attr]


def test_a_workflow_past_its_timeout_fails_with_timeout_error(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    told: list[str] = []
    started = threading.Event()

    def waits(ctx: wf.WorkflowActivityContext, _: Any) -> None:
        started.set()
        deadline = time.monotonic() + 10
        while not ctx.is_cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        told.append("stopped" if ctx.is_cancelled else "ran out")

    runtime.register_activity(waits, name="waits")

    @runtime.workflow(name="stuck")
    def stuck(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        yield wf.when_all([ctx.call_activity("waits"), ctx.wait_for_external_event("never")])

    iid = client.schedule_new_workflow("stuck", timeout=timedelta(milliseconds=500))
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "TimeoutError"
    assert "did not finish by" in state.failure_details.message
    wait_until(lambda: told == ["stopped"], what="the activity to be told to stop")
    quick = client.schedule_new_workflow("stuck", timeout=timedelta(hours=1))
    client.wait_for_workflow_start(quick, timeout_in_seconds=10)
    client.terminate_workflow(quick)  # (a long timeout does not end a run early)
    assert finish(client, quick).runtime_status is wf.WorkflowStatus.TERMINATED


def test_a_child_past_its_timeout_is_retried_under_the_parents_policy(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    lock = threading.Lock()
    calls: list[str] = []

    def step(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        with lock:
            calls.append(ctx.workflow_id)
            first = len(calls) == 1
        if first:  # the first child's step outlasts its timeout, until told to stop
            deadline = time.monotonic() + 10
            while not ctx.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.01)
            return "too late"
        return "in time"

    runtime.register_activity(step, name="step")

    @runtime.workflow(name="child")
    def child(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_activity("step"))

    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=2
    )

    @runtime.workflow(name="parent")
    def parent(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (
            yield ctx.call_child_workflow(
                "child", timeout=timedelta(seconds=2), retry_policy=policy
            )
        )

    iid = client.schedule_new_workflow("parent")
    assert decoded(finish(client, iid).serialized_output) == "in time"
    assert len(calls) == 2


ACTIVITY_WORKER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    import treadle as wf

    STORE, MARKS = sys.argv[1], Path(sys.argv[2])
    runtime = wf.WorkflowRuntime(STORE, lease_s=3)


    @runtime.activity(name="far_away")
    def far_away(ctx, _):
        (MARKS / "started").write_text("")
        deadline = time.monotonic() + 20
        while not ctx.is_cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        (MARKS / ("stopped" if ctx.is_cancelled else "ran out")).write_text("")
        return "late"


    with runtime:
        sys.stdin.read()  # until the test closes it (or kills this process)
    """
)


def test_terminate_tells_an_activity_in_another_process_to_stop(
    tmp_path: Path,
    store_url: str,
    spawn: Callable[..., Any],
    runtime: wf.WorkflowRuntime,
    client: wf.WorkflowClient,
) -> None:
    script = tmp_path / "activity_worker.py"
    script.write_text(ACTIVITY_WORKER)
    spawn(script, store_url, str(tmp_path))

    @runtime.workflow(name="remote_step")
    def remote_step(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_activity("far_away"))  # registered in the other process only

    iid = client.schedule_new_workflow("remote_step")
    wait_until((tmp_path / "started").exists, timeout=30, what="the other process's activity")
    client.terminate_workflow(iid)
    assert finish(client, iid).runtime_status is wf.WorkflowStatus.TERMINATED
    # its lease renewal (every lease_s / 3) finds its task gone
    wait_until((tmp_path / "stopped").exists, timeout=10, what="the activity to be told to stop")
    assert "TaskCompleted" not in kinds(client, iid)
