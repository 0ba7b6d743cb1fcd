"""Workflow code that changes under a running instance: the instance fails with a clear reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import treadle as wf
from treadle.core.history import TaskScheduled

from .helpers import Workflow, decoded, finish, kinds, status_of, wait_until


def _reserve(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"reserved {item}"


def _charge(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"charged {item}"


def _ship(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"shipped {item}"


def _order_v1(ctx: wf.WorkflowContext, item: str) -> Workflow[list[Any]]:
    reserved = yield ctx.call_activity("reserve", input=item)
    yield ctx.wait_for_external_event("paid")
    shipped = yield ctx.call_activity("ship", input=item)
    return [reserved, shipped]


def _order_v2(ctx: wf.WorkflowContext, item: str) -> Workflow[list[Any]]:
    # changed code: charges first, where the running instance reserved
    charged = yield ctx.call_activity("charge", input=item)
    yield ctx.wait_for_external_event("paid")
    shipped = yield ctx.call_activity("ship", input=item)
    return [charged, shipped]


def _runtime_with(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    workflow: Callable[[wf.WorkflowContext, str], Workflow[list[Any]]],
) -> wf.WorkflowRuntime:
    runtime = make_runtime(start=False)
    runtime.register_workflow(workflow, name="order")
    for fn, name in ((_reserve, "reserve"), (_charge, "charge"), (_ship, "ship")):
        runtime.register_activity(fn, name=name)
    runtime.start()
    return runtime


def _run_v1_until_waiting(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> str:
    first = _runtime_with(make_runtime, _order_v1)
    iid = client.schedule_new_workflow("order", input="book", instance_id="o-1")
    wait_until(lambda: "TaskCompleted" in kinds(client, iid), what="reserve to complete")
    first.shutdown()
    return iid


def test_changed_code_fails_the_instance_naming_step_and_calls(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    iid = _run_v1_until_waiting(make_runtime, client)
    history_before = client.get_workflow_history(iid)

    _runtime_with(make_runtime, _order_v2)
    client.raise_workflow_event(iid, "paid", data=True)
    state = finish(client, iid)

    assert state.runtime_status is wf.WorkflowStatus.FAILED
    failure = state.failure_details
    assert failure is not None
    assert failure.error_type == "NonDeterminismError"
    message = failure.message
    assert "instance 'o-1'" in message
    assert "step 1" in message
    assert "TaskScheduled('reserve')" in message  # what history recorded
    assert "call_activity('charge')" in message  # what the code did
    assert "version it or start a new instance" in message
    # the recorded history is kept as it was, and nothing of the new code ran
    history = client.get_workflow_history(iid)
    assert history[: len(history_before)] == history_before
    scheduled = [e.name for e in history if isinstance(e, TaskScheduled)]
    assert scheduled == ["reserve"]


def test_unchanged_code_resumes_after_a_restart(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    iid = _run_v1_until_waiting(make_runtime, client)
    _runtime_with(make_runtime, _order_v1)
    client.raise_workflow_event(iid, "paid", data=True)
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == ["reserved book", "shipped book"]
    assert status_of(client, iid) is wf.WorkflowStatus.COMPLETED
