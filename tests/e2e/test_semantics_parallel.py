"""Parallelism: fan-out runs activities at once; two runtimes share one store safely."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import treadle as wf
from treadle.core.history import TaskCompleted

from .helpers import Workflow, decoded, finish, status_of

N = 10
ACTIVITY_S = 0.5
SERIAL_S = N * ACTIVITY_S


class Overlap:
    """Counts how many activities run at the same moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def _fan_out(ctx: wf.WorkflowContext, n: int) -> Workflow[list[int]]:
    results: list[int] = yield wf.when_all([ctx.call_activity("work", input=i) for i in range(n)])
    return results


def test_fan_out_runs_activities_in_parallel(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    overlap = Overlap()
    runtime = make_runtime(start=False, max_concurrent_activities=N)

    def work(ctx: wf.WorkflowActivityContext, i: int) -> int:
        overlap.enter()
        try:
            time.sleep(ACTIVITY_S)
        finally:
            overlap.leave()
        return i * i

    runtime.register_activity(work)
    runtime.register_workflow(_fan_out, name="fan_out")
    runtime.start()

    started = time.monotonic()
    state = finish(client, client.schedule_new_workflow("fan_out", input=N), timeout=30)
    elapsed = time.monotonic() - started
    assert decoded(state.serialized_output) == [i * i for i in range(N)]
    assert elapsed < 0.5 * SERIAL_S, f"{elapsed:.2f} s for {N} x {ACTIVITY_S} s"
    assert overlap.peak >= N // 2


def test_async_activities_run_concurrently(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    overlap = Overlap()
    runtime = make_runtime(start=False, max_concurrent_activities=N)

    async def work(ctx: wf.WorkflowActivityContext, i: int) -> int:
        overlap.enter()
        try:
            await asyncio.sleep(ACTIVITY_S)
        finally:
            overlap.leave()
        if i < 0:
            raise ValueError(f"negative input {i}")
        return i * i

    runtime.register_activity(work)
    runtime.register_workflow(_fan_out, name="fan_out")

    @runtime.workflow
    def bad_async(ctx: wf.WorkflowContext, _: object) -> Workflow[list[str] | str]:
        try:
            yield ctx.call_activity(work, input=-1)
        except wf.TaskFailedError as e:
            return [e.details.error_type, e.details.message]
        return "not reached"

    runtime.start()
    started = time.monotonic()
    state = finish(client, client.schedule_new_workflow("fan_out", input=N), timeout=30)
    elapsed = time.monotonic() - started
    assert decoded(state.serialized_output) == [i * i for i in range(N)]
    assert elapsed < 0.5 * SERIAL_S, f"{elapsed:.2f} s for {N} x {ACTIVITY_S} s"
    assert overlap.peak >= N // 2

    failed = finish(client, client.schedule_new_workflow(bad_async))
    assert decoded(failed.serialized_output) == ["ValueError", "negative input -1"]


def test_max_concurrent_activities_bounds_the_parallelism(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    overlap = Overlap()
    runtime = make_runtime(start=False, max_concurrent_activities=2)

    def work(ctx: wf.WorkflowActivityContext, i: int) -> int:
        overlap.enter()
        try:
            time.sleep(0.05)
        finally:
            overlap.leave()
        return i

    runtime.register_activity(work)
    runtime.register_workflow(_fan_out, name="fan_out")
    runtime.start()
    state = finish(client, client.schedule_new_workflow("fan_out", input=8))
    assert decoded(state.serialized_output) == list(range(8))
    assert overlap.peak == 2


STEPS = 5
INSTANCES = 40


def _multi_step(ctx: wf.WorkflowContext, n: int) -> Workflow[list[str]]:
    owners: list[str] = []
    for i in range(STEPS):
        owners.append((yield ctx.call_activity("step", input=[n, i])))
    return owners


def test_two_runtimes_on_one_store_never_run_a_step_twice(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    log: list[tuple[str, str, int, list[int]]] = []
    log_lock = threading.Lock()
    runtimes = [
        make_runtime(start=False, max_concurrent_workflows=4, max_concurrent_activities=4)
        for _ in range(2)
    ]
    for runtime in runtimes:
        owner = runtime.owner

        def step(ctx: wf.WorkflowActivityContext, value: list[int], owner: str = owner) -> str:
            with log_lock:
                log.append((owner, ctx.workflow_id, ctx.task_id, value))
            time.sleep(0.002)
            return owner

        runtime.register_activity(step, name="step")
        runtime.register_workflow(_multi_step, name="multi_step")
    ids = [
        client.schedule_new_workflow("multi_step", input=n, instance_id=f"m-{n:02d}")
        for n in range(INSTANCES)
    ]
    for runtime in runtimes:
        runtime.start()

    outputs = {iid: decoded(finish(client, iid, timeout=30).serialized_output) for iid in ids}

    owners = {r.owner for r in runtimes}
    runs = Counter((iid, task_id) for _, iid, task_id, _ in log)
    assert max(runs.values()) == 1, "an activity ran twice"
    assert len(runs) == INSTANCES * STEPS
    ran_by = {(iid, task_id): owner for owner, iid, task_id, _ in log}
    assert {owner for owner, *_ in log} == owners, "both runtimes should have done work"
    for iid in ids:
        assert status_of(client, iid) is wf.WorkflowStatus.COMPLETED
        history = client.get_workflow_history(iid)
        scheduled = [e.event_id for e in history if e.KIND == "TaskScheduled"]
        completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
        assert scheduled == sorted(set(scheduled)) and len(scheduled) == STEPS, iid
        assert completed == scheduled, iid
        assert [e.KIND for e in history].count("ExecutionCompleted") == 1
        # the workflow saw, for each step, the one result its one execution returned
        assert outputs[iid] == [ran_by[(iid, task_id)] for task_id in scheduled]
