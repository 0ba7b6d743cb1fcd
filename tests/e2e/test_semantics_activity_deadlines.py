"""Activity timeouts are start-to-close: the time an attempt waits behind a queue's limit
(or for a free worker) does not count, and a call that finished in time leaves nothing behind
(no timer, no turn). On every backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import treadle as wf
from treadle.core.history import OrchestratorStarted, TaskFailed

from .helpers import Gate, Workflow, decoded, finish, kinds, wait_until

TIMEOUT = timedelta(seconds=1)


def test_waiting_behind_a_concurrency_limit_does_not_count(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    one = wf.Queue("one-at-a-time", concurrency=1)

    def hold(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        gate.hold()
        return "held"

    def quick(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        return "quick"

    runtime.register_activity(hold, name="hold", queue=one, priority=10)
    runtime.register_activity(quick, name="quick", queue=one)

    @runtime.workflow(name="queued")
    def queued(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (
            yield wf.when_all(
                [ctx.call_activity("hold"), ctx.call_activity("quick", timeout=TIMEOUT)]
            )
        )

    iid = client.schedule_new_workflow("queued")
    gate.wait_entered()
    # quick waits in the queue behind hold for longer than its timeout (the point of the test)
    time.sleep(1.5 * TIMEOUT.total_seconds())
    gate.open()
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == ["held", "quick"]
    assert "TaskFailed" not in kinds(client, iid)


def test_an_activity_done_in_time_leaves_no_timer_and_no_turn(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    def quick(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        return "quick"

    runtime.register_activity(quick, name="quick")

    @runtime.workflow(name="then_waits")
    def then_waits(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        got = yield ctx.call_activity("quick", timeout=TIMEOUT)
        go = yield ctx.wait_for_external_event("go")
        return [got, go]

    iid = client.schedule_new_workflow("then_waits")
    wait_until(lambda: "TaskCompleted" in kinds(client, iid), what="the activity's result")
    before = kinds(client, iid)
    # past the attempt's deadline: nothing fires (a timer would have cost a turn)
    time.sleep(1.5 * TIMEOUT.total_seconds())
    assert kinds(client, iid) == before
    client.raise_workflow_event(iid, "go", data=1)
    assert decoded(finish(client, iid).serialized_output) == ["quick", 1]
    history = client.get_workflow_history(iid)
    assert sum(isinstance(e, OrchestratorStarted) for e in history) == 3  # start, result, go
    assert not {"TimerCreated", "TimerFired"} & set(kinds(client, iid))
    assert not any(isinstance(e, TaskFailed) for e in history)
